"""Frame-rate encoder: compressed complex STFT -> ConvNeXt stack -> latent (B, D, F).

The input's centred STFT (hop = hop_length / downsample, window n_fft_factor x hop) is
compressed as |S|^c e^{i phase(S)} (the power-law compression used in speech enhancement:
quiet harmonics stay visible, phase is kept), its real and imaginary parts are the input
channels of a ConvNeXt stack at the STFT frame rate, and a strided convolution (when
downsample > 1) brings it to the latent frame rate. Frame f is centred on sample f x hop,
as in the iSTFT decoder, so encoder and decoder frames line up.
"""

from __future__ import annotations

import torch
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.convnext import ConvNeXtStack


class STFTEncoder(nn.Module):
    """Encoder `kind: stft`; same interface as the SEANet `Encoder`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.encoder.stft
        hop_length = cfg.patch_size
        for s in cfg.strides:
            hop_length *= s
        if c.downsample < 1 or hop_length % c.downsample:
            raise ConfigError(
                f"model.encoder.stft.downsample ({c.downsample}) must divide the hop length "
                f"({hop_length})"
            )
        if cfg.causal:
            raise ConfigError(
                "model.encoder.kind=stft is not causal (centred STFT windows); use the SEANet "
                "encoder for causal/streaming models"
            )
        self.hop_length, self.downsample = hop_length, c.downsample
        self.hop = hop_length // c.downsample
        self.n_fft = c.n_fft_factor * self.hop
        self.compress = c.compress
        bins = self.n_fft // 2 + 1
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        self.conv_in = nn.Conv1d(2 * bins, c.dim, 1)
        self.backbone = ConvNeXtStack(c.dim, c.intermediate_dim, c.kernel_size, c.layers)
        d = c.downsample
        self.down = nn.Conv1d(c.dim, c.dim, 2 * d, d, padding=d // 2) if d > 1 else None
        self.conv_out = nn.Conv1d(c.dim, cfg.latent_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, T) -> (B, 2 * bins, T / hop) compressed real and imaginary STFT parts."""
        frames = x.shape[-1] // self.hop
        with torch.autocast(device_type=x.device.type, enabled=False):
            spec = torch.stft(
                x[:, 0].float(),
                self.n_fft,
                self.hop,
                self.n_fft,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )[..., :frames]
            mag = spec.abs().clamp_min(1e-7)
            spec = spec * (mag.pow(self.compress) / mag)
        return torch.cat([spec.real, spec.imag], dim=1)

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            x: (B, 1, T), T a multiple of the hop length.
            return_features: also return the backbone's output.

        Returns:
            latent (B, D, T / hop_length) [, features].
        """
        frames = x.shape[-1] // self.hop_length
        h = self.backbone(self.conv_in(self.features(x)))
        feats = [h]
        if self.down is not None:
            h = self.down(h)[..., :frames]
        z = self.conv_out(h)
        return (z, feats) if return_features else z
