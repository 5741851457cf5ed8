"""SEANet decoder, the mirror of the encoder: latent (B, D, F) -> waveform (B, 1, F * hop)."""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.activations import Snake1d
from ..nn.conv import Conv1d, ConvTranspose1d
from .blocks import residual_stack, stage_channels, stage_dilations, stage_kernel_sizes


class DecoderBlock(nn.Module):
    """Snake + transposed conv `c_in -> c_out` (T -> T * stride), then residual units."""

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
        d = cfg.decoder
        self.block = nn.Sequential(
            Snake1d(c_in),
            ConvTranspose1d(
                c_in, c_out, 2 * stride, stride, causal=cfg.causal, weight_norm=cfg.weight_norm
            ),
            *residual_stack(
                c_out,
                dilations,
                kernel_size,
                d.residual_compress,
                d.depthwise_residual,
                cfg.causal,
                cfg.weight_norm,
            ),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x)


class Decoder(nn.Module):
    """SEANet decoder, the mirror of the encoder; streams with its state in its layers."""

    streams_with_state = True  # causal: its layers keep their own left context (nn/conv.py)

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        d = cfg.decoder
        widths = stage_channels(d.channels, len(cfg.strides), d.max_channels)[::-1]
        strides = tuple(reversed(cfg.strides))
        self.patch_size = cfg.patch_size
        self.conv_in = Conv1d(
            cfg.latent_dim, widths[0], d.kernel_size, causal=cfg.causal, weight_norm=cfg.weight_norm
        )
        self.bottleneck = nn.Sequential(
            *residual_stack(
                widths[0],
                d.bottleneck_dilations,
                d.residual_kernel_size,
                d.residual_compress,
                d.depthwise_residual,
                cfg.causal,
                cfg.weight_norm,
            )
        )
        dilations = stage_dilations(d, len(strides))[::-1]  # lowest rate first
        kernels = stage_kernel_sizes(d, len(strides))[::-1]
        self.blocks = nn.ModuleList(
            DecoderBlock(widths[i], widths[i + 1], s, dilations[i], kernels[i], cfg)
            for i, s in enumerate(strides)
        )
        self.act_out = Snake1d(widths[-1])
        self.conv_out = Conv1d(
            widths[-1],
            cfg.patch_size,
            d.last_kernel_size,
            causal=cfg.causal,
            weight_norm=cfg.weight_norm,
        )
        self.tanh = cfg.tanh_output
        self.output_gain = cfg.output_gain

    def forward(
        self, z: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            z: (B, D, F) quantized latents.
            return_features: also return each stage's output.

        Returns:
            waveform (B, 1, F * hop) [, features], the waveform in fp32 under any autocast.
        """
        h = self.bottleneck(self.conv_in(z))
        features = []
        for block in self.blocks:
            h = block(h)
            features.append(h)
        # The last Snake and convolution in fp32: a bf16 waveform has an 8-bit mantissa, so the
        # discriminators would compare fp32 real audio with visibly rounded fakes, a cue the
        # generator can never remove. Cheap: `patch_size` output channels.
        with torch.autocast(device_type=h.device.type, enabled=False):
            y = self.conv_out(self.act_out(h.float()))  # (B, p, T / p)
        if self.patch_size > 1:
            b, p, n = y.shape
            y = y.transpose(1, 2).reshape(b, 1, n * p)
        if self.tanh:
            y = torch.tanh(y)
        if self.output_gain != 1.0:
            y = y * self.output_gain
        return (y, features) if return_features else y


def build_decoder(cfg: ModelConfig) -> nn.Module:
    """The decoder `cfg.decoder.kind`: the SEANet mirror, the Vocos-style iSTFT decoder or the
    pitch-driven source-filter decoder."""
    if cfg.decoder.kind == "seanet":
        return Decoder(cfg)
    if cfg.decoder.kind == "istft":
        from .istft_decoder import ISTFTDecoder

        return ISTFTDecoder(cfg)
    if cfg.decoder.kind == "source_filter":
        from .source_filter_decoder import SourceFilterDecoder

        return SourceFilterDecoder(cfg)
    raise ConfigError(
        f"model.decoder.kind must be seanet, istft or source_filter, got '{cfg.decoder.kind}'"
    )
