"""The rows of an evaluation: our codec at each bitrate and the classical baselines.

A `System` maps ``(wav (T,), sample_rate) -> SystemOutput``: decoded audio at the same rate and
length, and the bitrate measured from what the encoder wrote. `codec_systems` gives one per
codebook count, going through the real `.tcc` bytes; `baseline_rows` wraps the Opus and Codec2
baselines of `baselines.py`, skipping those whose tool is missing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bitstream import from_bytes, payload_size, to_bytes
from ..errors import CodecError
from .baselines import baseline_systems

DEFAULT_BITRATES_KBPS: tuple[float, ...] = (1.5, 3.0, 6.0)

Notice = Callable[[str], None]


@dataclass
class SystemOutput:
    """What one system made of one file.

    Attributes:
        audio: (T,) float32 decoded audio, same rate and length as the input.
        bitrate_bps: payload bits / input seconds.
        file_bitrate_bps: whole-file bits (container included) / input seconds.
    """

    audio: np.ndarray
    bitrate_bps: float
    file_bitrate_bps: float


@dataclass
class System:
    """One table row: the codec at one bitrate, or one baseline setting.

    Attributes:
        name: unique row name ("codec-3k", "opus-12k", "codec2-700C").
        family: "codec", "opus" or "codec2" (one curve per family).
        setting: the requested setting as text ("3k (n_q=6)", "12k", "700C").
        nominal_kbps: the requested / nominal bitrate.
        run: ``run(wav (T,), sample_rate) -> SystemOutput``.
    """

    name: str
    family: str
    setting: str
    nominal_kbps: float
    run: Callable[[np.ndarray, int], SystemOutput]


class _PrefixEncoder:
    """Encodes each signal once, at the largest n_q evaluated; lower bitrates take the prefix.

    Residual VQ stage i quantizes what stages 0..i-1 left, so the first n_q codes do not
    depend on the later stages: the prefix is exactly what ``encode(n_q=n_q)`` returns
    (tests/test_evaluate.py checks it). This saves an encoder pass per extra bitrate.
    """

    def __init__(self, codec: Any, n_q_max: int):
        self.codec = codec
        self.n_q_max = n_q_max
        self._wav: np.ndarray | None = None  # holding the array keeps its identity unique
        self._rate = 0
        self._enc: Any = None

    def __call__(self, wav: np.ndarray, sample_rate: int, n_q: int) -> Any:
        import dataclasses

        if wav is not self._wav or sample_rate != self._rate:
            self._enc = self.codec.encode(wav, sample_rate, n_q=self.n_q_max)
            self._wav, self._rate = wav, sample_rate
        return dataclasses.replace(self._enc, codes=self._enc.codes[:n_q].copy())


def codec_systems(codec: Any, bitrates_kbps: Sequence[float] | None) -> list[System]:
    """One row per distinct codebook count for the requested bitrates.

    Args:
        codec: a loaded `Codec`.
        bitrates_kbps: requested bitrates; None picks those of 1.5 / 3 / 6 kbps the model
            can do (or all its codebooks if none fit).

    Raises:
        CodecError: for an explicit bitrate outside the model's range.
    """
    if bitrates_kbps is None:
        n_qs = []
        for kbps in DEFAULT_BITRATES_KBPS:
            try:
                n_qs.append(codec.n_q_for_bitrate(kbps))
            except CodecError:
                continue
        n_qs = n_qs or [codec.max_n_q]
    else:
        n_qs = [codec.n_q_for_bitrate(k) for k in bitrates_kbps]
    n_qs = sorted(set(n_qs))

    encoder = _PrefixEncoder(codec, max(n_qs))

    def make_run(n_q: int) -> Callable[[np.ndarray, int], SystemOutput]:
        def run(wav: np.ndarray, sample_rate: int) -> SystemOutput:
            data = to_bytes(encoder(wav, sample_rate, n_q))  # what a file or network carries
            dec = from_bytes(data)
            audio = codec.decode(dec).numpy()
            seconds = dec.length / dec.sample_rate
            payload = payload_size(dec.n_q, dec.frames, dec.bits_per_code)
            payload += dec.frames if dec.pitch is not None else 0  # the pitch byte per frame
            return SystemOutput(audio, payload * 8 / seconds, len(data) * 8 / seconds)

        return run

    systems = []
    for n_q in n_qs:
        kbps = codec.bitrate(n_q) / 1000
        systems.append(
            System(f"codec-{kbps:g}k", "codec", f"{kbps:g}k (n_q={n_q})", kbps, make_run(n_q))
        )
    return systems


def baseline_rows(families: Sequence[str] | str, notice: Notice) -> tuple[list[System], dict]:
    """The baseline rows of `families`, and name -> reason for those whose tool is missing."""
    systems: list[System] = []
    skipped: dict[str, str] = {}
    for b in baseline_systems(families):
        reason = b.unavailable_reason()
        if reason:
            skipped[b.name] = reason
            continue

        def run(wav: np.ndarray, sr: int, b: Any = b) -> SystemOutput:
            out = b.run(wav, sr)
            seconds = wav.shape[0] / sr
            return SystemOutput(out.audio, out.bitrate_bps, out.file_bytes * 8 / seconds)

        systems.append(System(b.name, b.family, b.setting, b.nominal_bps / 1000, run))
    for fam in sorted({n.split("-")[0] for n in skipped}):
        reasons = sorted({r for n, r in skipped.items() if n.startswith(fam + "-")})
        notice(f"skipping the {fam} baseline: {'; '.join(reasons)}")
    return systems, skipped
