"""The evaluation's figures: spectrograms of each system, quality vs bitrate curves."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .report import metric_direction, metric_label
from .results import EvaluationReport

CURVE_METRICS: tuple[str, ...] = ("pesq_wb", "stoi", "mel_distance")


def figure(width: float, height: float) -> Any:
    """A matplotlib `Figure` (no pyplot state) of `width` x `height` inches."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_spectrograms(
    path: Path, original: np.ndarray, decoded: dict[str, np.ndarray], sample_rate: int, title: str
) -> Path:
    """Log-magnitude spectrograms of `original` and each decoded version, one row each.

    Args:
        path: PNG to write.
        original: (T,) reference.
        decoded: system name -> (T,) decoded audio.
        sample_rate: their rate.
        title: shown above the figure (the file name).
    """
    import torch

    from ..spectral import stft_magnitude

    signals = {"original": original, **decoded}
    n_fft, hop = 512, 128
    specs = {}
    for name, x in signals.items():
        mag = stft_magnitude(torch.from_numpy(np.asarray(x, np.float32))[None], n_fft, hop)[0]
        specs[name] = (20 * torch.log10(mag.clamp_min(1e-5))).numpy()
    vmax = float(specs["original"].max())
    vmin = vmax - 80.0
    fig = figure(9, 1.35 * len(specs) + 0.6)
    axes = fig.subplots(len(specs), 1, sharex=True, squeeze=False)[:, 0]
    extent = (0, len(original) / sample_rate, 0, sample_rate / 2000)
    image = None
    for ax, (name, spec) in zip(axes, specs.items()):
        image = ax.imshow(
            spec, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap="magma"
        )
        ax.set_ylabel("kHz")
        ax.text(
            0.005, 0.93, name, transform=ax.transAxes, color="white", fontsize=9, va="top",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 2, "edgecolor": "none"},
        )  # fmt: skip
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"Spectrograms: {title}")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="magnitude (dB)", shrink=0.6)
    fig.savefig(path)
    return path


_FAMILY_STYLE = {
    "codec": ("tab:blue", "o", "this codec"),
    "opus": ("tab:orange", "s", "Opus (libopus, VoIP)"),
    "codec2": ("tab:green", "^", "Codec2"),
}


def plot_curves(path: Path, report: EvaluationReport, keys: Sequence[str] = CURVE_METRICS) -> Path:
    """Metric vs measured bitrate, one line per system family, 95 % intervals as error bars."""
    shown = [k for k in keys if k in report.metric_keys] or report.metric_keys[:3]
    fig = figure(4.2 * len(shown), 3.8)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, key in zip(axes, shown):
        any_value = False
        for family, (color, marker, label) in _FAMILY_STYLE.items():
            rows = [s for s in report.summaries if s.family == family]
            rows = [s for s in rows if s.metrics[key].mean is not None]
            if not rows:
                continue
            rows.sort(key=lambda s: s.kbps.mean or 0.0)
            x = [s.kbps.mean for s in rows]
            y = [s.metrics[key].mean for s in rows]
            err = [s.metrics[key].half_width or 0.0 for s in rows]
            ax.errorbar(x, y, yerr=err, color=color, marker=marker, capsize=3, label=label)
            for s, xi, yi in zip(rows, x, y):
                ax.annotate(
                    s.setting.split(" ")[0], (xi, yi), textcoords="offset points",
                    xytext=(4, 4), fontsize=7, color=color,
                )  # fmt: skip
            any_value = True
        if not any_value:
            ax.text(0.5, 0.5, "unavailable", ha="center", transform=ax.transAxes)
        ax.set_xscale("log")
        ax.set_xlabel("measured bitrate (kbps, payload)")
        ax.set_ylabel(metric_label(key) + metric_direction(key))
        ax.grid(True, which="both", alpha=0.3)
        ticks = [0.5, 1, 1.5, 2, 3, 6, 9, 12, 24]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)
        ax.set_title(metric_label(key))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Quality vs bitrate ({report.files_evaluated} files, mean ± 95 % CI)")
    fig.savefig(path)
    return path
