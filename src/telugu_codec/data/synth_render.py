"""Rendering the synthetic corpora: what is drawn for each sentence, and the parallel render.

`plan_jobs` draws every random choice (espeak-ng variant, speed, pitch; Festival duration stretch
and F0 scale; the peak level) per sentence, in list order, from generators seeded with `seed`,
before anything is rendered: the output does not depend on the number of workers, and rendering
the first N sentences gives exactly the first N of the full corpus. The espeak-ng draws are
those of the original demo-te script, so `data/demo-te` rebuilds unchanged.

`render` turns jobs into 16-bit FLAC files: each rendering is trimmed of edge silence, resampled
and scaled to its peak level, and Festival's phone end times are moved with the trim.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import resample, write_audio
from . import synth_voices as sv

VOICES = ("espeak", "festival")
NSK_SPEAKER = "nsk"
# espeak-ng voice variants (`espeak-ng --voices=variant`): 7 male, 5 female-ish formant settings
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPEED_WPM = (150, 200)  # espeak-ng -s range (default 175)
PITCH = (25, 75)  # espeak-ng -p range (default 50)
NSK_STRETCH = (0.85, 1.15)  # x the NSK voice's phone durations (its own stretch is 1.4)
NSK_F0_SCALE = (0.85, 1.2)  # x its F0 targets (median about 130 Hz -> about 110-160 Hz)
PEAK_DBFS = (-6.0, -1.0)  # each file is scaled to a random peak level in this range
EDGE_SILENCE_DB = -50.0  # trim leading/trailing audio quieter than this ...
EDGE_KEEP_S = 0.1  # ... but keep this much of it on each side
VAL_EVERY = 10  # sentence i is validation when i % VAL_EVERY == VAL_EVERY - 1
MAX_WORKERS = 2  # each worker drives one synthesiser process at a time
CHUNK = {"espeak": 20, "festival": 40}  # sentences per task (Festival: per process)


@dataclass(frozen=True)
class Job:
    """One sentence in one voice, with everything drawn for it.

    `speed` and `pitch` are espeak-ng's words/min and pitch (0-99) for espeak, and the duration
    stretch and F0 scale factors for Festival.
    """

    index: int
    text: str
    split: str
    voice: str
    speaker: str
    speed: float
    pitch: float
    peak_db: float

    @property
    def path(self) -> str:
        """Relative to the corpus folder."""
        return f"{self.split}/te_{self.index:04d}_{self.speaker}.flac"


@dataclass
class Utterance:
    """One file of the corpus (a manifest row). `phones`: (end s, phone), possibly empty."""

    path: str
    duration: float
    speaker: str
    voice: str
    split: str
    text: str
    phones: list[tuple[float, str]]


def plan_jobs(
    sentences: Sequence[str], seed: int, voices: Sequence[str], val_every: int = VAL_EVERY
) -> list[Job]:
    """Every (sentence, voice) with its drawn settings, in sentence then `VOICES` order."""
    espeak_rng = np.random.default_rng(seed)  # the draws of the original demo-te script
    nsk_rng = np.random.default_rng([seed, 1])  # a separate stream: espeak's stay as they were
    jobs = []
    for i, text in enumerate(sentences):
        split = "val" if i % val_every == val_every - 1 else "train"
        # both streams advance for every sentence, whichever voices are wanted
        variant = str(espeak_rng.choice(VARIANTS))
        speed = int(espeak_rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
        pitch = int(espeak_rng.integers(PITCH[0], PITCH[1] + 1))
        peak_db = float(espeak_rng.uniform(*PEAK_DBFS))
        stretch = round(float(nsk_rng.uniform(*NSK_STRETCH)), 3)
        f0_scale = round(float(nsk_rng.uniform(*NSK_F0_SCALE)), 3)
        nsk_peak_db = float(nsk_rng.uniform(*PEAK_DBFS))
        if "espeak" in voices:
            jobs.append(Job(i, text, split, "espeak", variant, speed, pitch, peak_db))
        if "festival" in voices:
            jobs.append(
                Job(i, text, split, "festival", NSK_SPEAKER, stretch, f0_scale, nsk_peak_db)
            )
    return jobs


def edge_span(x: np.ndarray, rate: int) -> tuple[int, int]:
    """[start, end) of `x` without leading/trailing near-silence (20 ms frames below
    EDGE_SILENCE_DB), keeping EDGE_KEEP_S of it on each side."""
    frame = int(0.02 * rate)
    n = len(x) // frame
    if n == 0:
        return 0, len(x)
    level = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > EDGE_SILENCE_DB)
    if loud.size == 0:
        return 0, len(x)
    keep = int(EDGE_KEEP_S * rate)
    return max(0, loud[0] * frame - keep), min(len(x), (loud[-1] + 1) * frame + keep)


def shift_phones(
    phones: list[tuple[float, str]], offset_s: float, duration_s: float
) -> list[tuple[float, str]]:
    """Phone end times after cutting `offset_s` from the start and ending at `duration_s`.

    Rounded to ms and clipped to the file; segments that end before the cut, or do not end
    after the previous one, are dropped, so the end times increase strictly.
    """
    last = math.floor(duration_s * 1000) / 1000
    out: list[tuple[float, str]] = []
    for end, phone in phones:
        t = min(round(end - offset_s, 3), last)
        if t > 0 and (not out or t > out[-1][0]):
            out.append((t, phone))
    return out


def _finish(
    s: sv.Synthesised, peak_db: float, sample_rate: int
) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """Trim, resample and level one rendering -> ((T,) float32 at sample_rate, phones)."""
    start, end = edge_span(s.wav, s.sample_rate)
    wav = resample(s.wav[start:end], s.sample_rate, sample_rate)
    wav = wav * (10 ** (peak_db / 20) / max(float(np.abs(wav).max()), 1e-9))
    phones = shift_phones(s.phones, start / s.sample_rate, len(wav) / sample_rate)
    return wav, phones


def _render_chunk(jobs: list[Job], out: Path, sample_rate: int) -> list[Utterance]:
    """Render jobs of one voice and write their files."""
    if jobs[0].voice == "espeak":
        rendered = [sv.espeak_render(j.text, j.speaker, int(j.speed), int(j.pitch)) for j in jobs]
        rendered = sv.espeak_phones(
            rendered, [(j.text, j.speaker, int(j.speed), int(j.pitch)) for j in jobs]
        )
    else:
        lines = [sv.FestivalLine(j.text, j.speed, j.pitch) for j in jobs]
        rendered = sv.festival_render(lines)
    utts = []
    for j, s in zip(jobs, rendered):
        wav, phones = _finish(s, j.peak_db, sample_rate)
        write_audio(out / j.path, wav, sample_rate)
        utts.append(
            Utterance(j.path, len(wav) / sample_rate, j.speaker, j.voice, j.split, j.text, phones)
        )
    return utts


def _chunks(jobs: list[Job]) -> list[list[Job]]:
    """Jobs cut into per-voice chunks, the voices interleaved so both progress together."""
    per_voice = []
    for voice in VOICES:
        mine = [j for j in jobs if j.voice == voice]
        size = CHUNK[voice]
        per_voice.append([mine[k : k + size] for k in range(0, len(mine), size)])
    out = []
    for k in range(max((len(c) for c in per_voice), default=0)):
        out += [c[k] for c in per_voice if k < len(c)]
    return out


def clock(seconds: float) -> str:
    """'m:ss', or 'h:mm:ss' from an hour."""
    m, s = divmod(int(round(seconds)), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


def render(
    jobs: list[Job],
    out: Path,
    sample_rate: int = 16000,
    workers: int = MAX_WORKERS,
    log: Callable[[str], None] = print,
) -> list[Utterance]:
    """Render `jobs` into `out` with up to `MAX_WORKERS` workers; utterances in job order."""
    chunks = _chunks(jobs)
    workers = max(1, min(workers, MAX_WORKERS))
    results: dict[int, list[Utterance]] = {}
    t0, done, next_report = time.monotonic(), 0, 0.1
    # threads suffice: the synthesisers run as child processes, and soxr / libsndfile release
    # the GIL
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(_render_chunk, c, out, sample_rate): k for k, c in enumerate(chunks)}
        try:
            for fut in as_completed(futures):
                results[futures[fut]] = fut.result()
                done += len(chunks[futures[fut]])
                if done / len(jobs) >= next_report or done == len(jobs):
                    elapsed = time.monotonic() - t0
                    left = elapsed * (len(jobs) - done) / done
                    log(
                        f"  {done}/{len(jobs)} files ({100 * done / len(jobs):.0f} %), "
                        f"{clock(elapsed)} elapsed, about {clock(left)} left"
                    )
                    next_report = math.floor(10 * done / len(jobs)) / 10 + 0.1
        except BaseException:  # an error or Ctrl-C: do not wait for the chunks not yet started
            for fut in futures:
                fut.cancel()
            raise
    by_key = {u.path: u for part in results.values() for u in part}
    return [by_key[j.path] for j in jobs]
