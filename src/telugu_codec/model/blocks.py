"""SEANet building blocks shared by the encoder and the decoder."""

from __future__ import annotations

import torch
from torch import nn

from ..config import SEANetConfig
from ..errors import ConfigError
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
        if torch.is_grad_enabled():
            return x + self.block(x)
        return self.block(x).add_(x)  # inference: add into the fresh block output (same sum)


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


def stage_dilations(cfg: SEANetConfig, n_stages: int) -> list[tuple[int, ...]]:
    """Dilations of the residual units of each stage, stage 0 = the highest-rate stage."""
    if not cfg.stage_dilations:
        return [tuple(cfg.dilations)] * n_stages
    if len(cfg.stage_dilations) != n_stages:
        raise ConfigError(
            f"stage_dilations has {len(cfg.stage_dilations)} entries but the model has "
            f"{n_stages} stages (one per stride); give one tuple per stage or leave it empty"
        )
    return [tuple(d) for d in cfg.stage_dilations]


def stage_kernel_sizes(cfg: SEANetConfig, n_stages: int) -> list[int]:
    """Kernel size of the residual units of each stage, stage 0 = the highest-rate stage."""
    if not cfg.stage_kernel_sizes:
        return [cfg.residual_kernel_size] * n_stages
    if len(cfg.stage_kernel_sizes) != n_stages:
        raise ConfigError(
            f"stage_kernel_sizes has {len(cfg.stage_kernel_sizes)} entries but the model has "
            f"{n_stages} stages (one per stride); give one per stage or leave it empty"
        )
    return list(cfg.stage_kernel_sizes)
