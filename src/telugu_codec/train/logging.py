"""What a training run writes for people to read: metrics.jsonl, TensorBoard, progress bar."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import torch

from ..checkpoint import atomic_write_text

METRICS_FILE = "metrics.jsonl"


def _clean(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().item() if value.numel() == 1 else value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/Inf; keep them visible as strings
    return value


class MetricsLog:
    """Append-only JSON-lines log, one object per line, flushed at once (survives SIGKILL)."""

    def __init__(self, run_dir: Path, enabled: bool = True):
        self.path = Path(run_dir) / METRICS_FILE
        self.enabled = enabled

    def truncate_to(self, size: int | None, step: int) -> None:
        """On resume, drop what a killed run wrote after the checkpoint it resumes from.

        Args:
            size: the file's size when the checkpoint was saved (recorded in it), or None for
                a checkpoint that did not record it: then every line after `step` goes.
            step: the checkpoint's step.
        """
        if not (self.enabled and self.path.exists()):
            return
        if size is None:
            self.truncate_after(step)
        elif self.path.stat().st_size > size:
            # after a rollback the step goes back: lines after the checkpoint are found by
            # position, not by step
            os.truncate(self.path, size)

    def truncate_after(self, step: int) -> None:
        """On resume, drop lines a killed run wrote after its last checkpoint."""
        if not (self.enabled and self.path.exists()):
            return
        keep = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        atomic_write_text(self.path, "".join(ln + "\n" for ln in keep))  # a kill keeps the log

    def write(self, kind: str, step: int, **values: Any) -> dict:
        record = {"kind": kind, "step": step, "time": time.time()}
        record.update({k: _clean(v) for k, v in values.items()})
        if self.enabled:
            with open(self.path, "a") as f:
                f.write(json.dumps(record) + "\n")
        return record


def read_metrics(run_dir: str | Path) -> list[dict]:
    """All records of a run's metrics.jsonl (torn last lines ignored)."""
    path = Path(run_dir) / METRICS_FILE
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


class TensorBoard:
    """Thin wrapper that degrades to nothing when tensorboard is unavailable or disabled."""

    def __init__(self, log_dir: Path, enabled: bool = True):
        self.writer = None
        if enabled:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(log_dir))
            except Exception:  # tensorboard missing or broken: metrics.jsonl still has it all
                self.writer = None

    def scalars(self, values: dict[str, Any], step: int) -> None:
        if self.writer is None:
            return
        for k, v in values.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                self.writer.add_scalar(k, v, step)

    def audio(self, tag: str, wav: torch.Tensor, step: int, sample_rate: int) -> None:
        if self.writer is not None:
            self.writer.add_audio(tag, wav.detach().float().cpu().view(-1), step, sample_rate)

    def spectrograms(self, tag: str, real: torch.Tensor, fake: torch.Tensor, step: int) -> None:
        if self.writer is None:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
        for ax, wav, title in ((axes[0], real, "input"), (axes[1], fake, "reconstruction")):
            w = wav.detach().float().cpu().view(-1)
            spec = torch.stft(w, 512, 128, window=torch.hann_window(512), return_complex=True)
            db = 20 * torch.log10(spec.abs().clamp_min(1e-5))
            ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=-100)
            ax.set_title(title)
            ax.set_ylabel("frequency bin")
        axes[1].set_xlabel("frame (8 ms)")
        fig.tight_layout()
        self.writer.add_figure(tag, fig, step)
        plt.close(fig)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
