"""Train / validation split: which usable files validate, chosen deterministically.

Validation comes from separate validation data when given; else from a manifest's split column
when every row has one; else from `hash_split`, which hashes each file's path relative to the
corpus root (or its speaker), so adding or removing files never moves the others and moving a
corpus keeps its split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from ..config import DataConfig
from .corpora import relative_key
from .scan import ScanEntry

VAL_SPLITS = frozenset({"val", "valid", "validation", "dev"})
EXCLUDED_SPLITS = frozenset({"test"})


def _hash01(key: str) -> float:
    """A stable pseudo-random number in [0, 1) from a string."""
    return int.from_bytes(hashlib.sha1(key.encode("utf-8")).digest()[:8], "big") / 2.0**64


def _rel_key(path: Path, root: Path) -> str:
    """The split key of a file: its path relative to the corpus root, so moving a corpus keeps
    its split."""
    return relative_key(path, root)


def hash_split(
    entries: list[ScanEntry], root: Path, val_fraction: float, speaker_disjoint: bool = False
) -> tuple[list[ScanEntry], list[ScanEntry]]:
    """Deterministic train/validation split by hashing each file's relative path.

    A file (or, with `speaker_disjoint`, a whole speaker) goes to validation when the hash of its
    key falls below `val_fraction`. Adding or removing files never moves the others. When the
    hash puts nothing (or everything) in validation but there are at least two units, the unit
    with the smallest (largest) hash is moved, so both sides are non-empty.

    Returns:
        (train, val), each in input order.
    """

    def unit(e: ScanEntry) -> str:
        key = _rel_key(e.item.path, root)
        if speaker_disjoint and e.item.speaker is not None:
            return "speaker:" + e.item.speaker
        return "file:" + key

    keys = [unit(e) for e in entries]
    hashes = {u: _hash01(u) for u in keys}
    units = sorted(hashes, key=hashes.__getitem__)
    val_units = {u for u in units if hashes[u] < val_fraction}
    if val_fraction > 0 and len(units) >= 2:
        if not val_units:
            val_units = {units[0]}
        elif len(val_units) == len(units):
            val_units.discard(units[-1])
    train = [e for e, u in zip(entries, keys) if u not in val_units]
    val = [e for e, u in zip(entries, keys) if u in val_units]
    return train, val


def speakers(entries: list[ScanEntry]) -> set[str]:
    """The distinct known speakers of `entries`."""
    return {e.item.speaker for e in entries if e.item.speaker is not None}


def split_entries(
    usable: list[ScanEntry],
    root: Path,
    cfg: DataConfig,
    val_entries: list[ScanEntry] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[list[ScanEntry], list[ScanEntry], str]:
    """Choose the training and validation files of one corpus.

    Validation is `val_entries` when given (those files, and with ``cfg.speaker_disjoint``
    their speakers, leave the training set); else the manifest's split column when every row
    has one (``val``/``valid``/``validation``/``dev`` -> validation, ``test`` -> neither); else
    `hash_split` with ``cfg.val_fraction`` (by speaker when ``cfg.speaker_disjoint``).
    With ``cfg.val_hold_out: validated`` a hash split keeps out of training only the files
    that are validated (`hold_out_validated`); labelled splits are left as they are.

    Args:
        usable: the usable files of the training source.
        root: the training corpus folder (hash keys are relative to it).
        cfg: data settings.
        val_entries: the usable files of a separate validation source, if any.
        log: receives a line for each file set aside.

    Returns:
        (train, val, method) with method ``val_data``, ``manifest``, ``hash`` or
        ``speaker-hash``.
    """
    labels = {e.item.split for e in usable}
    if val_entries is not None:
        val = val_entries
        val_paths = {e.item.path for e in val}
        train = [e for e in usable if e.item.path not in val_paths]
        if len(train) < len(usable):
            log(f"  {len(usable) - len(train)} validation files removed from the training set")
        method = "val_data"
    elif None not in labels and labels & VAL_SPLITS:
        train = [e for e in usable if e.item.split not in VAL_SPLITS | EXCLUDED_SPLITS]
        val = [e for e in usable if e.item.split in VAL_SPLITS]
        method = "manifest"
        if cfg.speaker_disjoint and speakers(train) & speakers(val):
            log("  the manifest's split shares speakers; using a speaker hash split instead")
            train, val = hash_split(usable, root, cfg.val_fraction, True)
            method = "speaker-hash"
    else:
        train, val = hash_split(usable, root, cfg.val_fraction, cfg.speaker_disjoint)
        method = "speaker-hash" if cfg.speaker_disjoint else "hash"
    if cfg.speaker_disjoint and method == "val_data":
        shared = speakers(val)
        kept = [e for e in train if e.item.speaker not in shared]
        if len(kept) < len(train):
            log(f"  {len(train) - len(kept)} training files of validation speakers removed")
        train = kept
    if cfg.val_hold_out == "validated" and method in ("hash", "speaker-hash"):
        by_speaker = method == "speaker-hash"
        train, val = hold_out_validated(usable, val, root, cfg.val_max_files, by_speaker)
    return train, val, method


def hold_out_validated(
    usable: list[ScanEntry],
    held_out: list[ScanEntry],
    root: Path,
    max_files: int,
    by_speaker: bool = False,
) -> tuple[list[ScanEntry], list[ScanEntry]]:
    """Keep out of training only the held-out files that validation uses.

    Validation uses `validation_files` of the held-out set (at most `max_files`); every other
    usable file trains, except, when the held-out set was chosen by speaker (`by_speaker`),
    other files of a validated speaker (no validated speaker is trained on). Otherwise the
    files kept out are exactly the validated ones.

    Args:
        usable: every usable file of the corpus, in corpus order.
        held_out: the files a hash split held out (a subset of `usable`).
        root: the corpus folder (hash keys are relative to it).
        max_files: ``data.val_max_files``.
        by_speaker: the split was speaker-disjoint.

    Returns:
        (train, validated), train in corpus order.
    """
    validated = validation_files(held_out, root, max_files)
    chosen = {e.item.path for e in validated}
    kept_speakers = speakers(validated) if by_speaker else set()

    def trains(e: ScanEntry) -> bool:
        return e.item.path not in chosen and e.item.speaker not in kept_speakers

    return [e for e in usable if trains(e)], validated


def validation_files(val: list[ScanEntry], root: Path, max_files: int) -> list[ScanEntry]:
    """At most `max_files` of the validation files, chosen by the hash of their relative path."""
    val = sorted(val, key=lambda e: _hash01(_rel_key(e.item.path, root)))
    return val[: max(max_files, 0)]
