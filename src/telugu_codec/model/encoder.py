"""SEANet encoder: waveform (B, 1, T) -> latent (B, D, T / hop)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.activations import Snake1d
from ..nn.conv import Conv1d
from .blocks import residual_stack, stage_channels, stage_dilations, stage_kernel_sizes


class EncoderBlock(nn.Module):
    """Residual units at width `c_in`, then Snake + strided conv to `c_out` (T -> T / stride)."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        stride: int,
        dilations: tuple[int, ...],
        kernel_size: int,
        cfg: ModelConfig,
    ):
        super().__init__()
        e = cfg.encoder
        self.block = nn.Sequential(
            *residual_stack(
                c_in,
                dilations,
                kernel_size,
                e.residual_compress,
                e.depthwise_residual,
                cfg.causal,
                cfg.weight_norm,
            ),
            Snake1d(c_in),
            Conv1d(c_in, c_out, 2 * stride, stride, causal=cfg.causal, weight_norm=cfg.weight_norm),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Encoder(nn.Module):
    """SEANet encoder (SoundStream/EnCodec/DAC style) with optional patching of the input.

    Input length must be a multiple of `hop_length` (the `Codec` pads for you).
    """

    streams_with_state = True  # causal: its layers keep their own left context (nn/conv.py)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        e = cfg.encoder
        widths = stage_channels(e.channels, len(cfg.strides), e.max_channels)
        self.patch_size = cfg.patch_size
        self.conv_in = Conv1d(
            cfg.patch_size, widths[0], e.kernel_size, causal=cfg.causal, weight_norm=cfg.weight_norm
        )
        dilations = stage_dilations(e, len(cfg.strides))
        kernels = stage_kernel_sizes(e, len(cfg.strides))
        self.blocks = nn.ModuleList(
            EncoderBlock(widths[i], widths[i + 1], s, dilations[i], kernels[i], cfg)
            for i, s in enumerate(cfg.strides)
        )
        self.bottleneck = nn.Sequential(
            *residual_stack(
                widths[-1],
                e.bottleneck_dilations,
                e.residual_kernel_size,
                e.residual_compress,
                e.depthwise_residual,
                cfg.causal,
                cfg.weight_norm,
            )
        )
        self.act_out = Snake1d(widths[-1])
        self.conv_out = Conv1d(
            widths[-1],
            cfg.latent_dim,
            e.last_kernel_size,
            causal=cfg.causal,
            weight_norm=cfg.weight_norm,
        )

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            x: (B, 1, T), T a multiple of the hop length.
            return_features: also return each stage's output, [(B, C_i, T_i)].

        Returns:
            latent (B, D, T / hop) [, features].
        """
        b, _, t = x.shape
        if self.patch_size > 1:  # (B, 1, T) -> (B, p, T / p): samples folded into channels
            x = x.reshape(b, t // self.patch_size, self.patch_size).transpose(1, 2)
        h = self.conv_in(x)
        features = []
        for block in self.blocks:
            h = block(h)
            features.append(h)
        z = self.conv_out(self.act_out(self.bottleneck(h)))
        return (z, features) if return_features else z


def build_encoder(cfg: ModelConfig) -> nn.Module:
    """The encoder `cfg.encoder.kind`: SEANet or the STFT + ConvNeXt encoder."""
    if cfg.encoder.kind == "seanet":
        return Encoder(cfg)
    if cfg.encoder.kind == "stft":
        from .stft_encoder import STFTEncoder

        return STFTEncoder(cfg)
    raise ConfigError(f"model.encoder.kind must be seanet or stft, got '{cfg.encoder.kind}'")
