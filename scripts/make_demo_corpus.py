"""Synthesise the bundled Telugu demo corpus (data/demo-te) with espeak-ng.

The corpus is SYNTHETIC speech: one espeak-ng rendering of each sentence in
scripts/demo_sentences_te.txt, with the voice variant, speed, pitch and level drawn from a seeded
generator. Every 10th sentence goes to the validation split, so the validation sentences never
occur in training. Output: 16 kHz mono 16-bit FLAC files under {out}/{train,val}/, a manifest
{out}/manifest.tsv (path, duration, speaker, split, text) and {out}/README.md.

Usage:
    python scripts/make_demo_corpus.py [--out data/demo-te] [--seed 0]

The same espeak-ng version and seed give the same files; a different espeak-ng version may render
slightly different audio.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from telugu_codec.audio import resample, write_audio

ROOT = Path(__file__).resolve().parent.parent
# espeak-ng voice variants (`espeak-ng --voices=variant`): 7 male, 5 female-ish formant settings
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")
SPEED_WPM = (150, 200)  # espeak-ng -s range (default 175)
PITCH = (25, 75)  # espeak-ng -p range (default 50)
PEAK_DBFS = (-6.0, -1.0)  # each file is scaled to a random peak level in this range
EDGE_SILENCE_DB = -50.0  # trim leading/trailing audio quieter than this ...
EDGE_KEEP_S = 0.1  # ... but keep this much of it on each side


@dataclass
class Utterance:
    """One synthesised sentence."""

    path: str  # relative to the corpus folder
    duration: float  # seconds
    speaker: str  # espeak-ng voice variant
    split: str  # train | val
    text: str
    speed: int
    pitch: int


def read_sentences(path: Path) -> list[str]:
    """Non-empty, non-comment lines of `path`; duplicates are an error."""
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    sentences = [ln for ln in lines if ln and not ln.startswith("#")]
    seen: set[str] = set()
    dups = [s for s in sentences if s in seen or seen.add(s)]
    if dups:
        sys.exit(f"duplicate sentences in {path}: {dups[:3]}")
    return sentences


def synthesise(text: str, variant: str, speed: int, pitch: int) -> tuple[np.ndarray, int]:
    """Run espeak-ng for Telugu -> ((T,) float32, rate)."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["espeak-ng", "-v", f"te+{variant}", "-s", str(speed), "-p", str(pitch)]
        subprocess.run([*cmd, "-w", str(wav), text], check=True, capture_output=True)
        data, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)


def trim_edges(x: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading/trailing near-silence (20 ms frames below EDGE_SILENCE_DB), keeping a margin."""
    frame = int(0.02 * rate)
    n = len(x) // frame
    if n == 0:
        return x
    level = 10 * np.log10(np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > EDGE_SILENCE_DB)
    if loud.size == 0:
        return x
    keep = int(EDGE_KEEP_S * rate)
    start = max(0, loud[0] * frame - keep)
    end = min(len(x), (loud[-1] + 1) * frame + keep)
    return x[start:end]


def build(sentences: list[str], out: Path, seed: int, sample_rate: int, val_every: int) -> list:
    """Synthesise every sentence into `out`; returns the list of `Utterance`."""
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        shutil.rmtree(out / split, ignore_errors=True)
    utts = []
    for i, text in enumerate(sentences):
        variant = str(rng.choice(VARIANTS))
        speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
        pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
        peak_db = float(rng.uniform(*PEAK_DBFS))
        split = "val" if i % val_every == val_every - 1 else "train"
        wav, rate = synthesise(text, variant, speed, pitch)
        wav = resample(trim_edges(wav, rate), rate, sample_rate)
        wav = wav * (10 ** (peak_db / 20) / max(float(np.abs(wav).max()), 1e-9))
        rel = f"{split}/te_{i:04d}_{variant}.flac"
        write_audio(out / rel, wav, sample_rate)
        utts.append(Utterance(rel, len(wav) / sample_rate, variant, split, text, speed, pitch))
    return utts


def write_manifest(utts: list[Utterance], path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(["path", "duration", "speaker", "split", "text"])
        for u in utts:
            w.writerow([u.path, f"{u.duration:.3f}", u.speaker, u.split, u.text])


def espeak_version() -> str:
    out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split("Data at")[0].strip()


def write_readme(utts: list[Utterance], out: Path, seed: int, sample_rate: int) -> None:
    size_mb = sum((out / u.path).stat().st_size for u in utts) / 1e6
    stats = {}
    for split in ("train", "val"):
        part = [u for u in utts if u.split == split]
        stats[split] = (len(part), sum(u.duration for u in part) / 60)
    total_min = sum(m for _, m in stats.values())
    text = f"""# demo-te: a small SYNTHETIC Telugu speech corpus

**This is synthetic speech, not recordings of people.** Every file was rendered by the
espeak-ng formant synthesiser. It exists so that the toolkit's demo, tests and benchmarks run
out of the box without a download. A codec trained on it learns espeak-ng's voice, not human
Telugu speech: for real models use real corpora (see `docs/data.md`: OpenSLR SLR66, IIT Madras
IndicTTS, Mozilla Common Voice Telugu).

## Contents

| split | files | minutes |
|---|---:|---:|
| train | {stats["train"][0]} | {stats["train"][1]:.1f} |
| val | {stats["val"][0]} | {stats["val"][1]:.1f} |
| total | {len(utts)} | {total_min:.1f} |

{size_mb:.1f} MB of 16-bit mono FLAC at {sample_rate} Hz, one file per sentence.
`manifest.tsv` lists `path` (relative to this folder), `duration` (seconds), `speaker` (the
espeak-ng voice variant, e.g. `m3`, `f2`), `split` (`train`/`val`) and `text`.
The validation split holds every 10th sentence of the list, so its sentences never occur in
training; voice variants are shared between the splits.

## Provenance

- Text: `scripts/demo_sentences_te.txt`, {len(utts)} Telugu sentences (everyday phrases,
  news-style sentences, numbers, dates and times) written for this project.
- Speech: `{espeak_version()}`, Telugu voice `te` with the variants
  {", ".join(VARIANTS)}.
- Per file, drawn from a generator seeded with {seed}: voice variant, speed
  ({SPEED_WPM[0]}-{SPEED_WPM[1]} words/min), pitch ({PITCH[0]}-{PITCH[1]}) and peak level
  ({PEAK_DBFS[0]:g} to {PEAK_DBFS[1]:g} dBFS).
- Leading/trailing silence trimmed to {EDGE_KEEP_S} s; resampled from espeak-ng's 22050 Hz to
  {sample_rate} Hz with soxr (HQ).
- Rebuild: `python scripts/make_demo_corpus.py --seed {seed}` (the same espeak-ng version gives
  the same audio).

## Licence

The sentences and these audio files were made for the telugu-codec project and are distributed
under the project's licence (MIT, see `pyproject.toml`).

espeak-ng is licensed GPL-3.0-or-later. It was only *run* to make the audio; no part of it is
included here. GPL-3.0 section 2 says the output from running a covered work is covered by the
licence only if the output, given its content, constitutes a covered work (the GPL FAQ: only if
substantial parts of the program are copied into the output). The audio is computed by
espeak-ng's formant synthesiser from the project's own text; the Telugu voice and the variants
used contain no recorded speech, and no MBROLA voice was used. We therefore read the audio as not
encumbered by the GPL. This is the project's reading, not legal advice.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sentences", type=Path, default=ROOT / "scripts" / "demo_sentences_te.txt")
    p.add_argument("--out", type=Path, default=ROOT / "data" / "demo-te")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sample-rate", type=int, default=16000)
    p.add_argument("--val-every", type=int, default=10, help="every N-th sentence is validation")
    args = p.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    sentences = read_sentences(args.sentences)
    utts = build(sentences, args.out, args.seed, args.sample_rate, args.val_every)
    write_manifest(utts, args.out / "manifest.tsv")
    write_readme(utts, args.out, args.seed, args.sample_rate)
    minutes = sum(u.duration for u in utts) / 60
    size_mb = sum((args.out / u.path).stat().st_size for u in utts) / 1e6
    n_val = sum(u.split == "val" for u in utts)
    print(
        f"wrote {len(utts)} files ({n_val} val), {minutes:.1f} min, {size_mb:.1f} MB to {args.out}"
    )


if __name__ == "__main__":
    main()
