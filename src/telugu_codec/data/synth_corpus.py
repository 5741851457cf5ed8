"""Synthetic Telugu corpora: every sentence of a list rendered by espeak-ng and Festival NSK.

Two corpora come out of this module (docs/data.md):

- `data/demo-te` (bundled in git): the 308 sentences of `scripts/demo_sentences_te.txt`,
  espeak-ng only, about 16 minutes;
- `data/te-2voice` (git-ignored, made on first use by `ensure_corpus`): every sentence of both
  lists in both voices, espeak-ng (formant synthesis) and Festival's `festvox-te-nsk` (diphones
  of a real male speaker), about an hour per voice.

The split is by sentence (`synth_render.VAL_EVERY`), so no sentence is in both splits and every
voice is in each. Layout: `{out}/{train,val}/te_{index:04d}_{speaker}.flac` (16-bit mono FLAC),
`{out}/manifest.tsv` (`MANIFEST_COLUMNS`), `{out}/README.md`, and `{out}/.complete` written last,
so a build that was cut short is redone rather than trusted.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import CodecError
from . import synth_voices as sv
from .synth_readme import write_readme
from .synth_render import MAX_WORKERS, VAL_EVERY, VOICES, Utterance, clock, plan_jobs, render

REPO_ROOT = Path(__file__).resolve().parents[3]
DEMO_SENTENCES = REPO_ROOT / "scripts" / "demo_sentences_te.txt"
EXTRA_SENTENCES = REPO_ROOT / "scripts" / "sentences_te_extra.txt"
SENTENCE_FILES = (DEMO_SENTENCES, EXTRA_SENTENCES)
TWO_VOICE_DIR = REPO_ROOT / "data" / "te-2voice"
MARKER = ".complete"
MANIFEST_COLUMNS = ("path", "duration", "speaker", "voice", "split", "text", "phones")


def read_sentences(*paths: Path) -> list[str]:
    """Non-empty, non-comment lines of `paths`, in order.

    Raises:
        CodecError: a file is missing, or a sentence occurs twice (within or across files).
    """
    sentences: list[str] = []
    for path in paths:
        try:
            lines = [ln.strip() for ln in Path(path).read_text(encoding="utf-8").splitlines()]
        except OSError as e:
            raise CodecError(f"cannot read the sentence list {path}: {e}") from e
        sentences += [ln for ln in lines if ln and not ln.startswith("#")]
    seen: set[str] = set()
    dups = [s for s in sentences if s in seen or seen.add(s)]
    if dups:
        raise CodecError(f"duplicate sentences in {', '.join(map(str, paths))}: {dups[:3]}")
    return sentences


def write_manifest(utts: list[Utterance], path: Path) -> None:
    """`MANIFEST_COLUMNS` as TSV; `phones` is compact JSON `[[end_s, "a"], ...]` or empty."""
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n")
        w.writerow(MANIFEST_COLUMNS)
        for u in utts:
            phones = json.dumps(u.phones, separators=(",", ":")) if u.phones else ""
            w.writerow([u.path, f"{u.duration:.3f}", u.speaker, u.voice, u.split, u.text, phones])


def read_synth_manifest(path: Path) -> list[Utterance]:
    """The rows `write_manifest` wrote (phones parsed back to (end, phone) pairs)."""
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    return [
        Utterance(
            r["path"],
            float(r["duration"]),
            r["speaker"],
            r.get("voice") or "espeak",
            r["split"],
            r["text"],
            [(float(t), p) for t, p in json.loads(r["phones"])] if r.get("phones") else [],
        )
        for r in rows
    ]


def resolve_voices(
    voices: Sequence[str] | None, log: Callable[[str], None] = print
) -> tuple[str, ...]:
    """The voices to render: `voices` checked, or (None) espeak plus Festival where it works.

    Raises:
        CodecError: espeak-ng is wanted but missing, Festival is asked for explicitly but does
            not work, or an unknown voice.
    """
    wanted = tuple(VOICES if voices is None else voices)
    unknown = sorted(set(wanted) - set(VOICES))
    if unknown or not wanted:
        raise CodecError(f"unknown voices {unknown or wanted}; choose from {', '.join(VOICES)}")
    if "espeak" in wanted and sv.find_espeak() is None:
        raise CodecError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    if "festival" in wanted:
        missing = sv.festival_missing()
        if missing and voices is not None:
            raise CodecError(missing)
        if missing:
            log(f"{missing}: making the espeak-ng voice only")
            wanted = tuple(v for v in wanted if v != "festival")
    return tuple(v for v in VOICES if v in wanted)


def _spec(
    sentences: Sequence[str], seed: int, voices: Sequence[str], rate: int, every: int
) -> dict:
    """What a finished corpus was made from; a different spec means a rebuild."""
    digest = hashlib.sha256("\n".join(sentences).encode("utf-8")).hexdigest()[:16]
    return {
        "seed": seed,
        "voices": list(voices),
        "sentences": len(sentences),
        "text_sha256": digest,
        "sample_rate": rate,
        "val_every": every,
    }


def is_complete(out: Path, spec: dict) -> bool:
    """True when `out` holds a finished corpus of `spec` with every file of its manifest."""
    try:
        if json.loads((out / MARKER).read_text(encoding="utf-8")) != spec:
            return False
        utts = read_synth_manifest(out / "manifest.tsv")
    except (OSError, ValueError, KeyError):
        return False
    return bool(utts) and all((out / u.path).is_file() for u in utts)


def summary(utts: list[Utterance], out: Path) -> str:
    """One line: files, hours and MB per voice."""
    parts = []
    for voice in VOICES:
        mine = [u for u in utts if u.voice == voice]
        if mine:
            hours = sum(u.duration for u in mine) / 3600
            mb = sum((out / u.path).stat().st_size for u in mine) / 1e6
            parts.append(f"{voice} {len(mine)} files {hours:.2f} h {mb:.0f} MB")
    n_val = sum(u.split == "val" for u in utts)
    return f"{len(utts)} files ({n_val} val): " + ", ".join(parts)


def build_corpus(
    out: Path,
    sentences: Sequence[str],
    seed: int = 0,
    voices: Sequence[str] = VOICES,
    sample_rate: int = 16000,
    val_every: int = VAL_EVERY,
    workers: int = MAX_WORKERS,
    log: Callable[[str], None] = print,
    command: str = "",
) -> list[Utterance]:
    """Render `sentences` in `voices` into `out` (replacing what a previous build left there).

    Returns the utterances in manifest order. `voices` must be available (`resolve_voices`);
    `command` is the README's rebuild line.
    """
    out = Path(out)
    (out / MARKER).unlink(missing_ok=True)
    for split in ("train", "val"):
        shutil.rmtree(out / split, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    jobs = plan_jobs(sentences, seed, voices, val_every)
    t0 = time.monotonic()
    log(
        f"rendering {len(sentences)} sentences in {' + '.join(voices)} ({len(jobs)} files) "
        f"into {out} with {max(1, min(workers, MAX_WORKERS))} workers"
    )
    utts = render(jobs, out, sample_rate, workers, log)
    write_manifest(utts, out / "manifest.tsv")
    write_readme(utts, out, seed, sample_rate, voices, len(sentences), command)
    spec = _spec(sentences, seed, voices, sample_rate, val_every)
    (out / MARKER).write_text(json.dumps(spec, indent=1) + "\n", encoding="utf-8")
    log(f"wrote {summary(utts, out)} to {out} in {clock(time.monotonic() - t0)}")
    return utts


def ensure_corpus(
    out: Path = TWO_VOICE_DIR,
    seed: int = 0,
    voices: Sequence[str] | None = None,
    limit: int | None = None,
    sentence_files: Sequence[Path] = SENTENCE_FILES,
    sample_rate: int = 16000,
    workers: int = MAX_WORKERS,
    log: Callable[[str], None] = print,
) -> Path:
    """The two-voice corpus in `out`, built first when it is missing, incomplete or was made
    from other settings.

    Args:
        out: the corpus folder (git-ignored `data/te-2voice` by default).
        seed: seeds every random choice.
        voices: None for espeak-ng plus Festival NSK where Festival works (else a one-line
            notice and espeak-ng only); or an explicit subset of `VOICES`.
        limit: only the first `limit` sentences (tests, quick runs).
        sentence_files: the sentence lists, read in order.
        workers: parallel renderers, at most `MAX_WORKERS`.
        log: where progress lines go.

    Returns:
        `out`, holding train/, val/, manifest.tsv and README.md.

    Raises:
        CodecError: espeak-ng missing, a sentence list missing or with duplicates, or a sentence
            a synthesiser cannot render.
    """
    out = Path(out)
    sentences = read_sentences(*sentence_files)[:limit]
    voices = resolve_voices(voices, log)
    if is_complete(out, _spec(sentences, seed, voices, sample_rate, VAL_EVERY)):
        return out
    log(f"{out} is missing, incomplete or made with other settings: generating it")
    command = f"python scripts/make_demo_corpus.py --two-voice --out {out} --seed {seed}"
    command += f" --voices {' '.join(voices)}" + (f" --limit {limit}" if limit else "")
    build_corpus(out, sentences, seed, voices, sample_rate, VAL_EVERY, workers, log, command)
    return out
