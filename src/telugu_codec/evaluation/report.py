"""The evaluation's files: report.md (the table and what was counted), per_file.csv, JSON."""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write_text
from ..metrics import METRICS
from .intervals import Interval
from .results import EvaluationReport


def _fmt(iv: Interval, digits: int = 2) -> str:
    if iv.mean is None:
        return "n/a"
    half = iv.half_width
    return f"{iv.mean:.{digits}f}" + (f" ± {half:.{digits}f}" if half is not None else "")


def metric_label(key: str) -> str:
    """The column / axis label of metric key `key` (a sub-key like ``dnsmos_sig`` adds ``SIG``)."""
    if key in METRICS:
        return METRICS[key].label
    for name, spec in METRICS.items():
        if key.startswith(name + "_"):
            return f"{spec.label.split(' (')[0]} {key[len(name) + 1 :].upper()}"
    return key


def metric_direction(key: str) -> str:
    """`` ↑`` or `` ↓`` (higher / lower is better), `` (→1)`` for the amplitude ratio."""
    spec = METRICS.get(key) or next(
        (s for n, s in METRICS.items() if key.startswith(n + "_")), None
    )
    if spec is None or key == "amplitude_ratio":
        return "" if key != "amplitude_ratio" else " (→1)"
    return " ↑" if spec.higher_is_better else " ↓"


def render_markdown(report: EvaluationReport) -> str:
    """The report.md text: settings, the results table, notes on what was counted."""
    lines = [
        "# Codec evaluation",
        "",
        f"- checkpoint: `{report.checkpoint}` (model hash `{report.model_hash}`)",
        f"- data: `{report.data}`: {report.files_evaluated} files evaluated, "
        f"{len(report.skipped_files)} skipped, "
        f"{report.timings.get('audio_seconds', 0.0):.1f} s of audio at {report.sample_rate} Hz",
        f"- machine: {report.machine.get('platform', '?')}, "
        f"{report.machine.get('cpu_count', '?')} CPUs, torch {report.machine.get('torch', '?')} "
        f"({report.machine.get('torch_threads', '?')} threads)",
        "",
        "Values are the mean ± the half-width of the 95 % Student-t interval over files "
        "(no ± with one file). ↑ higher is better, ↓ lower is better.",
        "",
    ]
    head = ["system", "setting", "kbps", "file kbps", "n"]
    head += [metric_label(k) + metric_direction(k) for k in report.metric_keys]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for s in report.summaries:
        row = [s.family, s.setting, _fmt(s.kbps), _fmt(s.file_kbps), str(s.kbps.n)]
        row += [_fmt(s.metrics[k]) for k in report.metric_keys]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "![metrics vs bitrate](curves.png)",
        "",
        "![spectrograms](spectrograms.png)",
        "",
        "## What is counted",
        "",
        "- **kbps** is measured from the bytes each encoder wrote, divided by the input "
        "duration: the packed codes of the `.tcc` bitstream (encoded, serialised, parsed back and "
        "decoded), the Opus audio packets (Ogg pages and the OpusHead/OpusTags headers "
        "excluded), the Codec2 frames (headerless; 700C packs 28 bits into 4 bytes per frame).",
        "- **file kbps** includes each container: the `.tcc` header and packet framing (16 "
        "bytes per file plus about 7 per second), the Ogg pages and Opus headers.",
        "- Codec2 output is shifted back by its measured delay (20-30 ms) before scoring; "
        "STOI does not search for a delay. PESQ-WB aligns by itself.",
        "- The mel distance is the mean |log10 mel| difference (80 bands, n_fft 1024, hop 256).",
    ]
    if report.skipped_systems:
        lines += ["", "## Systems not run", ""]
        lines += [f"- {n}: {r}" for n, r in report.skipped_systems.items()]
    if report.unavailable_metrics:
        lines += ["", "## Metrics with missing values (n/a or a smaller n)", ""]
        lines += [f"- {k}: {r}" for k, r in report.unavailable_metrics.items()]
    if report.skipped_files:
        lines += ["", f"## Skipped files ({len(report.skipped_files)})", ""]
        lines += [f"- `{s.path}`: {s.reason}" for s in report.skipped_files]
    if report.failed_runs:
        lines += ["", f"## Failed runs ({len(report.failed_runs)})", ""]
        lines += [f"- `{s.path}`: {s.reason}" for s in report.failed_runs]
    t = report.timings
    lines += [
        "",
        "## Time",
        "",
        f"{t.get('total', 0):.1f} s in all: load {t.get('load', 0):.1f} s, codec "
        f"{t.get('codec', 0):.1f} s, baselines {t.get('baselines', 0):.1f} s, metrics "
        f"{t.get('metrics', 0):.1f} s, plots and files {t.get('write', 0):.1f} s.",
        "",
        "Per-file values: [per_file.csv](per_file.csv); decoded audio: `audio/`.",
        "",
    ]
    return "\n".join(lines)


def write_csv(path: Path, report: EvaluationReport) -> Path:
    """Write per_file.csv: one row per (file, system) with every metric column."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["file", "system", "family", "nominal_kbps", "kbps", "file_kbps", "seconds"]
    w.writerow(head + report.metric_keys)
    for r in report.per_file:
        vals = [r.metrics.get(k) for k in report.metric_keys]
        w.writerow(
            [r.file, r.system, r.family, f"{r.nominal_kbps:g}", f"{r.kbps:.4f}"]
            + [f"{r.file_kbps:.4f}", f"{r.seconds:.3f}"]
            + ["" if v is None else f"{v:.6g}" for v in vals]
        )
    atomic_write_text(path, buf.getvalue())
    return path


def to_jsonable(obj: Any) -> Any:
    """`obj` (dataclasses, paths, numpy scalars, non-finite floats) as plain JSON values."""
    if hasattr(obj, "__dataclass_fields__"):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def replace_marked(path: Path, sections: dict[str, str]) -> None:
    """Rewrite the generated sections of a document in place: for each ``name -> text``, the
    span from ``<!-- name:start -->`` to ``<!-- name:end -->`` (markers included) becomes
    `text`, which must carry both markers again. A marker pair the file lacks is an error
    (a renamed heading must not make a benchmark's numbers vanish silently).

    Args:
        path: a Markdown file (a model card, BENCHMARKS.md).
        sections: marker name -> the section's new text, markers included.
    """
    text = Path(path).read_text(encoding="utf-8")
    for name, section in sections.items():
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        if not (section.startswith(start) and section.rstrip().endswith(end)):
            raise ValueError(f"the new '{name}' section must begin with {start} and end with {end}")
        pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
        if not pattern.search(text):
            raise ValueError(f"{path} has no {start} ... {end} section")
        text = pattern.sub(lambda _, s=section: s, text)
    atomic_write_text(Path(path), text)
