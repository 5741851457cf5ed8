"""SEANet building blocks shared by the encoder and the decoder."""

from __future__ import annotations

import torch
from torch import nn

from ..nn.activations import Snake1d
from ..nn.conv import Conv1d


class ResidualUnit(nn.Module):
    """x + conv1x1(snake(conv_k,dilated(snake(x)))) (SEANet / DAC residual unit).

    Shape: (B, C, T) -> (B, C, T).
    """

    def __init__(
        self,
        channels: int,
        dilation: int,
        kernel_size: int = 7,
        compress: int = 1,
        depthwise: bool = False,
        causal: bool = False,
        weight_norm: bool = True,
    ):
        super().__init__()
        hidden = channels if depthwise else max(1, channels // compress)
        self.block = nn.Sequential(
            Snake1d(channels),
            Conv1d(
                channels,
                hidden,
                kernel_size,
                dilation=dilation,
                groups=channels if depthwise else 1,
                causal=causal,
                weight_norm=weight_norm,
            ),
            Snake1d(hidden),
            Conv1d(hidden, channels, 1, causal=causal, weight_norm=weight_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def residual_stack(
    channels: int,
    dilations: tuple[int, ...],
    kernel_size: int,
    compress: int,
    depthwise: bool,
    causal: bool,
    weight_norm: bool,
) -> list[nn.Module]:
    """One residual unit per dilation (1, 3, 9 by default)."""
    return [
        ResidualUnit(channels, d, kernel_size, compress, depthwise, causal, weight_norm)
        for d in dilations
    ]


def stage_channels(base: int, n_stages: int, max_channels: int) -> list[int]:
    """Widths before each of `n_stages` downsamplings and after the last: base * 2**i, capped."""
    return [min(base * 2**i, max_channels) for i in range(n_stages + 1)]
