"""The training-run report's figures: losses, validation metrics, codebooks, optimisation.

Each `plot_*` writes one PNG from a `RunLog` (or returns None when the log has no data for it),
with the run's events (rollback, warning, stop, ...) as dashed vertical lines.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .plots import figure
from .run_log import RunLog, codebook_keys, record_keys, series


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    """Centered moving average ignoring NaNs (window n)."""
    if n <= 1 or y.size < n:
        return y
    ok = np.isfinite(y)
    k = np.ones(n)
    num = np.convolve(np.where(ok, y, 0.0), k, mode="same")
    den = np.convolve(ok.astype(float), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


_EVENT_COLORS = {
    "rollback": "tab:red",
    "warning": "tab:orange",
    "stop": "black",
    "nonfinite": "tab:purple",
    "resume": "tab:gray",
}


def _mark_events(ax: Any, events: list[dict[str, Any]], seen: set[str]) -> None:
    """Vertical lines at event steps; each event kind labelled once per axes."""
    for ev in events:
        kind = str(ev.get("event", "event"))
        label = f"event: {kind}" if kind not in seen else None
        seen.add(kind)
        ax.axvline(
            float(ev["step"]),
            color=_EVENT_COLORS.get(kind, "tab:brown"),
            linestyle="--",
            linewidth=1,
            alpha=0.8,
            label=label,
        )


def _plain_log_axis(ax: Any, ticks: Sequence[float] | None = None) -> None:
    """Log y axis labelled with plain numbers (0.5, 1, 2) instead of 10^x."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    if ticks is not None:
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in ticks if lo <= t <= hi])
        ax.set_ylim(lo, hi)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _finish(ax: Any, ylabel: str, title: str) -> None:
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def _legend_right(ax: Any, **kwargs: Any) -> None:
    """A legend outside the axes on the right, so it never hides data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs
        )


def _figure_legend(fig: Any, ax: Any, ncol: int = 6) -> None:
    """One legend for a multi-panel figure, below the panels, from the handles of `ax`."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8)


def plot_losses(log: RunLog, path: Path) -> Path | None:
    """losses.png: every ``loss/*`` key per logged step, with a moving mean."""
    keys = record_keys(log.train, "loss/")
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = figure(4.2 * cols, 2.8 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    window = max(1, len(log.train) // 50)
    for ax, key in zip(axes, keys):
        x, y = series(log.train, key)
        ax.plot(x, y, color="tab:blue", alpha=0.3, linewidth=0.8, label="per logged step")
        if window > 1:
            ax.plot(x, _smooth(y, window), color="tab:blue", label=f"moving mean of {window}")
        _mark_events(ax, log.events, set())
        _finish(ax, "loss", key)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle("Training losses (gaps: non-finite values)")
    _figure_legend(fig, axes[0])
    fig.savefig(path)
    return path


def plot_val(
    log: RunLog,
    path: Path,
    keys: Sequence[tuple[str, str]],
    ylabel: str,
    title: str,
    guard: tuple[float, float] | None = None,
    reference: float | None = None,
    log_ticks: Sequence[float] | None = None,
) -> Path | None:
    """One validation figure of `keys` (key, label), with an optional guard band and flags."""
    present = [(k, label) for k, label in keys if series(log.val, k)[0].size]
    if not present:
        return None
    fig = figure(8.5, 4.0)
    ax = fig.subplots()
    if guard is not None:
        ax.axhspan(guard[0], guard[1], color="tab:green", alpha=0.1, label="guard band")
    if reference is not None:
        ax.axhline(reference, color="tab:green", linewidth=1, label=f"{reference:g} (ideal)")
    for key, label in present:
        x, y = series(log.val, key)
        ax.plot(x, y, marker="o", markersize=3, label=label)
    if guard is not None:  # validations the trainer flagged as unhealthy
        x, y = series(log.val, present[0][0])
        steps = {float(r["step"]) for r in log.val if str(r.get("health", "healthy")) != "healthy"}
        flagged = [i for i, s in enumerate(x) if s in steps]
        if flagged:
            ax.plot(
                x[flagged], y[flagged], "x", color="tab:red", markersize=9, label="health warning"
            )
    _mark_events(ax, log.events, set())
    if log_ticks is not None:
        _plain_log_axis(ax, log_ticks)
    _finish(ax, ylabel, title)
    _legend_right(ax)
    fig.savefig(path)
    return path


def plot_codebooks(log: RunLog, path: Path) -> Path | None:
    """codebooks.png: usage, perplexity and dead codes of each codebook."""
    panels = [
        ("usage", "share of codes used (0-1)", "Codebook usage"),
        ("perplexity", "perplexity (codes)", "Codebook perplexity"),
        ("dead_codes", "dead codes (count)", "Dead codes"),
    ]
    panels = [p for p in panels if codebook_keys(log.val, p[0])]
    if not panels:
        return None
    from matplotlib import colormaps

    fig = figure(4.3 * len(panels) + 1.3, 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    cmap = colormaps["viridis"]
    for ax, (what, ylabel, title) in zip(axes, panels):
        keys = codebook_keys(log.val, what)
        for i, key in enumerate(keys):
            x, y = series(log.val, key)
            color = cmap(i / max(1, len(keys) - 1))
            ax.plot(x, y, color=color, marker=".", label=f"codebook {key.rsplit('/q', 1)[1]}")
        _mark_events(ax, log.events, set())
        _finish(ax, ylabel, title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7)
    fig.suptitle("Residual VQ codebooks (validation; codebook 0 is the first stage)")
    fig.savefig(path)
    return path


def plot_training(log: RunLog, path: Path) -> Path | None:
    """training.png: gradient norms, learning rates and throughput (moving means)."""
    panels = [
        (["grad_norm/g", "grad_norm/d"], "gradient norm (log scale)", "Gradient norms", True),
        (["lr/g", "lr/d"], "learning rate", "Learning rate", False),
        (["steps_per_s"], "steps / s", "Throughput", False),
    ]
    panels = [p for p in panels if any(series(log.train, k)[0].size for k in p[0])]
    if not panels:
        return None
    fig = figure(4.5 * len(panels), 3.9)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    window = max(1, len(log.train) // 50)
    for ax, (keys, ylabel, title, log_y) in zip(axes, panels):
        for key in keys:
            x, y = series(log.train, key)
            if x.size:
                ax.plot(x, _smooth(y, window), label=key)
        _mark_events(ax, log.events, set())
        if log_y:
            _plain_log_axis(ax)
        _finish(ax, ylabel, title)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Optimisation (moving mean of {window} logged steps)")
    fig.savefig(path)
    return path
