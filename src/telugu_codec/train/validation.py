"""Validation: the codec's health on the held-out set, and the health line of the log.

`validate` runs the codec at its full bitrate over the validation items and measures what
the collapse guard watches: SNR, SI-SDR, the amplitude ratio (output RMS / input RMS), the mel
distance, optionally PESQ, each codebook's perplexity, usage and dead codes, and how often the
discriminators tell real from fake. `health_line` is the one line the trainer logs for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from .. import metrics as M
from ..config import Config


@dataclass
class Validation:
    """What one validation measured.

    Attributes:
        metrics: ``val/...`` name -> value, the mean over the validation items.
        samples: up to ``train.audio_samples`` (input, reconstruction) pairs, each (T,) float32
            on the CPU, for TensorBoard.
    """

    metrics: dict[str, float]
    samples: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)


@torch.no_grad()
def validate(
    codec: nn.Module,
    disc: nn.Module | None,
    dataset: Dataset,
    cfg: Config,
    device: torch.device,
    autocast: Callable[[], AbstractContextManager],
) -> Validation:
    """Health metrics of `codec` on `dataset` at the model's full bitrate.

    Args:
        codec: the `Codec` (not a DDP wrapper); left in eval mode.
        disc: the `Discriminators`, or None; left in eval mode.
        dataset: validation items, each (1, T) float32.
        cfg: the run's config (``data.val_max_files``, ``train.val_pesq``,
            ``train.audio_samples``, the adversarial loss kind, the dead-code threshold).
        device: where the models are.
        autocast: returns the mixed-precision context of the training step.

    Returns:
        The metrics: ``val/snr``, ``val/sisdr``, ``val/amplitude_ratio``,
        ``val/mel_distance``, ``val/pesq`` (with ``train.val_pesq``), ``val/perplexity/q{i}``,
        ``val/usage/q{i}``, ``val/dead_codes/q{i}``, ``val/distinct/q{i}`` (share of distinct
        codewords) and, with discriminators,
        ``val/d_acc_real`` / ``val/d_acc_fake``; ``val/seconds``, the wall-clock time this
        validation took (what validation costs, with the data report's audio per
        validation); and the audio samples.
    """
    start = time.perf_counter()
    codec.eval()
    if disc is not None:
        disc.eval()
    k = codec.codebook_size
    counts = torch.zeros(codec.max_n_q, k, dtype=torch.long)
    vals: dict[str, list[float]] = {}
    d_real_ok, d_fake_ok, d_total = 0, 0, 0
    threshold = {"lsgan": 0.5}.get(cfg.loss.adversarial, 0.0)
    samples = []
    n_items = min(len(dataset), cfg.data.val_max_files)
    for i in range(n_items):
        x = dataset[i].to(device).view(1, 1, -1)
        with autocast():
            out = codec(x)
        y = out.audio.float()
        for c in range(out.codes.shape[1]):
            counts[c] += torch.bincount(out.codes[0, c].cpu(), minlength=k)
        xs, ys = x.view(-1).cpu(), y.view(-1).cpu()
        for name, fn in (
            ("snr", M.snr),
            ("sisdr", M.si_sdr),
            ("amplitude_ratio", M.amplitude_ratio),
            ("mel_distance", M.mel_distance),
        ):
            vals.setdefault(name, []).append(float(fn(ys, xs)))
        if cfg.train.val_pesq:
            p = M.pesq_wb(ys.numpy(), xs.numpy(), codec.sample_rate)
            if p is not None:
                vals.setdefault("pesq", []).append(float(p))
        if disc is not None:
            with autocast():
                real, fake = disc(x), disc(out.audio)
            for r, f in zip(real, fake):
                d_real_ok += int(float(r.logits.float().mean()) > threshold)
                d_fake_ok += int(float(f.logits.float().mean()) <= threshold)
                d_total += 1
        if len(samples) < cfg.train.audio_samples:
            samples.append((xs, ys))
    result = {f"val/{k_}": float(np.mean(v)) for k_, v in vals.items()}
    quantizer = codec.quantizer
    dead_codes, distinct = quantizer.dead_codes(), quantizer.distinct()
    for q, num in enumerate(quantizer.num_codes):
        c = counts[q, :num].float()  # usage is a share of the codes the stage can emit
        if c.sum() > 0:
            p = c / c.sum()
            result[f"val/perplexity/q{q}"] = float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))
            result[f"val/usage/q{q}"] = float((c > 0).float().mean())
        if dead_codes[q] is not None:
            result[f"val/dead_codes/q{q}"] = dead_codes[q]
        if distinct[q] is not None:
            result[f"val/distinct/q{q}"] = distinct[q]
    if d_total:
        result["val/d_acc_real"] = d_real_ok / d_total
        result["val/d_acc_fake"] = d_fake_ok / d_total
    result["val/seconds"] = time.perf_counter() - start
    return Validation(result, samples)


def _worst(val: dict[str, float], prefix: str) -> tuple[int, float] | None:
    """(codebook, value) of the lowest ``{prefix}q{i}`` in `val`, or None."""
    found = [(int(k[len(prefix) + 1 :]), v) for k, v in val.items() if k.startswith(prefix + "q")]
    return min(found, key=lambda kv: kv[1]) if found else None


def codebook_summary(val: dict[str, float]) -> str:
    """The worst codebook's usage and perplexity, and the highest re-seeding rate, e.g.
    ``codebooks: usage >= 61% (q5), perplexity >= 210 (q5), re-seeded <= 0.3%/step``."""
    usage, perp = _worst(val, "val/usage/"), _worst(val, "val/perplexity/")
    if usage is None:
        return ""
    out = f"codebooks: usage >= {usage[1]:.0%} (q{usage[0]})"
    if perp is not None:
        out += f", perplexity >= {perp[1]:.0f} (q{perp[0]})"
    churn = [v for k, v in val.items() if k.startswith("val/replaced_per_step/")]
    if churn:
        out += f", re-seeded <= {max(churn):.1%}/step"
    return out


def health_line(
    step: int, val: dict[str, float], health: str, cost: float | None, currency: str
) -> str:
    """The log line of one validation, e.g. ``step 400: SNR 3.10 dB, amplitude 0.97, ...``.

    Args:
        step: the training step.
        val: `Validation.metrics` (plus the trainer's ``val/replaced_per_step/q{i}``).
        health: the guard's summary (``healthy`` or the warnings).
        cost: the run's cost so far, or None when no price was given.
        currency: the label of `cost`.
    """
    codebooks = codebook_summary(val)
    return (
        f"step {step}: SNR {val.get('val/snr', float('nan')):.2f} dB, amplitude "
        f"{val.get('val/amplitude_ratio', float('nan')):.2f}, mel distance "
        f"{val.get('val/mel_distance', float('nan')):.3f}"
        + (f", PESQ {val['val/pesq']:.2f}" if "val/pesq" in val else "")
        + (f", {codebooks}" if codebooks else "")
        + (f", cost {cost:.1f} {currency}" if cost is not None else "")
        + (f", validation took {val['val/seconds']:.1f} s" if "val/seconds" in val else "")
        + f" | {health}"
    )


class QuantizerStats:
    """Codes the quantizer re-seeded per training step, per codebook.

    Two counters: a window for the step log (``quantizer/replaced/q{i}``, codes per step) and
    one since the previous validation, over the steps after the k-means warm-up, for the guard
    (``val/replaced_per_step/q{i}``, a share of the codebook per step).

    Args:
        num_codes: the codes each stage can emit.
    """

    def __init__(self, num_codes: list[int]):
        self.num_codes = list(num_codes)
        n = len(self.num_codes)
        self._window, self._window_steps = np.zeros(n), 0
        self._since_val, self._since_val_steps = np.zeros(n), 0
        self.warming_up = False

    def add(self, outs: list) -> None:
        """One training step's `CodecOutput`s (one per micro-batch)."""
        replaced = np.zeros(len(self.num_codes))
        for out in outs:
            if out.replaced is not None:
                r = out.replaced.cpu().numpy()
                replaced[: len(r)] += r
        self.warming_up = any(out.warming_up for out in outs)
        self._window += replaced
        self._window_steps += 1
        if not self.warming_up:
            self._since_val += replaced
            self._since_val_steps += 1

    def window(self) -> dict[str, float]:
        """Mean codes re-seeded per step since the last call, per codebook (and the warm-up)."""
        steps = max(1, self._window_steps)
        out = {f"quantizer/replaced/q{q}": float(v / steps) for q, v in enumerate(self._window)}
        if self.warming_up:
            out["quantizer/warming_up"] = 1.0
        self._window[:], self._window_steps = 0, 0
        return out

    def since_validation(self) -> dict[str, float]:
        """Share of each codebook re-seeded per step since the last call (after warm-up), and
        ``val/quantizer_warming_up`` while the quantizer still gathers latents for k-means
        (its codebooks are not trained yet, so the guard does not judge them)."""
        if self.warming_up:
            self._since_val[:], self._since_val_steps = 0, 0
            return {"val/quantizer_warming_up": 1.0}
        if self._since_val_steps == 0:
            return {}
        out = {
            f"val/replaced_per_step/q{q}": float(v / self._since_val_steps / k)
            for q, (v, k) in enumerate(zip(self._since_val, self.num_codes))
        }
        self._since_val[:], self._since_val_steps = 0, 0
        return out
