"""Vocos-style decoder: ConvNeXt backbone + iSTFT head (Siuzdak 2023, "Vocos", sec. 3).

latent (B, D, F) -> conv -> [upsample] -> ConvNeXt blocks -> LayerNorm -> linear ->
(log-magnitude, phase) per bin -> complex STFT -> torch.istft -> waveform (B, 1, F * hop).

Everything before the iSTFT runs at the frame rate, so the model can be wide and deep for the
CPU time a SEANet decoder spends on its audio-rate stages. The magnitude is exp(clipped log
magnitude) and the phase enters through cos/sin (Vocos eq. 2), so any real output is a valid
phase. The STFT is centred; one frame is appended (a copy of the last) so the inverse has
exactly F * hop samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.convnext import ConvNeXtStack


class ISTFTHead(nn.Module):
    """(B, C, N) frames -> (B, 1, (N - 1) * hop) audio through a centred iSTFT."""

    def __init__(
        self, dim: int, n_fft: int, hop: int, max_log_magnitude: float, target_rms: float = 0.158
    ):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.max_log_magnitude = max_log_magnitude
        self.proj = nn.Linear(dim, n_fft + 2)  # log-magnitude and phase of n_fft/2 + 1 bins
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        # Start at the input's level. With magnitude m in every bin and unrelated phases, a Hann
        # iSTFT gives RMS ~ m * sqrt(8 hop / 3) / n_fft; with m = 1 (zero bias) that was 0.2 of
        # the -16 dBFS input, and the guard rolled back an untrained model at its first
        # validation. The log-magnitude bias is set so m gives `target_rms`.
        with torch.no_grad():
            self.proj.bias[: n_fft // 2 + 1].fill_(
                math.log(target_rms * n_fft / math.sqrt(8 * hop / 3))
            )

    def forward(self, x: torch.Tensor, length: int) -> torch.Tensor:
        """(B, C, N) frames (any dtype) -> (B, 1, length) fp32 audio.

        All of it in fp32, the projection included: bf16 keeps 8 significant bits, so a
        log-magnitude near 4 is rounded by up to 0.016 (1.6 % of the bin's magnitude after exp)
        and a phase near pi by up to 0.008 rad.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            h = self.proj(x.transpose(1, 2).float()).transpose(1, 2)  # (B, n_fft + 2, N)
            log_mag, phase = h.chunk(2, dim=1)
            mag = torch.exp(log_mag.clamp(max=self.max_log_magnitude))
            spec = torch.complex(mag * torch.cos(phase), mag * torch.sin(phase))
            y = torch.istft(
                spec,
                self.n_fft,
                self.hop,
                self.n_fft,
                window=self.window,
                center=True,
                length=length,
            )
        return y.unsqueeze(1)


class ISTFTDecoder(nn.Module):
    """Decoder `kind: istft`; same interface as the SEANet `Decoder`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c = cfg.decoder.istft
        hop_length = cfg.patch_size
        for s in cfg.strides:
            hop_length *= s
        if c.upsample < 1 or hop_length % c.upsample:
            raise ConfigError(
                f"model.decoder.istft.upsample ({c.upsample}) must divide the hop length "
                f"({hop_length})"
            )
        if cfg.causal:
            raise ConfigError(
                "model.decoder.kind=istft is not causal (centred STFT windows); use the SEANet "
                "decoder for causal/streaming models"
            )
        self.hop_length = hop_length
        self.upsample = c.upsample
        hop = hop_length // c.upsample
        self.conv_in = nn.Conv1d(cfg.latent_dim, c.dim, 7, padding=3)
        self.up = (
            nn.ConvTranspose1d(c.dim, c.dim, 2 * c.upsample, c.upsample) if c.upsample > 1 else None
        )
        self.backbone = ConvNeXtStack(c.dim, c.intermediate_dim, c.kernel_size, c.layers)
        self.head = ISTFTHead(c.dim, c.n_fft_factor * hop, hop, c.max_log_magnitude, cfg.target_rms)
        self.tanh = cfg.tanh_output
        self.output_gain = cfg.output_gain

    def forward(
        self, z: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            z: (B, D, F) quantized latents.
            return_features: also return the backbone's output.

        Returns:
            waveform (B, 1, F * hop_length) [, features].
        """
        frames = z.shape[-1]
        h = self.conv_in(z)
        if self.up is not None:  # (B, C, F) -> (B, C, F * u), the kernel's overhang trimmed
            u = self.upsample
            h = self.up(h)[..., u // 2 : u // 2 + frames * u]
        h = self.backbone(h)
        h = F.pad(h, (0, 1), mode="replicate")  # N + 1 frames -> exactly N * hop samples
        y = self.head(h, frames * self.hop_length)
        if self.tanh:
            y = torch.tanh(y)
        if self.output_gain != 1.0:
            y = y * self.output_gain
        return (y, [h]) if return_features else y
