"""Convolutions that keep lengths exact, causal or centred, with optional weight norm.

Length rules (T a multiple of the stride):
- `Conv1d(stride=s)` maps T -> T / s;
- `ConvTranspose1d(stride=s)` maps T -> T * s.
Causal padding puts all of a kernel's reach in the past, so output frame t never depends on
input after t (tested in tests/test_model.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm as _weight_norm


def _maybe_wn(module: nn.Module, use: bool) -> nn.Module:
    return _weight_norm(module) if use else module


class Conv1d(nn.Module):
    """`nn.Conv1d` with "same"-style padding done explicitly (causal or centred).

    Input (B, C_in, T) with T divisible by `stride` -> output (B, C_out, T // stride).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        causal: bool = False,
        weight_norm: bool = True,
        pad_mode: str = "constant",
    ):
        super().__init__()
        self.conv = _maybe_wn(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, 0, dilation, groups),
            weight_norm,
        )
        self.causal = causal
        self.pad_mode = pad_mode
        # receptive field minus the stride: what must be padded so that T -> T / stride
        self.padding_total = (kernel_size - 1) * dilation - (stride - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.padding_total
        if total > 0:
            left = total if self.causal else total // 2
            x = F.pad(x, (left, total - left), mode=self.pad_mode)
        return self.conv(x)


class ConvTranspose1d(nn.Module):
    """`nn.ConvTranspose1d` trimmed so that (B, C_in, T) -> (B, C_out, T * stride)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        causal: bool = False,
        weight_norm: bool = True,
    ):
        super().__init__()
        self.conv = _maybe_wn(
            nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride), weight_norm
        )
        self.causal = causal
        self.trim_total = kernel_size - stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        total = self.trim_total
        if total <= 0:
            return y
        # causal: the extra samples at the end would need future frames; drop them there
        left = 0 if self.causal else total // 2
        return y[..., left : y.shape[-1] - (total - left)]
