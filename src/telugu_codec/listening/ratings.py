"""One rater's answers as a JSON file next to the report: ``mushra-<rater>-<time>-<id>.json``.

Every rater (every session of the test page) gets a file of their own, named when the session
starts, so a second rater never overwrites the first. The file is rewritten after each trial
(temp file + `os.replace`: never half-written), so a test broken off half-way keeps the trials
that were done. The format::

    {"format": "telugu-codec-mushra", "version": 1, "rater": "...", "session": "...",
     "seed": 123, "started": "2026-...Z", "n_trials": 5,
     "trials": [{"item": "...", "order": ["opus-6k", "reference", ...],
                 "scores": {"opus-6k": 41, "reference": 100, ...}, "submitted": "..."}]}
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write_text
from ..errors import CodecError

FORMAT = "telugu-codec-mushra"
VERSION = 1
RATINGS_GLOB = "mushra-*.json"
MAX_RATER_CHARS = 80
SCORE_RANGE = (0, 100)

_names_lock = threading.Lock()
_taken: set[Path] = set()  # names handed out by this process and not yet written


@dataclass
class TrialRating:
    """One trial's answer: the score behind each slider, by system name (0-100)."""

    item: str
    order: list[str]
    scores: dict[str, int]
    submitted: str


@dataclass
class Ratings:
    """One rater's session (see the module docstring for the file format)."""

    rater: str
    session: str
    seed: int
    started: str
    n_trials: int
    trials: list[TrialRating] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return len({t.item for t in self.trials}) >= self.n_trials


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rater_slug(rater: str) -> str:
    """`rater` as a file-name part: letters, digits, ``-`` and ``_`` only ("rater" if empty)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", rater).strip("-")[:40]
    return slug or "rater"


def new_ratings_path(report_dir: Path, rater: str) -> Path:
    """A ratings file name in `report_dir` that no file and no other session has.

    The name holds the rater, the UTC time and a random id; it is also checked against the
    folder and against every name this process has handed out.
    """
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with _names_lock:
        while True:
            name = f"mushra-{rater_slug(rater)}-{stamp}-{uuid.uuid4().hex[:8]}.json"
            path = Path(report_dir) / name
            if path not in _taken and not path.exists():
                _taken.add(path)
                return path


def save_ratings(path: Path, ratings: Ratings) -> None:
    """Write `ratings` to `path` atomically (temp file + `os.replace`)."""
    record = {"format": FORMAT, "version": VERSION, **asdict(ratings)}
    atomic_write_text(path, json.dumps(record, indent=1, ensure_ascii=False) + "\n")


def _check(cond: bool, path: Path, what: str) -> None:
    if not cond:
        raise CodecError(f"{path} is not a valid ratings file: {what}")


def _score(value: Any) -> bool:
    lo, hi = SCORE_RANGE
    return isinstance(value, int | float) and not isinstance(value, bool) and lo <= value <= hi


def load_ratings(path: str | Path) -> Ratings:
    """Read and check one ratings file.

    Raises:
        CodecError: unreadable, not JSON, another format or version, or fields that are
            missing or out of range (a score outside 0-100, say).
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CodecError(f"cannot read ratings {path}: {str(e).splitlines()[0]}") from e
    _check(isinstance(data, dict) and data.get("format") == FORMAT, path, "not a MUSHRA file")
    _check(data.get("version") == VERSION, path, f"version {data.get('version')!r}, not {VERSION}")
    for key, kind in (("rater", str), ("session", str), ("started", str), ("n_trials", int)):
        _check(isinstance(data.get(key), kind), path, f"{key!r} missing or not a {kind.__name__}")
    _check(isinstance(data.get("trials"), list), path, "'trials' is not a list")
    trials = []
    for t in data["trials"]:
        ok = isinstance(t, dict) and isinstance(t.get("item"), str)
        ok = ok and isinstance(t.get("scores"), dict) and isinstance(t.get("order"), list)
        _check(ok, path, "a trial without item / order / scores")
        _check(all(_score(v) for v in t["scores"].values()), path, "a score outside 0-100")
        _check(sorted(t["order"]) == sorted(t["scores"]), path, "order and scores disagree")
        when = str(t.get("submitted", ""))
        trials.append(TrialRating(t["item"], list(t["order"]), dict(t["scores"]), when))
    seed = data.get("seed")
    return Ratings(
        data["rater"], data["session"], seed if isinstance(seed, int) else 0, data["started"],
        data["n_trials"], trials,
    )  # fmt: skip


def load_all(report_dir: str | Path) -> list[tuple[Path, Ratings]]:
    """Every ratings file in `report_dir` (sorted by name) with its contents."""
    return [(p, load_ratings(p)) for p in sorted(Path(report_dir).glob(RATINGS_GLOB))]
