"""Corpus discovery: which audio files a data argument names, and in which layout.

A data argument is a folder (searched recursively for `AUDIO_EXTENSIONS`), a manifest
(`.csv`, `.tsv`, `.jsonl`: a path column plus optional duration, speaker and split columns; a
folder holding ``manifest.{tsv,csv,jsonl}`` is read through it), a single audio file, or a
folder holding public Telugu corpus layouts anywhere in its first `LAYOUT_DEPTH` levels:
OpenSLR SLR66 (``line_index.tsv`` + wavs), IIT Madras IndicTTS (``txt.done.data`` + ``wav/``)
and Mozilla Common Voice (``validated.tsv`` + ``clips/``). Nothing is read or checked here
beyond the listings (see `scan`).

A new kind of source (Parquet, tar shards) belongs in a module of its own that returns a
`Corpus`, with one branch in `discover` that recognises it.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..audio import AUDIO_EXTENSIONS
from ..errors import CodecError

MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl")
MANIFEST_NAMES = ("manifest.tsv", "manifest.csv", "manifest.jsonl")
PATH_KEYS = ("path", "audio_filepath", "audio_path", "audio", "filepath", "file", "wav")
DURATION_KEYS = ("duration", "duration_s", "seconds")
SPEAKER_KEYS = ("speaker", "speaker_id", "spk", "client_id")
SPLIT_KEYS = ("split", "subset")
LAYOUT_DEPTH = 3  # how deep below the given folder corpus markers are looked for
# SLR66 file ids look like tef_05421_00051003: <lang><gender>_<speaker>_<utterance>
SLR_SPEAKER = re.compile(r"^([a-z]{2,3}[fm])_(\d+)_")


@dataclass
class AudioItem:
    """One audio file of a corpus.

    Attributes:
        path: absolute path of the file.
        duration: seconds; None until scanned unless a manifest gave it.
        speaker: speaker id where the layout or manifest gives one, else None.
        split: the manifest's split label (``train``, ``val``, ``test``, ...), else None.
        row: its position in an `AudioSource` (``data/sources.py``) when it is not a file of
            its own (a Parquet/Arrow row) or is read without a start-up probe; else None.
    """

    path: Path
    duration: float | None = None
    speaker: str | None = None
    split: str | None = None
    row: int | None = None


@dataclass
class Corpus:
    """What `discover` found: the folder paths are relative to, the layout and the files."""

    root: Path
    layout: str  # file | folder | manifest | slr66 | indictts | commonvoice (joined with "+")
    items: list[AudioItem]


def list_audio_files(source: str | Path) -> list[AudioItem]:
    """All audio files of a folder, manifest or known corpus layout (see `discover`).

    Args:
        source: a folder, a manifest (.csv/.tsv/.jsonl), or a single audio file.

    Returns:
        Items in a stable order, one per distinct file; nothing is read or checked yet.

    Raises:
        CodecError: the path does not exist, holds no audio, or is a malformed manifest.
    """
    return discover(source).items


def discover(source: str | Path) -> Corpus:
    """Find the audio files of `source` and the layout they come in.

    A folder is checked, in order, for a top-level ``manifest.{tsv,csv,jsonl}``, then for corpus
    layouts (SLR66, IndicTTS, Common Voice) in its first `LAYOUT_DEPTH` levels, and otherwise
    searched recursively for files with an audio extension.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise CodecError(f"data path not found: {path}")
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in MANIFEST_SUFFIXES:
            corpus = Corpus(path.parent.resolve(), "manifest", read_manifest(path))
        elif suffix in AUDIO_EXTENSIONS:
            corpus = Corpus(path.parent.resolve(), "file", [AudioItem(path.resolve())])
        else:
            raise CodecError(
                f"{path} is neither an audio file ({', '.join(AUDIO_EXTENSIONS)}) "
                f"nor a manifest ({', '.join(MANIFEST_SUFFIXES)})"
            )
    else:
        corpus = _discover_folder(path.resolve())
    if not corpus.items:
        raise CodecError(
            f"no audio files found in {path} (looked for {', '.join(AUDIO_EXTENSIONS)}, "
            "manifests and the SLR66 / IndicTTS / Common Voice layouts)"
        )
    return corpus


def _discover_folder(root: Path) -> Corpus:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return Corpus(root, "manifest", read_manifest(root / name))
    items: list[AudioItem] = []
    layouts: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        depth = len(here.relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        names = set(filenames)
        found = None
        if "clips" in dirnames and names & {"validated.tsv", "train.tsv"}:
            found, new = "commonvoice", _read_common_voice(here)
        elif "line_index.tsv" in names:
            found, new = "slr66", _read_slr66(here / "line_index.tsv")
        elif "wav" in dirnames and (
            "txt.done.data" in names or (here / "etc" / "txt.done.data").is_file()
        ):
            found, new = "indictts", _read_indictts(here, root)
        if found is not None:
            layouts.add(found)
            items.extend(new)
            dirnames[:] = []  # the layout owns this subtree
        elif depth >= LAYOUT_DEPTH:
            dirnames[:] = []
    if layouts:
        return Corpus(root, "+".join(sorted(layouts)), _dedupe(items))
    return Corpus(root, "folder", [AudioItem(Path(p)) for p in sorted(_audio_files(str(root)))])


def _audio_files(folder: str) -> list[str]:
    """Paths of the audio files below `folder`, hidden files and folders left out.

    `os.scandir` gives each entry's type from the directory listing, so a large corpus is
    listed without a stat per file (symbolic links to folders are not followed).
    """
    out, stack = [], [folder]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif (
                    os.path.splitext(entry.name)[1].lower() in AUDIO_EXTENSIONS and entry.is_file()
                ):
                    out.append(entry.path)
    return out


def relative_key(path: Path, root: Path) -> str:
    """`path` relative to `root` in POSIX form (the path itself when outside `root`), without
    pathlib's cost in the common case: split and cache keys are made for every file."""
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    if os.sep == "/" and text.startswith(prefix):
        return text[len(prefix) :]
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _dedupe(items: list[AudioItem]) -> list[AudioItem]:
    seen: set[str] = set()  # strings hash much faster than paths
    out = []
    for it in items:
        key = str(it.path)
        if key not in seen:
            seen.add(key)
            out.append(it)
    return out


def _read_tsv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _read_common_voice(folder: Path) -> list[AudioItem]:
    """Mozilla Common Voice: ``validated.tsv`` (else train/dev/test.tsv) + ``clips/*.mp3``."""
    tables = ["validated.tsv"] if (folder / "validated.tsv").is_file() else []
    tables = tables or [t for t in ("train.tsv", "dev.tsv", "test.tsv") if (folder / t).is_file()]
    items = []
    for table in tables:
        for row in _read_tsv_rows(folder / table):
            if row.get("path"):
                speaker = row.get("client_id") or None
                items.append(AudioItem((folder / "clips" / row["path"]).resolve(), None, speaker))
    return _dedupe(items)


def _read_slr66(index: Path) -> list[AudioItem]:
    """OpenSLR SLR66: ``line_index.tsv`` lines ``<file id>\\t<text>`` next to ``<file id>.wav``."""
    folder = index.parent
    items = []
    for line in index.read_text(encoding="utf-8").splitlines():
        file_id = line.split("\t", 1)[0].strip()
        if not file_id:
            continue
        path = folder / f"{file_id}.wav"
        if not path.exists() and (folder / "wavs" / f"{file_id}.wav").exists():
            path = folder / "wavs" / f"{file_id}.wav"
        m = SLR_SPEAKER.match(file_id)
        items.append(AudioItem(path.resolve(), None, f"{m[1]}_{m[2]}" if m else None))
    return items


def _read_indictts(folder: Path, root: Path) -> list[AudioItem]:
    """IndicTTS: ``<speaker>/wav/*.wav`` with ``txt.done.data``; the speaker is the folder."""
    speaker = folder.relative_to(root).as_posix() if folder != root else folder.name
    wavs = sorted(p for p in (folder / "wav").rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
    return [AudioItem(p.resolve(), None, speaker) for p in wavs]


def read_manifest(path: str | Path) -> list[AudioItem]:
    """Read a CSV/TSV (with a header row) or JSONL manifest.

    The path column may be called any of `PATH_KEYS`; optional columns are a duration in seconds
    (`DURATION_KEYS`), a speaker (`SPEAKER_KEYS`) and a split label (`SPLIT_KEYS`). Relative paths
    are resolved against the manifest's folder.

    Raises:
        CodecError: unreadable manifest, no path column, or a malformed JSON line.
    """
    path = Path(path)
    rows: list[dict] = []
    try:
        if path.suffix.lower() == ".jsonl":
            for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as e:
                        raise CodecError(f"manifest {path} line {n} is not valid JSON: {e}") from e
        else:
            delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
            with path.open(encoding="utf-8", newline="") as f:
                reader = csv.DictReader(f, delimiter=delimiter)
                if reader.fieldnames:  # normalised once here rather than in every row below
                    reader.fieldnames = [str(k).strip().lower() for k in reader.fieldnames]
                rows = list(reader)
    except (OSError, UnicodeDecodeError) as e:
        raise CodecError(f"cannot read manifest {path}: {e}") from e
    if not all(isinstance(r, dict) for r in rows):
        raise CodecError(f"manifest {path} must hold one JSON object per line")
    if path.suffix.lower() == ".jsonl":
        rows = [{str(k).strip().lower(): v for k, v in r.items()} for r in rows]
    else:
        for r in rows:
            r.pop(None, None)  # the values of a row longer than the header
    if not rows:
        return []
    keys = set().union(*rows)
    path_key = next((k for k in PATH_KEYS if k in keys), None)
    if path_key is None:
        raise CodecError(
            f"manifest {path} has no path column (name one of: {', '.join(PATH_KEYS)})"
        )
    dur_key = next((k for k in DURATION_KEYS if k in keys), None)
    spk_key = next((k for k in SPEAKER_KEYS if k in keys), None)
    split_key = next((k for k in SPLIT_KEYS if k in keys), None)
    items = []
    # symbolic links in the manifest's folder are resolved once, not for every file
    folder = str(path.parent.resolve())
    for r in rows:
        if not r.get(path_key):
            continue
        p = os.path.expanduser(str(r[path_key]))
        p = os.path.normpath(p if os.path.isabs(p) else os.path.join(folder, p))
        items.append(
            AudioItem(
                Path(p),
                _as_float(r.get(dur_key)) if dur_key else None,
                str(r[spk_key]) if spk_key and r.get(spk_key) not in (None, "") else None,
                str(r[split_key]).strip().lower() if split_key and r.get(split_key) else None,
            )
        )
    return _dedupe(items)


def _as_float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
