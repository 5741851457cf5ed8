"""Classical codec baselines: Opus (ffmpeg + libopus) and Codec2 (c2enc / c2dec).

Each baseline maps ``(wav (T,) float32, sample_rate) -> BaselineOutput`` with the decoded
audio at the same rate and length and the bitrate *measured* from what the encoder wrote,
never the requested one:

- Opus: ``ffmpeg -c:a libopus -b:a {6,9,12}k -application voip -ar 16000 -f ogg`` (VBR,
  20 ms frames, the ffmpeg defaults). ``bitrate_bps`` counts the Opus audio packets only:
  the Ogg page headers and the OpusHead / OpusTags header packets are container overhead,
  reported as ``file_bytes`` (about 0.2 kB + 27 bytes per page). libopus 1.3.1 does not go
  below about 5 kbps at 16 kHz, so asking for less gives more.
- Codec2: 8 kHz signed 16-bit raw through ``c2enc MODE in.raw out.bit`` (headerless) and
  ``c2dec``, then soxr back to the input rate. ``bitrate_bps`` is the .bit file size; modes
  whose frames are not whole bytes are padded per frame (700C: 28 bits -> 4 bytes per 40 ms,
  so 0.8 kbps measured for 0.7 nominal). The trailing partial frame is dropped by c2enc.
  Codec2 delays its output by 20-28 ms; the decoded audio is shifted back by the lag that best
  correlates its 1 ms log-energy envelope with the input's (searched over 0-100 ms), because
  STOI does not search for a delay (0.65 instead of 0.86 at 3200 without the shift).

A missing tool is not an error: `BaselineSystem.unavailable_reason` says why the row is skipped.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import resample
from ..errors import CodecError
from ..metrics import real_bitrate

OPUS_RATE = 16000
CODEC2_RATE = 8000
OPUS_BITRATES_KBPS: tuple[int, ...] = (6, 9, 12)
CODEC2_MODES: tuple[str, ...] = ("3200", "1600", "700C")
CODEC2_NOMINAL_BPS = {"3200": 3200, "2400": 2400, "1600": 1600, "1400": 1400, "1300": 1300}
CODEC2_NOMINAL_BPS |= {"1200": 1200, "700C": 700, "450": 450}
_TIMEOUT_S = 120


@dataclass
class BaselineOutput:
    """One signal through a classical codec.

    Attributes:
        audio: (T,) float32 decoded audio, same rate and length as the input.
        bitrate_bps: codec payload bits / input duration (what the codec really spent).
        payload_bytes: codec payload (Opus packets; Codec2 frames).
        file_bytes: the whole file as the tool writes it (container included).
    """

    audio: np.ndarray
    bitrate_bps: float
    payload_bytes: int
    file_bytes: int


# ------------------------------------------------------------------------------ tools
def _run(cmd: list[str], stdin: bytes | None = None) -> bytes:
    """Run a tool, returning stdout; a failure raises CodecError with its last stderr line."""
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=_TIMEOUT_S)
    except FileNotFoundError as e:
        raise CodecError(f"{cmd[0]} not found on PATH") from e
    except subprocess.TimeoutExpired as e:
        raise CodecError(f"{cmd[0]} timed out after {_TIMEOUT_S} s") from e
    if proc.returncode != 0:
        lines = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CodecError(f"{cmd[0]} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout


@functools.lru_cache(maxsize=1)
def opus_unavailable() -> str | None:
    """None if ffmpeg with the libopus encoder is installed, else the reason."""
    if shutil.which("ffmpeg") is None:
        return "ffmpeg not found on PATH (install ffmpeg with libopus)"
    try:
        encoders = _run(["ffmpeg", "-hide_banner", "-encoders"]).decode(errors="replace")
    except CodecError as e:
        return str(e)
    if "libopus" not in encoders:
        return "ffmpeg has no libopus encoder (install an ffmpeg built with --enable-libopus)"
    return None


@functools.lru_cache(maxsize=1)
def codec2_unavailable() -> str | None:
    """None if c2enc and c2dec are on PATH, else the reason."""
    missing = [t for t in ("c2enc", "c2dec") if shutil.which(t) is None]
    if missing:
        return f"{' and '.join(missing)} not found on PATH (install codec2)"
    return None


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Trim or zero-pad (T,) to n samples."""
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]))


def _check_input(wav: np.ndarray, sample_rate: int) -> np.ndarray:
    wav = np.asarray(wav, dtype=np.float32)
    if wav.ndim != 1 or wav.size == 0:
        raise CodecError(f"baselines take non-empty (T,) audio, got shape {wav.shape}")
    if sample_rate <= 0:
        raise CodecError(f"sample rate must be positive, got {sample_rate}")
    return np.ascontiguousarray(wav)


# ------------------------------------------------------------------------------ Ogg
def ogg_packet_sizes(data: bytes) -> list[int]:
    """Sizes in bytes of the logical packets of a single-stream Ogg file (RFC 3533).

    Args:
        data: the whole file.

    Returns:
        Packet sizes in stream order, header packets included (for Opus: OpusHead, then
        OpusTags, then one packet per audio frame).

    Raises:
        CodecError: if the data is not a well-formed Ogg stream.
    """
    sizes: list[int] = []
    current = 0
    pos = 0
    while pos < len(data):
        if data[pos : pos + 4] != b"OggS" or pos + 27 > len(data):
            raise CodecError(f"not an Ogg page at byte {pos}")
        n_segments = data[pos + 26]
        lacing = data[pos + 27 : pos + 27 + n_segments]
        if len(lacing) != n_segments:
            raise CodecError("truncated Ogg page header")
        for value in lacing:
            current += value
            if value < 255:  # a lacing value below 255 ends a packet
                sizes.append(current)
                current = 0
        pos += 27 + n_segments + sum(lacing)
    if pos != len(data):
        raise CodecError("truncated Ogg page")
    return sizes


# ------------------------------------------------------------------------------ Opus
def opus(wav: np.ndarray, sample_rate: int, bitrate_kbps: float = 12.0) -> BaselineOutput:
    """Encode and decode with libopus (VoIP mode, 16 kHz, Ogg) through ffmpeg.

    Args:
        wav: (T,) float32 audio.
        sample_rate: its rate (ffmpeg resamples to 16 kHz for the encoder and back after).
        bitrate_kbps: the requested target bitrate (VBR).

    Returns:
        The decoded audio (same rate and length) and the measured packet bitrate.

    Raises:
        CodecError: if ffmpeg / libopus is missing or fails.
    """
    reason = opus_unavailable()
    if reason:
        raise CodecError(reason)
    x = _check_input(wav, sample_rate)
    raw = np.clip(x, -1.0, 1.0).astype("<f4").tobytes()
    pcm_in = ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1"]
    ogg = _run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *pcm_in, "-i", "pipe:0"]
        + ["-c:a", "libopus", "-b:a", f"{bitrate_kbps:g}k", "-application", "voip"]
        + ["-ar", str(OPUS_RATE), "-ac", "1", "-map_metadata", "-1", "-f", "ogg", "pipe:1"],
        stdin=raw,
    )
    packets = ogg_packet_sizes(ogg)
    if len(packets) < 3:
        raise CodecError("ffmpeg wrote an Opus stream without audio packets")
    payload = sum(packets[2:])  # packets 0 and 1 are OpusHead and OpusTags
    decoded = _run(
        ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-f", "ogg", "-i", "pipe:0"]
        + ["-f", "f32le", "-ar", str(sample_rate), "-ac", "1", "pipe:1"],
        stdin=ogg,
    )
    y = np.frombuffer(decoded, dtype="<f4").astype(np.float32)
    seconds = x.shape[0] / sample_rate
    return BaselineOutput(
        _fit_length(y, x.shape[0]), real_bitrate(payload, seconds), payload, len(ogg)
    )


# ------------------------------------------------------------------------------ Codec2
def _log_envelope(x: np.ndarray, hop: int, win: int) -> np.ndarray:
    energy = np.convolve(x.astype(np.float64) ** 2, np.ones(win), mode="same")[::hop]
    env = np.log(energy + 1e-8)
    return env - env.mean()


def estimate_delay(
    decoded: np.ndarray, reference: np.ndarray, sample_rate: int, max_delay_s: float = 0.1
) -> int:
    """Samples by which `decoded` lags `reference` (>= 0), from 1 ms log-energy envelopes.

    Envelopes, not waveforms, because parametric codecs (Codec2) do not keep the phase.

    Args:
        decoded: (T,) codec output.
        reference: (T,) codec input, same rate and length.
        sample_rate: their rate.
        max_delay_s: largest delay searched.

    Returns:
        The delay in samples, a multiple of 1 ms.
    """
    hop = max(1, sample_rate // 1000)
    env_d = _log_envelope(decoded, hop, 20 * hop)
    env_r = _log_envelope(reference, hop, 20 * hop)
    n = min(len(env_d), len(env_r))
    max_lag = min(int(max_delay_s * 1000), n - 1)
    scores = [np.dot(env_d[lag:n], env_r[: n - lag]) / (n - lag) for lag in range(max_lag + 1)]
    return int(np.argmax(scores)) * hop


def codec2(wav: np.ndarray, sample_rate: int, mode: str = "3200") -> BaselineOutput:
    """Encode and decode with Codec2 (8 kHz) through the c2enc / c2dec tools.

    Args:
        wav: (T,) float32 audio.
        sample_rate: its rate (soxr to 8 kHz before, back to `sample_rate` after).
        mode: a c2enc mode: "3200", "1600", "700C", ...

    Returns:
        The decoded audio (same rate and length, delay removed) and the measured bitrate.

    Raises:
        CodecError: if codec2 is missing or fails.
    """
    reason = codec2_unavailable()
    if reason:
        raise CodecError(reason)
    x = _check_input(wav, sample_rate)
    x8 = resample(x, sample_rate, CODEC2_RATE)
    pcm = (np.clip(x8, -1.0, 1.0) * 32767).round().astype("<i2")
    with tempfile.TemporaryDirectory(prefix="tc-codec2-") as tmp:
        src, bits, out = Path(tmp, "in.raw"), Path(tmp, "out.bit"), Path(tmp, "out.raw")
        src.write_bytes(pcm.tobytes())
        _run(["c2enc", mode, str(src), str(bits)])  # .bit suffix: headerless frames
        _run(["c2dec", mode, str(bits), str(out)])
        payload = bits.stat().st_size
        y8 = np.frombuffer(out.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0
    y = _fit_length(resample(y8, CODEC2_RATE, sample_rate), x.shape[0])
    delay = estimate_delay(y, x, sample_rate)
    y = _fit_length(y[delay:], x.shape[0])
    seconds = x.shape[0] / sample_rate
    return BaselineOutput(y, real_bitrate(payload, seconds), payload, payload)


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class BaselineSystem:
    """One baseline setting (a table row).

    Attributes:
        family: "opus" or "codec2".
        setting: the requested setting as text ("12k", "700C").
        nominal_bps: the requested / nominal bitrate.
        run: ``run(wav, sample_rate) -> BaselineOutput``.
        unavailable: ``() -> reason | None``.
    """

    family: str
    setting: str
    nominal_bps: float
    run: Callable[[np.ndarray, int], BaselineOutput]
    unavailable: Callable[[], str | None]

    @property
    def name(self) -> str:
        return f"{self.family}-{self.setting}"

    def unavailable_reason(self) -> str | None:
        """Why this row cannot run here (a missing tool), or None."""
        return self.unavailable()


def _opus_system(kbps: int) -> BaselineSystem:
    return BaselineSystem(
        "opus", f"{kbps}k", kbps * 1000.0, lambda w, sr: opus(w, sr, kbps), opus_unavailable
    )


def _codec2_system(mode: str) -> BaselineSystem:
    return BaselineSystem(
        "codec2",
        mode,
        float(CODEC2_NOMINAL_BPS.get(mode, 0)),
        lambda w, sr: codec2(w, sr, mode),
        codec2_unavailable,
    )


BASELINE_FAMILIES = ("opus", "codec2")


def baseline_systems(families: Sequence[str] | str = BASELINE_FAMILIES) -> list[BaselineSystem]:
    """The baseline rows for families "opus" (6, 9, 12 kbps) and "codec2" (3200, 1600, 700C).

    Args:
        families: family names, or a comma-separated string; "" or "none" for no baselines.

    Raises:
        CodecError: for an unknown family.
    """
    if isinstance(families, str):
        families = [f.strip() for f in families.split(",") if f.strip()]
    systems: list[BaselineSystem] = []
    for fam in families:
        if fam == "none":
            continue
        if fam == "opus":
            systems += [_opus_system(k) for k in OPUS_BITRATES_KBPS]
        elif fam == "codec2":
            systems += [_codec2_system(m) for m in CODEC2_MODES]
        else:
            raise CodecError(
                f"unknown baseline {fam!r}; choose from {', '.join(BASELINE_FAMILIES)} or none"
            )
    return systems
