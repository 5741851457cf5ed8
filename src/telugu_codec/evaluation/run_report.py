"""`report_run`: a training run's metrics.jsonl as PNG plots and a report.md."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..checkpoint import atomic_write_text, make_output_dir
from ..errors import CodecError
from .run_log import codebook_keys, read_metrics_log, series
from .run_plots import plot_codebooks, plot_losses, plot_training, plot_val


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def report_run(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Plots and a report.md for a training run, from its metrics.jsonl.

    Writes into `out_dir` (default ``run_dir/report``): losses.png, quality.png (SNR and
    SI-SDR), amplitude.png (with the 0.5-2 guard band), mel.png, codebooks.png,
    discriminator.png, training.png (gradient norms, learning rate, throughput), whichever the
    log has data for, each with the guard events as dashed vertical lines, and report.md
    linking them with the last validation values and the event list.

    Args:
        run_dir: the training run folder (holding metrics.jsonl).
        out_dir: where to write; created if needed.

    Returns:
        The path of report.md.

    Raises:
        CodecError: if there is no metrics.jsonl or it has no records.
    """
    from ..train.logging import METRICS_FILE

    run = Path(run_dir)
    if not run.is_dir():
        raise CodecError(f"run folder {run} does not exist")
    log = read_metrics_log(run / METRICS_FILE)
    out = Path(out_dir) if out_dir is not None else run / "report"
    make_output_dir(out)

    plots: list[tuple[str, Path | None]] = [
        ("Losses", plot_losses(log, out / "losses.png")),
        (
            "SNR and SI-SDR",
            plot_val(
                log,
                out / "quality.png",
                [("val/snr", "SNR"), ("val/sisdr", "SI-SDR"), ("val/si_sdr", "SI-SDR")],
                "dB",
                "Validation SNR / SI-SDR",
            ),
        ),
        (
            "Amplitude ratio",
            plot_val(
                log,
                out / "amplitude.png",
                [("val/amplitude_ratio", "RMS out / RMS in")],
                "RMS out / RMS in (log scale)",
                "Validation amplitude ratio (guard band 0.5-2)",
                guard=(0.5, 2.0),
                reference=1.0,
                log_ticks=(0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4),
            ),
        ),
        (
            "Mel distance",
            plot_val(
                log,
                out / "mel.png",
                [("val/mel_distance", "mel distance (mean |Δ log10 mel|)")],
                "mel distance",
                "Validation mel distance (lower is better)",
            ),
        ),
        (
            "PESQ",
            plot_val(
                log, out / "pesq.png", [("val/pesq", "PESQ-WB")], "PESQ-WB (MOS)", "Validation PESQ"
            ),
        ),
        ("Codebooks", plot_codebooks(log, out / "codebooks.png")),
        (
            "Discriminator",
            plot_val(
                log,
                out / "discriminator.png",
                [("val/d_acc_real", "accuracy on real"), ("val/d_acc_fake", "accuracy on fake")],
                "accuracy",
                "Discriminator accuracy (validation)",
            ),
        ),
        ("Optimisation", plot_training(log, out / "training.png")),
    ]

    last_train = log.train[-1] if log.train else {}
    lines = [
        f"# Training run report: `{run}`",
        "",
        f"- training records: {len(log.train)}, validation records: {len(log.val)}, "
        f"events: {len(log.events)}"
        + (f", unreadable lines skipped: {log.bad_lines}" if log.bad_lines else ""),
        f"- last step: {max((int(r['step']) for r in log.train + log.val), default=0)}",
    ]
    if "time" in last_train and log.train and "time" in log.train[0]:
        hours = (float(last_train["time"]) - float(log.train[0]["time"])) / 3600
        lines.append(f"- wall time covered by the log: {hours:.2f} h")
    if log.val:
        last = log.val[-1]
        lines += [
            "",
            f"## Last validation (step {last['step']})",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        per_q = ("val/usage/q", "val/perplexity/q", "val/dead_codes/q")
        lines += [
            f"| {k} | {_fmt_value(v)} |"
            for k, v in last.items()
            if k not in ("kind", "step", "time") and not k.startswith(per_q)
        ]
        n_q = len(codebook_keys([last], "usage") or codebook_keys([last], "perplexity"))
        if n_q:
            lines += ["", "| codebook | usage | perplexity | dead codes |", "|---|---|---|---|"]
            for q in range(n_q):
                vals = [_fmt_value(last.get(f"{p}{q}", "")) for p in per_q]
                lines.append(f"| {q} | " + " | ".join(vals) + " |")
        x, y = series(log.val, "val/mel_distance")
        if x.size and np.isfinite(y).any():
            i = int(np.nanargmin(y))
            lines += ["", f"Best validation mel distance: {y[i]:.4f} at step {int(x[i])}."]
    if log.events:
        lines += ["", "## Events", "", "| step | event | message |", "|---|---|---|"]
        for ev in log.events:
            msg = str(ev.get("message", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {ev['step']} | {ev.get('event', '')} | {msg} |")
    lines += [
        "",
        "## Plots",
        "",
        "Dashed vertical lines mark events (rollback, warning, stop, ...).",
    ]
    for title, p in plots:
        if p is not None:
            lines += ["", f"### {title}", "", f"![{title}]({p.name})"]
    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
