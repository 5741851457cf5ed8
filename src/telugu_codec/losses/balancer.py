"""Combining the generator's loss terms: a weighted sum, or EnCodec's gradient balancer."""

from __future__ import annotations

import math

import torch
import torch.distributed as dist

from ..config import LossConfig
from ..errors import CheckpointError, ConfigError
from .reconstruction import ADVERSARIAL_TERMS, TERMS


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum(weights[k] * losses[k])`` over the keys of `losses` (the no-balancer path)."""
    return torch.stack([weights[k] * v for k, v in losses.items()]).sum()


class LossBalancer:
    """EnCodec's gradient balancer (Défossez et al. 2022, sec. 3.4; audiocraft `Balancer`).

    For losses l_i that depend on the model only through the decoder output y, the gradient
    sent back into the model is

        g = R * sum_i (w_i / sum_j w_j) * (dl_i/dy) / <||dl_i/dy||>_beta

    where <.>_beta is a bias-corrected exponential moving average of the gradient norm
    (per-item L2 norm averaged over the batch) and R = `total_norm`. A weight is then the
    share of the total gradient norm a loss gets, whatever the loss's own scale.

    Use it for the decoder-output terms only (reconstruction, adversarial, feature matching);
    the quantizer's commitment loss depends on the encoder output and gets its own
    ``backward``. The adversarial and feature-matching terms also reach the discriminator's
    parameters; zero those gradients (or freeze D) before the generator step.

    Args:
        weights: loss name -> weight (> 0); losses passed to `backward` must be among these.
        ema_decay: beta of the norm average (EnCodec: 0.999).
        total_norm: R, the norm of the combined gradient when the norms match their average.
        per_batch_item: norms per batch item then averaged (True), or over the whole batch.
        eps: added to the norm average before dividing.
    """

    def __init__(
        self,
        weights: dict[str, float],
        ema_decay: float = 0.999,
        total_norm: float = 1.0,
        per_batch_item: bool = True,
        eps: float = 1e-12,
    ):
        bad = {k: w for k, w in weights.items() if not w > 0}
        if bad:
            raise ConfigError(f"balancer weights must be > 0, got {bad}")
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"loss.balancer_ema must be in [0, 1), got {ema_decay}")
        self.weights = {k: float(w) for k, w in weights.items()}
        self.ema_decay = float(ema_decay)
        self.total_norm = float(total_norm)
        self.per_batch_item = per_batch_item
        self.eps = eps
        # bias-corrected EMA: avg = ema_sum / ema_count
        self.ema_sum: dict[str, float] = {}
        self.ema_count: dict[str, float] = {}
        self.steps = 0

    @classmethod
    def from_config(cls, cfg: LossConfig) -> LossBalancer:
        """Balance every decoder-output term of `cfg` with a non-zero weight."""
        names = (*TERMS, *ADVERSARIAL_TERMS)
        weights = {n: float(getattr(cfg, n)) for n in names if getattr(cfg, n) > 0}
        return cls(weights, cfg.balancer_ema, cfg.balancer_total_norm)

    def _norm(self, grad: torch.Tensor) -> torch.Tensor:
        """() fp32: the per-item L2 norm averaged over the batch (or the whole-batch norm)."""
        grad = grad.float()
        if self.per_batch_item and grad.dim() > 1:
            return grad.flatten(1).norm(dim=1).mean()
        return grad.norm()

    def _update(self, name: str, value: float) -> float:
        beta = self.ema_decay
        self.ema_sum[name] = beta * self.ema_sum.get(name, 0.0) + value
        self.ema_count[name] = beta * self.ema_count.get(name, 0.0) + 1.0
        return self.ema_sum[name] / self.ema_count[name]

    def _average(self, name: str, fallback: float) -> float:
        """The moving average without updating it (`fallback` before the first update)."""
        if self.ema_count.get(name):
            return self.ema_sum[name] / self.ema_count[name]
        return fallback

    def combined_grad(
        self, losses: dict[str, torch.Tensor], output: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The balanced gradient w.r.t. `output` (without backpropagating it further).

        Under DDP every process calls it with its share of the batch: the gradient norms are
        averaged over processes before the moving averages are updated, so every rank keeps the
        same averages and applies the same scales.

        Args:
            losses: name -> scalar loss that depends on the model only through `output`.
            output: the decoder output y, e.g. (B, 1, T), part of the autograd graph.

        Returns:
            (g, metrics): g has `output`'s shape, in fp32; per loss name n the metrics hold
            ``grad_norm/n`` (this step's ||dl_n/dy||), ``grad_ema/n`` (its moving average) and
            ``grad_share/n`` (the norm of its rescaled gradient, which the balancer steers to
            total_norm * w_n / sum(w)); plus ``grad_norm/total`` for the combined gradient.
            Backpropagate with ``(output * g).sum()`` added to the other losses, so that one
            backward pass also carries e.g. the commitment loss through the shared encoder.
        """
        unknown = sorted(set(losses) - set(self.weights))
        if unknown:
            raise KeyError(f"no balancer weight for loss(es) {unknown}")
        # fp32 whatever the output's dtype: under bf16 autocast the norms and the sum of
        # rescaled gradients lost the small terms to bf16's 8-bit mantissa
        combined = torch.zeros_like(output, dtype=torch.float32)
        metrics: dict[str, float] = {}
        if not losses:
            return combined, metrics
        names = list(losses)
        grads = [
            torch.autograd.grad(losses[n], [output], retain_graph=True)[0].float() for n in names
        ]
        # one all-reduce and one host transfer for every term: under DDP each process sees
        # its share of the batch, and the averages must be the same on every rank
        norms = _mean_over_processes(torch.stack([self._norm(g) for g in grads])).tolist()
        # a non-finite norm (the step will be skipped) must not poison the moving averages
        finite = all(math.isfinite(v) for v in norms)
        total_weight = sum(self.weights[n] for n in names)
        for name, grad, norm in zip(names, grads, norms):
            avg = self._update(name, norm) if finite else self._average(name, norm)
            scale = self.total_norm * (self.weights[name] / total_weight) / (avg + self.eps)
            combined.add_(grad, alpha=scale)
            metrics[f"grad_norm/{name}"] = norm
            metrics[f"grad_ema/{name}"] = avg
            metrics[f"grad_share/{name}"] = scale * norm
        if finite:
            self.steps += 1
        metrics["grad_norm/total"] = float(self._norm(combined))
        return combined, metrics

    def backward(self, losses: dict[str, torch.Tensor], output: torch.Tensor) -> dict[str, float]:
        """Backpropagate the balanced combination of `losses` through `output`.

        Same as `combined_grad` followed by ``output.backward(g)``; returns the metrics.
        """
        if not losses:
            return {}
        grad, metrics = self.combined_grad(losses, output)
        output.backward(grad.to(output.dtype))
        return metrics

    def state_dict(self) -> dict[str, object]:
        """Plain floats / ints only (JSON-serialisable), for checkpoints."""
        return {
            "ema_sum": dict(self.ema_sum),
            "ema_count": dict(self.ema_count),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the moving averages saved by `state_dict`.

        Raises:
            CheckpointError: `state` is not what `state_dict` writes.
        """
        try:
            ema_sum = {str(k): float(v) for k, v in state["ema_sum"].items()}  # type: ignore[attr-defined]
            ema_count = {str(k): float(v) for k, v in state["ema_count"].items()}  # type: ignore[attr-defined]
            steps = int(state["steps"])  # type: ignore[call-overload]
        except (KeyError, AttributeError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"loss balancer state in the checkpoint is malformed ({e!r}); "
                "start without it or use a checkpoint written by this version"
            ) from e
        self.ema_sum, self.ema_count, self.steps = ema_sum, ema_count, steps


def _mean_over_processes(values: torch.Tensor) -> torch.Tensor:
    """The mean of `values` over the processes of the default group (itself without one)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values
