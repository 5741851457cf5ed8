"""What an evaluation measured: per-file rows, per-system summaries, the whole report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .intervals import Interval


@dataclass
class FileResult:
    """One (file, system) measurement: a per_file.csv row."""

    file: str
    system: str
    family: str
    nominal_kbps: float
    kbps: float
    file_kbps: float
    seconds: float
    metrics: dict[str, float | None]


@dataclass
class SystemSummary:
    """A report.md row: one system summarised over files."""

    system: str
    family: str
    setting: str
    nominal_kbps: float
    kbps: Interval
    file_kbps: Interval
    metrics: dict[str, Interval]


@dataclass
class SkippedFile:
    """An input that was not measured (or a failed run), with the reason."""

    path: str
    reason: str


@dataclass
class EvaluationReport:
    """Everything `evaluate` measured and wrote.

    Attributes:
        out_dir: the report folder.
        checkpoint: the checkpoint evaluated; model_hash its hash.
        data: the data argument.
        sample_rate: the rate every signal was compared at (the codec's).
        metric_keys: the metric columns, in order.
        summaries: one per system that ran.
        per_file: one per (file, system).
        files_evaluated: files that were read and measured.
        skipped_files: unreadable inputs (each with the reason).
        failed_runs: (file, system) pairs where the system failed (a tool error, say).
        skipped_systems: system name -> why it did not run (a missing tool).
        unavailable_metrics: metric key -> why some values are missing.
        timings: seconds spent per stage ("load", "codec", "baselines", "metrics", "write",
            "total") and the audio seconds evaluated ("audio_seconds").
        paths: name -> written file.
        machine: platform, CPU count, torch threads, tool versions.
    """

    out_dir: Path
    checkpoint: str
    model_hash: str
    data: str
    sample_rate: int
    metric_keys: list[str]
    summaries: list[SystemSummary]
    per_file: list[FileResult]
    files_evaluated: int
    skipped_files: list[SkippedFile]
    failed_runs: list[SkippedFile]
    skipped_systems: dict[str, str]
    unavailable_metrics: dict[str, str]
    timings: dict[str, float]
    paths: dict[str, Path] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def summary(self, system: str) -> SystemSummary:
        """The summary row of `system` (KeyError if it did not run)."""
        for s in self.summaries:
            if s.system == system:
                return s
        raise KeyError(system)
