"""`DataReport`: what `build_datasets` found and did, and its summary for the training log."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

N_EXAMPLES = 5  # paths kept per skip/convert reason


@dataclass
class DataReport:
    """What `build_datasets` found and did.

    Attributes:
        source: the training data argument.
        layout: how it was read (folder, manifest, slr66, indictts, commonvoice, file).
        split: how validation was chosen: ``hash``, ``speaker-hash``, ``manifest``,
            ``val_data`` or ``none``.
        n_found: files listed (training source plus validation source).
        n_usable: files that passed the checks.
        n_train: files in the training set.
        n_val: files in the validation set (at most cfg.val_max_files).
        n_held_out: files kept out of training for validation (>= n_val).
        hours_train: audio in the training set.
        hours_val: audio in the validation files (whole files, before centre cropping).
        speakers_train: distinct known speakers in training (0 when unknown).
        speakers_val: distinct known speakers in validation.
        skipped: reason -> number of files skipped.
        skipped_examples: reason -> the first few skipped paths.
        converted: conversion -> number of files converted on the fly.
        converted_examples: conversion -> the first few paths.
        cache_files: the scan caches used.
        name: the corpus's label in a mix and in the training logs.
        weight: its share of the training crops in a mix (1.0 alone).
        parts: for a mix, one report per corpus (this report then sums them).
        probed: whether the files were probed at start-up (False: Parquet/Arrow rows, tar
            shards, manifests with durations; unreadable items are then passed over and
            counted during training instead).
        val_seconds: audio one validation runs on (NaN: unknown; set by `build_datasets`).
        hours_unvalidated: audio held out of training but never validated (the held-out
            files beyond ``data.val_max_files``).
    """

    source: str
    layout: str
    split: str
    n_found: int
    n_usable: int
    n_train: int
    n_val: int
    n_held_out: int
    hours_train: float
    hours_val: float
    speakers_train: int
    speakers_val: int
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    converted: dict[str, int] = field(default_factory=dict)
    converted_examples: dict[str, list[str]] = field(default_factory=dict)
    cache_files: list[str] = field(default_factory=list)
    name: str = "data"
    weight: float = 1.0
    parts: list[DataReport] = field(default_factory=list)
    probed: bool = True
    val_seconds: float = math.nan
    hours_unvalidated: float = 0.0

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def summary(self) -> str:
        """A few human-readable lines for the training log."""
        if self.parts:
            lines = [
                f"data: a mix of {len(self.parts)} corpora, train {_files(self.n_train)} / "
                f"{_hours(self.hours_train)}, val {self.n_val} files; crops drawn "
                + ", ".join(f"{p.name} {100 * p.weight:.0f} %" for p in self.parts)
            ]
            lines += self._validation_lines()
            for p in self.parts:
                lines += ["  " + line for line in p.summary().splitlines()]
            return "\n".join(lines)
        found = (
            f"{self.n_found} files, {self.n_usable} usable"
            if self.probed
            else f"{_files(self.n_found)} files, not probed"
        )
        lines = [
            f"data: {self.source} ({self.layout}): {found}; "
            f"train {_files(self.n_train)} files / {_hours(self.hours_train)}, "
            f"val {self.n_val} files / {_hours(self.hours_val)} (split: {self.split})"
        ]
        if self.speakers_train or self.speakers_val:
            lines.append(f"  speakers: {self.speakers_train} train, {self.speakers_val} val")
        lines += self._validation_lines()
        for title, counts, examples in (
            ("skipped", self.skipped, self.skipped_examples),
            ("converted", self.converted, self.converted_examples),
        ):
            for reason, count in sorted(counts.items()):
                shown = ", ".join(examples.get(reason, [])[:3])
                lines.append(f"  {title} {count} ({reason}): {shown}")
        if self.converted.get("upsampled_low_rate"):
            lines.append(
                "  note: upsampled files have no content above their old Nyquist frequency; "
                "set data.min_sample_rate to skip them"
            )
        return "\n".join(lines)

    def _validation_lines(self) -> list[str]:
        """What a validation costs, and the held-out audio it never sees."""
        lines = []
        if not math.isnan(self.val_seconds):
            lines.append(
                f"  validation: {self.n_val} files, {_duration(self.val_seconds)} of audio per "
                "validation (data.val_max_files, data.val_max_seconds; each validation's log "
                "line says how long it took)"
            )
        unvalidated = self.n_held_out - self.n_val
        if unvalidated > 0 and self.split in ("hash", "speaker-hash"):
            lines.append(
                f"  note: {unvalidated} held-out files ({_hours(self.hours_unvalidated)}) are "
                "neither trained on nor validated; data.val_hold_out=validated trains on them "
                "(a new training set: not for a resumed run), or raise data.val_max_files"
            )
        return lines


def _hours(h: float) -> str:
    return "? h" if math.isnan(h) else f"{h:.2f} h"


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _files(n: int) -> str:
    return "?" if n < 0 else str(n)
