"""Teacher targets for distillation into codebook 1 (`loss.teacher`, issue 25).

Two teachers, both read once at start-up and looked up at any time afterwards, so a training
crop gets its targets at the codec's frame centres whatever its offset and the teacher's rate:

- `phones`: a manifest whose `phones` column holds JSON ``[[end_s, "phone"], ...]`` (phone
  segment end times in the file, as `data/synth_corpus.py` writes from Festival's
  `utt.save.segs`). The inventory is the sorted set of phones in the manifest, so the same
  manifest always gives the same ids. A frame's label is the phone whose segment holds the
  frame's centre.
- `features`: a folder with ``teacher.json`` (``{"frame_rate": 50.0, "dim": 768}``) and one
  ``KEY.npy`` of shape (frames, dim) per audio file, KEY the file's path relative to the
  training files' common folder without its suffix (``train/te_0001_f4``). Teacher frame i is
  taken to describe time (i + 0.5) / frame_rate; values at the codec's frame centres are
  linearly interpolated (resampling from any rate).

A file whose teacher is missing, unreadable or misaligned (its length differs from the audio's
by more than `tolerance_s`) is a one-line `CodecError` at start-up, or (``on_mismatch: skip``)
one logged line and no targets for that file (it still trains reconstruction).
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import TeacherConfig
from ..errors import CodecError
from .corpora import PATH_KEYS

IGNORE = -1  # label of a frame without a teacher value (losses.distill.IGNORE)
TEACHER_JSON = "teacher.json"


def frame_centres(start: int, n_frames: int, hop: int, sample_rate: int) -> np.ndarray:
    """Times (s, in the file) of the centres of `n_frames` codec frames whose first sample is
    file sample `start` (negative when a crop is zero-padded in front): (n_frames,) float64."""
    return (start + (np.arange(n_frames) + 0.5) * hop) / sample_rate


def phones_at(ends: np.ndarray, ids: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Phone id at each time: the segment [end[i-1], end[i]) holding it (the first segment
    starts at 0); `IGNORE` before 0 or after the last end. Returns (len(times),) int64."""
    k = np.searchsorted(ends, times, side="right")
    out = np.full(len(times), IGNORE, dtype=np.int64)
    inside = (times >= 0) & (k < len(ends))
    out[inside] = ids[k[inside]]
    return out


def features_at(
    feats: np.ndarray, frame_rate: float, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Teacher features (N, C) at `frame_rate`, linearly interpolated at `times` (s).

    Returns:
        ((len(times), C) float32, (len(times),) bool valid: inside the teacher's span).
    """
    n = feats.shape[0]
    pos = times * frame_rate - 0.5  # teacher frame i is centred at (i + 0.5) / frame_rate
    valid = (times >= 0) & (times <= n / frame_rate) & (n > 0)
    p = np.clip(pos, 0, max(n - 1, 0))
    lo = np.floor(p).astype(np.int64)
    hi = np.minimum(lo + 1, max(n - 1, 0))
    w = (p - lo)[:, None]
    if n == 0:
        return np.zeros((len(times), feats.shape[1]), np.float32), valid
    out = (1 - w) * np.asarray(feats[lo], np.float32) + w * np.asarray(feats[hi], np.float32)
    return out.astype(np.float32), valid


@dataclass
class Teacher:
    """Targets for a set of audio files, by absolute path.

    Attributes:
        kind: phones | features.
        dim: phone classes or feature size.
        phones: the phone inventory (phones: id -> phone).
        frame_rate: the features' declared rate (features).
        segments: path -> (ends (N,) float64 s, ids (N,) int64) (phones).
        files: path -> the .npy file (features).
        skipped: path -> why it has no targets (on_mismatch: skip).
    """

    kind: str
    dim: int
    phones: list[str] = field(default_factory=list)
    frame_rate: float = 0.0
    segments: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def has(self, path: str) -> bool:
        return path in self.segments or path in self.files

    def targets(self, path: str, times: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Targets of file `path` at `times` (s).

        Returns:
            phones: ((F,) int64 ids or IGNORE, (F,) bool); features: ((F, dim) float32,
            (F,) bool). A file without targets gives IGNORE / zeros and all False.
        """
        f = len(times)
        if self.kind == "phones":
            if path not in self.segments:
                return np.full(f, IGNORE, np.int64), np.zeros(f, bool)
            ids = phones_at(*self.segments[path], times)
            return ids, ids != IGNORE
        if path not in self.files:
            return np.zeros((f, self.dim), np.float32), np.zeros(f, bool)
        feats = np.load(self.files[path], mmap_mode="r", allow_pickle=False)
        return features_at(feats, self.frame_rate, times)


def _parse_phones(text: str, where: str) -> list[tuple[float, str]]:
    try:
        rows = json.loads(text)
        out = [(float(t), str(p)) for t, p in rows]
    except (ValueError, TypeError) as e:
        raise CodecError(f"{where}: the phones column is not JSON [[end_s, phone], ...]") from e
    ends = [t for t, _ in out]
    if any(not math.isfinite(t) for t in ends) or any(b <= a for a, b in zip(ends, ends[1:])):
        raise CodecError(f"{where}: phone end times must be finite and increasing")
    return out


def read_phone_manifest(path: str | Path) -> dict[str, list[tuple[float, str]]]:
    """Absolute audio path -> its phone segments, from a CSV/TSV manifest with a path column
    (resolved against the manifest's folder, as `corpora.read_manifest` does) and `phones`."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    try:
        with path.open(encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            rows = [{str(k).strip().lower(): v for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError) as e:
        raise CodecError(f"cannot read the phone teacher manifest {path}: {e}") from e
    keys = set().union(*rows) if rows else set()
    path_key = next((k for k in PATH_KEYS if k in keys), None)
    if path_key is None or "phones" not in keys:
        raise CodecError(
            f"manifest {path} needs a path column and a 'phones' column (loss.teacher.kind: phones)"
        )
    folder = str(path.parent.resolve())
    out = {}
    for n, row in enumerate(rows, 2):
        if row.get(path_key) and row.get("phones"):
            p = os.path.expanduser(str(row[path_key]))
            p = os.path.normpath(p if os.path.isabs(p) else os.path.join(folder, p))
            out[p] = _parse_phones(row["phones"], f"{path} line {n}")
    return out


def _problem(cfg: TeacherConfig, path: str, why: str, teacher: Teacher, log) -> None:
    if cfg.on_mismatch == "error":
        raise CodecError(
            f"distillation teacher: {why} ({path}); fix the teacher or set "
            "loss.teacher.on_mismatch=skip"
        )
    teacher.skipped[path] = why
    log(f"distillation: no teacher targets for {path}: {why} (skipped)")


def load_teacher(
    cfg: TeacherConfig,
    paths: Sequence[str],
    durations: Sequence[float],
    log: Callable[[str], None] = print,
) -> Teacher:
    """The teacher of `cfg` for audio files `paths` (absolute) of `durations` (s), checked.

    Raises:
        CodecError: the teacher cannot be read, is inconsistent with `cfg.dim`, or (with
            ``on_mismatch: error``) a file's targets are missing or misaligned.
    """
    if cfg.kind == "phones":
        table = read_phone_manifest(cfg.path)
        inventory = sorted({p for segs in table.values() for _, p in segs})
        if len(inventory) > cfg.dim:
            raise CodecError(
                f"{cfg.path} has {len(inventory)} phones but loss.teacher.dim is {cfg.dim}; "
                f"set loss.teacher.dim={len(inventory)} or more"
            )
        index = {p: i for i, p in enumerate(inventory)}
        teacher = Teacher("phones", cfg.dim, phones=inventory)
        for path, dur in zip(paths, durations):
            segs = table.get(path)
            if not segs:
                _problem(cfg, path, "no phone segments in the manifest", teacher, log)
                continue
            if abs(segs[-1][0] - dur) > cfg.tolerance_s:
                why = f"phones end at {segs[-1][0]:.3f} s, the audio at {dur:.3f} s"
                _problem(cfg, path, why, teacher, log)
                continue
            ends = np.array([t for t, _ in segs], np.float64)
            ids = np.array([index[p] for _, p in segs], np.int64)
            teacher.segments[path] = (ends, ids)
        return teacher
    return _load_features(cfg, paths, durations, log)


def _load_features(
    cfg: TeacherConfig, paths: Sequence[str], durations: Sequence[float], log
) -> Teacher:
    folder = Path(cfg.path)
    meta_file = folder / TEACHER_JSON
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        rate, dim = float(meta["frame_rate"]), int(meta["dim"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CodecError(
            f'cannot read {meta_file} (it must declare {{"frame_rate": ..., "dim": ...}}): '
            f"{str(e).splitlines()[0] if str(e) else type(e).__name__}"
        ) from e
    if not (math.isfinite(rate) and rate > 0):
        raise CodecError(f"{meta_file}: frame_rate must be a positive number, got {rate}")
    if dim != cfg.dim:
        raise CodecError(f"{meta_file} declares dim {dim}; set loss.teacher.dim={dim}")
    teacher = Teacher("features", dim, frame_rate=rate)
    root = os.path.commonpath(list(paths)) if len(paths) > 1 else os.path.dirname(paths[0])
    for path, dur in zip(paths, durations):
        key = os.path.splitext(os.path.relpath(path, root))[0]
        npy = folder / f"{key}.npy"
        if not npy.is_file():
            _problem(cfg, path, f"no teacher file {npy}", teacher, log)
            continue
        try:
            arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as e:
            _problem(cfg, path, f"unreadable teacher file {npy}: {e}", teacher, log)
            continue
        if arr.ndim != 2 or arr.shape[1] != dim:
            _problem(cfg, path, f"{npy} has shape {arr.shape}, not (frames, {dim})", teacher, log)
            continue
        if abs(arr.shape[0] / rate - dur) > cfg.tolerance_s:
            why = f"{arr.shape[0]} frames at {rate:g}/s = {arr.shape[0] / rate:.3f} s"
            _problem(cfg, path, f"{why}, the audio is {dur:.3f} s", teacher, log)
            continue
        teacher.files[path] = str(npy)
    return teacher
