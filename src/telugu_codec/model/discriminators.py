"""Discriminators for adversarial codec training.

Four families, any combination of which `Discriminators` runs side by side:

- ``msd``: MelGAN multi-scale waveform discriminator (Kumar et al. 2019, sec. 2.2), exactly the
  layer table our user specified (`MSD_LAYERS`), on the raw signal and 2x / 4x average-pooled
  copies; optional spectral norm on the raw scale (HiFi-GAN sec. 2.3).
- ``mpd``: HiFi-GAN multi-period discriminator (Kong et al. 2020, sec. 2.2): the waveform folded
  into (T / p, p) and seen by 2-D convs that only mix samples p apart.
- ``stftd``: EnCodec multi-scale STFT discriminator (Défossez et al. 2022, sec. 3.4): 2-D convs
  on the complex STFT (real and imaginary parts as 2 channels) at several window sizes.
- ``mrd``: DAC multi-band multi-resolution spectrogram discriminator (Kumar et al. 2023,
  sec. 3.3): the complex STFT split into frequency bands, one conv stack per band, outputs
  concatenated along frequency before a shared last conv.

Every sub-discriminator returns a `DiscriminatorOutput`: its logits (any shape with the batch
first; the losses average over all elements) and its intermediate feature maps (after each
activation, logits excluded) for feature matching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

from ..config import DiscriminatorConfig, MPDConfig, MRDConfig, MSDConfig, STFTDConfig
from ..errors import ConfigError
from ..spectral import complex_stft

# Leaky-ReLU slopes of the reference implementations.
MSD_SLOPE = 0.2  # MelGAN
MPD_SLOPE = 0.1  # HiFi-GAN
STFTD_SLOPE = 0.2  # EnCodec
MRD_SLOPE = 0.1  # DAC

# MelGAN discriminator block as our user specified it: (in, out, kernel, stride, groups).
# "Same" padding kernel // 2. 5,637,953 weights + biases per scale at width 1.
MSD_LAYERS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 16, 15, 1, 1),
    (16, 64, 41, 4, 4),
    (64, 256, 41, 4, 16),
    (256, 1024, 41, 4, 64),
    (1024, 1024, 41, 4, 256),
    (1024, 1024, 5, 1, 1),
    (1024, 1, 3, 1, 1),
)
MSD_PARAMS_PER_SCALE = 5_637_953

KINDS = ("msd", "mpd", "stftd", "mrd")
PEAK_EPS = 1e-9  # peak normalisation of digital silence: stays silence (DAC's epsilon)


@dataclass
class DiscriminatorOutput:
    """What one sub-discriminator says about a batch.

    Attributes:
        logits: (B, ...) unnormalised realness scores, one per output position.
        features: intermediate activations (B, C, ...) in layer order, logits excluded.
    """

    logits: torch.Tensor
    features: list[torch.Tensor]


def _normed(module: nn.Module, norm: str) -> nn.Module:
    """Wrap a conv in weight norm, spectral norm or nothing ("weight" | "spectral" | "none")."""
    if norm == "weight":
        return weight_norm(module)
    if norm == "spectral":
        return spectral_norm(module)
    if norm == "none":
        return module
    raise ValueError(f"unknown norm '{norm}' (weight | spectral | none)")


def _check_wav(wav: torch.Tensor) -> None:
    if wav.dim() != 3 or wav.shape[1] != 1:
        raise ValueError(f"discriminators expect (B, 1, T), got shape {tuple(wav.shape)}")


# --------------------------------------------------------------------------------------------
# MSD (MelGAN)
# --------------------------------------------------------------------------------------------


def _scale_channels(channels: int, width: float) -> int:
    return max(1, int(round(channels * width)))


def _fit_groups(groups: int, width: float, cin: int, cout: int) -> int:
    """Scale a group count by `width`, then lower it until it divides both channel counts."""
    g = max(1, int(round(groups * width)))
    while cin % g or cout % g:
        g -= 1
    return g


class ScaleDiscriminator(nn.Module):
    """One MelGAN discriminator block (one scale of the MSD).

    Args:
        width: multiplies every hidden channel count (1.0 = the specified 5.6 M-parameter net);
            group counts shrink with it so that they still divide the channels.
        norm: "weight" (default), "spectral" (HiFi-GAN's raw scale) or "none".
    """

    def __init__(self, width: float = 1.0, norm: str = "weight"):
        super().__init__()
        last = len(MSD_LAYERS) - 1
        layers = []
        for i, (cin, cout, k, s, g) in enumerate(MSD_LAYERS):
            cin_w = cin if i == 0 else _scale_channels(cin, width)
            cout_w = cout if i == last else _scale_channels(cout, width)
            groups = _fit_groups(g, width, cin_w, cout_w) if g > 1 else 1
            conv = nn.Conv1d(cin_w, cout_w, k, stride=s, padding=k // 2, groups=groups)
            layers.append(_normed(conv, norm))
        self.layers = nn.ModuleList(layers)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        """Args: wav: (B, 1, T). Returns logits (B, 1, ~T / 256) and 6 feature maps."""
        x = wav
        features = []
        for layer in self.layers[:-1]:
            x = F.leaky_relu(layer(x), MSD_SLOPE)
            features.append(x)
        return DiscriminatorOutput(self.layers[-1](x), features)


class MultiScaleDiscriminator(nn.Module):
    """MelGAN MSD: `ScaleDiscriminator`s on the waveform and its 2x, 4x, ... pooled copies.

    Pooling is AvgPool1d(4, stride 2, padding 2) between scales (MelGAN / HiFi-GAN), with
    ``count_include_pad=False`` as in MelGAN so the edges are not attenuated.
    """

    def __init__(self, cfg: MSDConfig):
        super().__init__()
        if cfg.scales < 1:
            raise ConfigError(f"discriminator.msd.scales must be >= 1, got {cfg.scales}")
        self.discriminators = nn.ModuleList(
            ScaleDiscriminator(
                cfg.width, "spectral" if (i == 0 and cfg.spectral_norm_first) else "weight"
            )
            for i in range(cfg.scales)
        )
        self.pool = nn.AvgPool1d(4, stride=2, padding=2, count_include_pad=False)
        self.names = [f"msd_{2**i}x" for i in range(cfg.scales)]

    def forward(self, wav: torch.Tensor) -> list[DiscriminatorOutput]:
        """Args: wav: (B, 1, T). Returns one output per scale, finest first."""
        outs = []
        x = wav
        for i, disc in enumerate(self.discriminators):
            if i > 0:
                x = self.pool(x)  # (B, 1, T / 2**i)
            outs.append(disc(x))
        return outs


# --------------------------------------------------------------------------------------------
# MPD (HiFi-GAN)
# --------------------------------------------------------------------------------------------


class PeriodDiscriminator(nn.Module):
    """HiFi-GAN sub-discriminator for one period p (HiFi-GAN sec. 2.2).

    The waveform is right-padded to a multiple of p and reshaped (B, 1, T / p, p); kernels are
    (k, 1), so each column of samples t, t + p, t + 2p, ... is processed separately.
    """

    def __init__(self, period: int, cfg: MPDConfig, norm: str = "weight"):
        super().__init__()
        if period < 1:
            raise ConfigError(f"discriminator.mpd.periods must be >= 1, got {period}")
        self.period = period
        widths = [min(cfg.channels * 4**i, cfg.max_channels) for i in range(4)]
        k, pad = cfg.kernel_size, (cfg.kernel_size - 1) // 2
        layers = []
        cin = 1
        for cout in widths:
            conv = nn.Conv2d(cin, cout, (k, 1), stride=(cfg.stride, 1), padding=(pad, 0))
            layers.append(_normed(conv, norm))
            cin = cout
        layers.append(_normed(nn.Conv2d(cin, cin, (k, 1), padding=(pad, 0)), norm))
        self.layers = nn.ModuleList(layers)
        self.post = _normed(nn.Conv2d(cin, 1, (3, 1), padding=(1, 0)), norm)

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        """Args: wav: (B, 1, T). Returns logits (B, 1, ~T / (p * 81), p) and 5 feature maps."""
        b, c, t = wav.shape
        extra = (-t) % self.period
        if extra:
            # reflection needs more samples than it pads; very short inputs get zeros
            mode = "reflect" if extra < t else "constant"
            wav = F.pad(wav, (0, extra), mode=mode)
        x = wav.view(b, c, -1, self.period)  # (B, 1, T / p, p)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), MPD_SLOPE)
            features.append(x)
        return DiscriminatorOutput(self.post(x), features)


class MultiPeriodDiscriminator(nn.Module):
    """HiFi-GAN MPD: one `PeriodDiscriminator` per configured period."""

    def __init__(self, cfg: MPDConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(PeriodDiscriminator(p, cfg) for p in cfg.periods)
        self.names = [f"mpd_p{p}" for p in cfg.periods]

    def forward(self, wav: torch.Tensor) -> list[DiscriminatorOutput]:
        """Args: wav: (B, 1, T). Returns one output per period."""
        return [d(wav) for d in self.discriminators]


# --------------------------------------------------------------------------------------------
# STFT discriminators (EnCodec MS-STFTD, DAC MRD)
# --------------------------------------------------------------------------------------------


def _complex_spec(wav: torch.Tensor, n_fft: int, hop: int, normalized: bool) -> torch.Tensor:
    """(B, 1, T) -> (B, 2, frames, n_fft // 2 + 1): real and imaginary parts as channels."""
    spec = complex_stft(wav, n_fft=n_fft, hop_length=hop)  # (B, F, frames) complex
    if normalized:
        # torchaudio's normalized=True (EnCodec): divide by the window's L2 norm
        spec = spec / math.sqrt(0.375 * n_fft)  # sum(hann**2) = 3 n_fft / 8 (periodic)
    x = torch.view_as_real(spec)  # (B, F, frames, 2)
    return x.permute(0, 3, 2, 1).to(wav.dtype)  # (B, 2, frames, F)


def _hop(n_fft: int, hop_factor: float) -> int:
    return max(1, int(round(n_fft * hop_factor)))


class STFTDiscriminator(nn.Module):
    """EnCodec STFT sub-discriminator for one window size (EnCodec sec. 3.4, fig. 4).

    A (3, 9) conv, then one (time, freq) = (3, 9) conv per dilation with frequency stride 2 and
    time dilation d, a (3, 3) conv and a (3, 3) output conv; LeakyReLU(0.2) between them.
    """

    def __init__(self, n_fft: int, cfg: STFTDConfig):
        super().__init__()
        self.n_fft = n_fft
        self.hop = _hop(n_fft, cfg.hop_factor)
        ch = cfg.channels
        kt, kf = cfg.kernel_size
        layers = [weight_norm(nn.Conv2d(2, ch, (kt, kf), padding=(kt // 2, kf // 2)))]
        for d in cfg.dilations:
            conv = nn.Conv2d(
                ch,
                ch,
                (kt, kf),
                stride=(1, 2),
                dilation=(d, 1),
                padding=(d * (kt - 1) // 2, kf // 2),
            )
            layers.append(weight_norm(conv))
        layers.append(weight_norm(nn.Conv2d(ch, ch, (kt, kt), padding=(kt // 2, kt // 2))))
        self.layers = nn.ModuleList(layers)
        self.post = weight_norm(nn.Conv2d(ch, 1, (kt, kt), padding=(kt // 2, kt // 2)))

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        """Args: wav: (B, 1, T). Returns logits (B, 1, frames, ~F / 8) and the feature maps."""
        x = _complex_spec(wav, self.n_fft, self.hop, normalized=True)
        features = []
        for layer in self.layers:
            x = F.leaky_relu(layer(x), STFTD_SLOPE)
            features.append(x)
        return DiscriminatorOutput(self.post(x), features)


class MultiScaleSTFTDiscriminator(nn.Module):
    """EnCodec MS-STFTD: one `STFTDiscriminator` per window size."""

    def __init__(self, cfg: STFTDConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(STFTDiscriminator(n, cfg) for n in cfg.n_ffts)
        self.names = [f"stftd_n{n}" for n in cfg.n_ffts]

    def forward(self, wav: torch.Tensor) -> list[DiscriminatorOutput]:
        """Args: wav: (B, 1, T). Returns one output per window size."""
        return [d(wav) for d in self.discriminators]


def band_bins(n_fft: int, bands: tuple[tuple[float, float], ...]) -> list[tuple[int, int]]:
    """Frequency-bin ranges [lo, hi) of each band given as fractions of the Nyquist band.

    Raises:
        ConfigError: a band that is empty at this FFT size or not inside [0, 1].
    """
    n_bins = n_fft // 2 + 1
    out = []
    for lo, hi in bands:
        if not 0.0 <= lo < hi <= 1.0:
            raise ConfigError(
                f"discriminator.mrd.bands: ({lo}, {hi}) must satisfy 0 <= lo < hi <= 1"
            )
        a, b = int(lo * n_bins), int(hi * n_bins)
        if b <= a:
            raise ConfigError(
                f"discriminator.mrd.bands: band ({lo}, {hi}) has no bins at n_fft={n_fft}; "
                "use wider bands or a larger n_fft"
            )
        out.append((a, b))
    return out


class BandSpectrogramDiscriminator(nn.Module):
    """DAC MRD sub-discriminator for one resolution (DAC sec. 3.3, `MRD` in dac/model).

    Per band: (3, 9) conv, three (3, 9) convs with frequency stride 2, a (3, 3) conv
    (LeakyReLU(0.1) after each); band outputs are concatenated along frequency and a shared
    (3, 3) conv gives the logits.
    """

    def __init__(self, n_fft: int, cfg: MRDConfig):
        super().__init__()
        self.n_fft = n_fft
        self.hop = _hop(n_fft, cfg.hop_factor)
        self.bins = band_bins(n_fft, cfg.bands)
        ch = cfg.channels

        def stack() -> nn.ModuleList:
            return nn.ModuleList(
                [
                    weight_norm(nn.Conv2d(2, ch, (3, 9), padding=(1, 4))),
                    weight_norm(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))),
                    weight_norm(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))),
                    weight_norm(nn.Conv2d(ch, ch, (3, 9), stride=(1, 2), padding=(1, 4))),
                    weight_norm(nn.Conv2d(ch, ch, (3, 3), padding=(1, 1))),
                ]
            )

        self.bands = nn.ModuleList(stack() for _ in self.bins)
        self.post = weight_norm(nn.Conv2d(ch, 1, (3, 3), padding=(1, 1)))

    def forward(self, wav: torch.Tensor) -> DiscriminatorOutput:
        """Args: wav: (B, 1, T). Returns logits (B, 1, frames, sum of band widths / 8)."""
        spec = _complex_spec(wav, self.n_fft, self.hop, normalized=False)  # (B, 2, frames, F)
        features = []
        outs = []
        for (a, b), layers in zip(self.bins, self.bands):
            x = spec[..., a:b]
            for layer in layers:
                x = F.leaky_relu(layer(x), MRD_SLOPE)
                features.append(x)
            outs.append(x)
        return DiscriminatorOutput(self.post(torch.cat(outs, dim=-1)), features)


class MultiResolutionDiscriminator(nn.Module):
    """DAC MRD: one `BandSpectrogramDiscriminator` per FFT size."""

    def __init__(self, cfg: MRDConfig):
        super().__init__()
        self.discriminators = nn.ModuleList(
            BandSpectrogramDiscriminator(n, cfg) for n in cfg.n_ffts
        )
        self.names = [f"mrd_n{n}" for n in cfg.n_ffts]

    def forward(self, wav: torch.Tensor) -> list[DiscriminatorOutput]:
        """Args: wav: (B, 1, T). Returns one output per FFT size."""
        return [d(wav) for d in self.discriminators]


# --------------------------------------------------------------------------------------------
# all of them
# --------------------------------------------------------------------------------------------


class Discriminators(nn.Module):
    """The discriminator families named in ``cfg.kinds``, run on the same waveform.

    Args:
        cfg: which families (any of "msd", "mpd", "stftd", "mrd"; empty = no adversary) and
            their settings.
        sample_rate: the audio rate in Hz. Window sizes in `cfg` are in samples, so presets are
            written for one rate (16 kHz defaults); kept to describe the module.

    Attributes:
        names: one name per sub-discriminator, in the order `forward` returns them
            (e.g. ``["mpd_p2", ..., "mrd_n512"]``).
    """

    def __init__(self, cfg: DiscriminatorConfig, sample_rate: int):
        super().__init__()
        unknown = [k for k in cfg.kinds if k not in KINDS]
        if unknown:
            raise ConfigError(
                f"unknown discriminator kind '{unknown[0]}' in discriminator.kinds "
                f"(choose from {', '.join(KINDS)})"
            )
        if len(set(cfg.kinds)) != len(cfg.kinds):
            raise ConfigError(f"discriminator.kinds lists a kind twice: {list(cfg.kinds)}")
        builders = {
            "msd": lambda: MultiScaleDiscriminator(cfg.msd),
            "mpd": lambda: MultiPeriodDiscriminator(cfg.mpd),
            "stftd": lambda: MultiScaleSTFTDiscriminator(cfg.stftd),
            "mrd": lambda: MultiResolutionDiscriminator(cfg.mrd),
        }
        self.sample_rate = sample_rate
        self.remove_dc, self.peak = cfg.remove_dc, cfg.peak_normalize
        self.families = nn.ModuleDict({k: builders[k]() for k in cfg.kinds})
        self.names: list[str] = [n for fam in self.families.values() for n in fam.names]

    def forward(self, wav: torch.Tensor) -> list[DiscriminatorOutput]:
        """Score a batch of waveforms with every sub-discriminator.

        Args:
            wav: (B, 1, T) float waveform in [-1, 1]; any T >= 1.

        Returns:
            ``len(self.names)`` outputs, in the order of `names`.
        """
        _check_wav(wav)
        wav = preprocess(wav, self.remove_dc, self.peak)
        outs: list[DiscriminatorOutput] = []
        for fam in self.families.values():
            outs.extend(fam(wav))
        return outs

    def extra_repr(self) -> str:
        return (
            f"sample_rate={self.sample_rate}, names={self.names}, remove_dc={self.remove_dc}, "
            f"peak_normalize={self.peak}"
        )


def preprocess(wav: torch.Tensor, remove_dc: bool, peak: float) -> torch.Tensor:
    """What every discriminator family sees of a waveform (DAC's discriminator input, Kumar et
    al. 2023, `Discriminator.preprocess` in dac/model/discriminator.py).

    Args:
        wav: (B, C, T) waveform.
        remove_dc: subtract each clip's (and channel's) mean over time.
        peak: scale each clip so its largest magnitude is `peak` (DAC: 0.8); 0 = no scaling.
            Differentiable (the generator's gradient flows through the scale too, as in DAC).

    Returns:
        (B, C, T), `wav` itself when both are off.
    """
    if remove_dc:
        wav = wav - wav.mean(dim=-1, keepdim=True)
    if peak > 0:
        wav = peak * wav / (wav.abs().amax(dim=-1, keepdim=True) + PEAK_EPS)
    return wav
