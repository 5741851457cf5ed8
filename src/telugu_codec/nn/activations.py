"""Snake activation (Ziyin et al. 2020; used by BigVGAN and DAC)."""

from __future__ import annotations

import torch
from torch import nn


class _SnakeFn(torch.autograd.Function):
    """snake with a hand-written backward: two saved tensors, one transcendental per pass.

    With u = alpha x: y = x + sin^2(u) / alpha, dy/dx = 1 + sin(2u), and
    dy/dalpha = x sin(2u) / alpha - sin^2(u) / alpha^2 = (x sin(2u) - (y - x)) / alpha.
    Autograd through the plain expression keeps five intermediate tensors and runs about twice
    as many elementwise passes (`benchmarks/bench_snake.py`, BENCHMARKS.md).

    Computes in x's dtype (alpha is cast to it); alpha's gradient is summed in fp32 (or x's
    dtype if wider) and returned in alpha's dtype.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, alpha: torch.Tensor, inv_alpha: torch.Tensor):
        y = torch.mul(alpha.to(x.dtype), x)
        y.sin_().pow_(2).mul_(inv_alpha.to(x.dtype)).add_(x)
        ctx.save_for_backward(x, alpha, inv_alpha, y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, alpha, inv_alpha, y = ctx.saved_tensors
        sin2u = torch.mul(alpha.to(x.dtype), x).mul_(2).sin_()  # sin(2 alpha x)
        grad_x = grad_alpha = None
        if ctx.needs_input_grad[1]:
            # (x sin 2u - (y - x)) / alpha, summed over batch and time (in fp32 at least: a
            # bf16 sum over B x T elements would round alpha's gradient)
            part = torch.mul(x, sin2u).sub_(y).add_(x).mul_(grad)
            acc = torch.promote_types(x.dtype, torch.float32)
            grad_alpha = part.sum(dim=(0, 2), keepdim=True, dtype=acc)
            grad_alpha = grad_alpha.mul_(inv_alpha.to(acc)).to(alpha.dtype)
        if ctx.needs_input_grad[0]:
            grad_x = sin2u.add_(1).mul_(grad)
        return grad_x, grad_alpha, None


def snake(x: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """snake(x) = x + sin^2(alpha * x) / alpha.

    Without autograd (inference) the same operations run in place on one buffer: bit-identical
    results, one allocation instead of five, 1.2x or more faster on CPU. The `sin` itself is
    about two thirds of what is left, so the cheapest Snake is one that is not computed: keep
    the number of channels x samples per second at high frame rates small. With autograd a
    hand-written backward (`_SnakeFn`) does the same for training. Gradients reach `alpha`
    through the 1e-9 guard as 1/(alpha + 1e-9) does: the difference is below float precision.

    The output has x's dtype: under bf16 autocast the activations stay bf16 (the fp32 alpha
    promoted them to fp32 before, doubling the memory and the time of every layer after).

    Args:
        x: (B, C, T).
        alpha: (1, C, 1), positive.
    """
    inv_alpha = (alpha + 1e-9).reciprocal()
    if torch.is_grad_enabled() and (x.requires_grad or alpha.requires_grad):
        if alpha.shape == (1, x.shape[1], 1):
            return _SnakeFn.apply(x, alpha, inv_alpha.detach())
        alpha, inv_alpha = alpha.to(x.dtype), inv_alpha.to(x.dtype)
        return x + (inv_alpha * torch.sin(alpha * x).pow(2)).to(x.dtype)
    s = torch.mul(alpha.to(x.dtype), x)  # (B, C, T), the only new buffer
    s.sin_().pow_(2).mul_(inv_alpha.to(x.dtype))
    return s.add_(x)


class Snake1d(nn.Module):
    """Snake with one learnable frequency `alpha` per channel (initialised to 1)."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return snake(x, self.alpha)
