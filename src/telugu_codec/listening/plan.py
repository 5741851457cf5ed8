"""The trials of a MUSHRA test (ITU-R BS.1534-3) drawn from an evaluation's report folder.

`evaluate` leaves ``audio/<file>/original.wav`` and ``audio/<file>/<system>.wav`` for its first
few files. Each such file becomes one trial: the open reference (``original.wav``) and, in an
order shuffled for every trial and rater, the hidden reference (the same file again), the
low-pass anchor and every system. The anchor is the reference through a 3.5 kHz low-pass
filter (BS.1534-3 sec. 5.1: the "low-range anchor"), written next to the others as
``anchor-lp3500.wav`` so that it is a file like the rest.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import read_audio, to_mono, write_audio
from ..errors import AudioError, CodecError

REFERENCE_FILE = "original.wav"
ANCHOR_FILE = "anchor-lp3500.wav"
REFERENCE = "reference"  # the hidden reference's system name in ratings
ANCHOR = "anchor-lp3.5k"  # the low-pass anchor's system name in ratings
ANCHOR_CUTOFF_HZ = 3500.0
ANCHOR_TAPS = 511  # windowed-sinc FIR: a ~0.2 kHz wide transition at 16 kHz


@dataclass(frozen=True)
class Item:
    """One report file: its reference and the audio of every system, anchor included.

    Attributes:
        name: the folder name under ``audio/``.
        reference: the reference WAV.
        systems: system name -> WAV (the codec rows, the baselines, `ANCHOR`).
        sample_rate: the rate every WAV of the item shares.
        seconds: the reference's duration.
    """

    name: str
    reference: Path
    systems: dict[str, Path]
    sample_rate: int
    seconds: float


@dataclass(frozen=True)
class Trial:
    """One trial as one rater sees it.

    Attributes:
        item: the item's name.
        reference: the open reference WAV.
        order: the system name behind each slider, in screen order (`REFERENCE` is the hidden
            reference).
        files: the WAV behind each slider, in the same order.
    """

    item: str
    reference: Path
    order: list[str]
    files: list[Path]


def lowpass_fir(cutoff_hz: float, sample_rate: int, taps: int = ANCHOR_TAPS) -> np.ndarray:
    """A linear-phase low-pass FIR: a Blackman-windowed sinc with unit gain at DC.

    Args:
        cutoff_hz: the -6 dB point, below the Nyquist frequency.
        sample_rate: in Hz.
        taps: odd length (the delay is ``(taps - 1) / 2`` samples).

    Returns:
        (taps,) float64 coefficients.
    """
    if taps % 2 == 0 or taps < 3:
        raise ValueError(f"taps must be odd and >= 3, got {taps}")
    if not 0 < cutoff_hz < sample_rate / 2:
        raise ValueError(f"cutoff {cutoff_hz} Hz is not below the Nyquist {sample_rate / 2} Hz")
    n = np.arange(taps) - (taps - 1) / 2
    h = 2 * cutoff_hz / sample_rate * np.sinc(2 * cutoff_hz / sample_rate * n) * np.blackman(taps)
    return h / h.sum()


def make_anchor(
    wav: np.ndarray, sample_rate: int, cutoff_hz: float = ANCHOR_CUTOFF_HZ
) -> np.ndarray:
    """The low-pass anchor of `wav`: (T,) float32, time-aligned with the input (zero delay)."""
    if sample_rate <= 2 * cutoff_hz:
        raise AudioError(
            f"the reference is sampled at {sample_rate} Hz: a {cutoff_hz:g} Hz low-pass anchor "
            "needs a rate above twice that"
        )
    taps = min(ANCHOR_TAPS, len(wav) - 1 + len(wav) % 2)  # odd, no longer than the signal
    if taps < 3:
        raise AudioError(f"{len(wav)} samples are too few for a listening test")
    h = lowpass_fir(cutoff_hz, sample_rate, taps)
    # "same" keeps the length and removes the (taps - 1) / 2 delay of the symmetric filter
    return np.convolve(np.asarray(wav, np.float64), h, mode="same").astype(np.float32)


def _read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = read_audio(path)  # AudioError for a missing, empty, corrupt or NaN file
    return to_mono(data), rate


def load_items(report_dir: str | Path, write_anchors: bool = True) -> list[Item]:
    """Every file of the report folder that has a reference and decoded audio.

    Reads every WAV (a corrupt one fails here, not in the middle of a test) and writes each
    item's anchor (`ANCHOR_FILE`) from its reference.

    Args:
        report_dir: an `evaluate` report folder.
        write_anchors: write the anchor WAVs (False: use the ones already there).

    Returns:
        The items, sorted by name.

    Raises:
        CodecError: no such folder, or no ``audio/<file>/original.wav`` with systems beside it.
        AudioError: a WAV that cannot be read, is empty, or has another sample rate than its
            reference.
    """
    root = Path(report_dir)
    if not root.is_dir():
        raise CodecError(f"report folder not found: {root} (make one with `telugu-codec evaluate`)")
    audio = root / "audio"
    folders = sorted(p for p in audio.iterdir() if p.is_dir()) if audio.is_dir() else []
    items = []
    for folder in folders:
        ref = folder / REFERENCE_FILE
        if not ref.exists():
            continue
        wav, rate = _read(ref)
        systems: dict[str, Path] = {}
        for path in sorted(folder.glob("*.wav")):
            if path.name in (REFERENCE_FILE, ANCHOR_FILE) or path.name.startswith("."):
                continue
            if path.stem in (REFERENCE, ANCHOR):
                raise CodecError(f"{path}: the name {path.stem!r} is reserved for the test")
            data, r = _read(path)
            if r != rate:
                raise AudioError(f"{path} is at {r} Hz but its reference {ref} at {rate} Hz")
            systems[path.stem] = path
        if not systems:
            raise CodecError(f"{folder} holds only the reference; there is nothing to rate")
        anchor = folder / ANCHOR_FILE
        if write_anchors or not anchor.exists():
            write_audio(anchor, make_anchor(wav, rate), rate)
        systems[ANCHOR] = anchor
        items.append(Item(folder.name, ref, systems, rate, len(wav) / rate))
    if not items:
        raise CodecError(
            f"{root} holds no decoded audio (audio/<file>/{REFERENCE_FILE}); make the report "
            "with `telugu-codec evaluate ... --examples N` (N >= 1)"
        )
    return items


def plan_trials(items: list[Item], seed: int) -> list[Trial]:
    """One trial per item for one rater: the items and each trial's sliders in a random order.

    Args:
        items: from `load_items`.
        seed: the rater's seed (kept in the ratings file, so the order can be told again).

    Returns:
        The trials in the order the rater takes them; each has the hidden reference, the
        anchor and every system of its item behind its sliders.
    """
    rng = random.Random(seed)
    order = list(items)
    rng.shuffle(order)
    trials = []
    for item in order:
        slots = [(REFERENCE, item.reference), *sorted(item.systems.items())]
        rng.shuffle(slots)
        trials.append(
            Trial(item.name, item.reference, [n for n, _ in slots], [p for _, p in slots])
        )
    return trials
