"""Reconstruction losses: L1, SI-SDR, loudness, multi-scale mel and multi-resolution STFT.

Argument order is ``(pred, target)`` as in `torch.nn.functional` (pred = decoder output); every
function returns a scalar tensor, zero (or minimal) when pred equals target.
`ReconstructionLosses` holds the terms of a `LossConfig` that have a non-zero weight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LossConfig, MelLossConfig
from ..errors import ConfigError
from ..spectral import complex_stft, mel_spectrogram, stft_magnitude
from .adversarial import REDUCTIONS, check_kind


def l1_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute waveform error (EnCodec's time-domain loss l_t).

    Args:
        pred: (B, 1, T) decoder output.
        target: (B, 1, T) input audio.

    Returns:
        Scalar, 0 iff pred == target.
    """
    return F.l1_loss(pred, target)


def sisdr(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Scale-invariant SDR in dB per item (Le Roux et al. 2019, eq. 1), zero-mean signals.

    Args:
        pred: (B, 1, T) or (B, T) estimate.
        target: same shape, reference.
        eps: keeps silent references and perfect estimates finite.

    Returns:
        (B,) SI-SDR in dB; higher is better.
    """
    pred = pred.reshape(pred.shape[0], -1)
    target = target.reshape(target.shape[0], -1)
    pred = pred - pred.mean(dim=-1, keepdim=True)
    target = target - target.mean(dim=-1, keepdim=True)
    alpha = (pred * target).sum(-1, keepdim=True) / (target.square().sum(-1, keepdim=True) + eps)
    projection = alpha * target  # the part of pred along target
    noise = pred - projection
    ratio = (projection.square().sum(-1) + eps) / (noise.square().sum(-1) + eps)
    return 10 * torch.log10(ratio)


def sisdr_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Negative SI-SDR in dB, averaged over the batch.

    Args:
        pred: (B, 1, T) decoder output.
        target: (B, 1, T) input audio.

    Returns:
        Scalar; not bounded below by 0 (about -80 dB for identical float32 signals).
    """
    return -sisdr(pred, target).mean()


def loudness_loss(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """Mean over items of |ln RMS(pred) - ln RMS(target)|: the output level in nepers.

    The quantity our user's L1 + VQ run lost (output at 7-28 % of the input's RMS). Mel and
    waveform losses only reach it indirectly; this term holds the level from the first steps.

    Args:
        pred, target: (B, 1, T) or (B, T).
    """
    b = pred.shape[0]
    p = pred.reshape(b, -1).pow(2).mean(dim=1).add(eps * eps).sqrt()
    t = target.reshape(b, -1).pow(2).mean(dim=1).add(eps * eps).sqrt()
    return (p.log() - t.log()).abs().mean()


class MultiScaleMelLoss(nn.Module):
    """DAC multi-scale mel loss (DAC sec. 3.4; `MelSpectrogramLoss` in dac/nn/loss.py).

    For each (window n, mels m) pair: magnitude mel spectrograms with hop n / 4 and
    ``mag_weight * L1(mel) + log_weight * L1(log10(max(mel, floor))) + mse_weight * MSE(mel)``,
    summed over scales as in DAC (its weight 15 assumes the sum). DAC itself uses
    ``mag_weight = 0``; EnCodec's l_f (sec. 3.3) is L1 + MSE on linear 64-band mels.

    Args:
        cfg: window sizes, mel counts, floor and the two term weights.
        sample_rate: audio rate in Hz (for the mel filterbanks).
    """

    def __init__(self, cfg: MelLossConfig, sample_rate: int):
        super().__init__()
        if len(cfg.n_ffts) != len(cfg.n_mels):
            raise ConfigError(
                f"loss.mel_loss.n_ffts ({len(cfg.n_ffts)} values) and loss.mel_loss.n_mels "
                f"({len(cfg.n_mels)} values) must have the same length"
            )
        self.cfg = cfg
        self.sample_rate = sample_rate

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target: (B, 1, T). Returns a scalar, 0 iff the mels agree."""
        cfg = self.cfg
        loss = pred.new_zeros((), dtype=torch.float32)
        for n_fft, n_mels in zip(cfg.n_ffts, cfg.n_mels):
            hop = max(1, n_fft // 4)
            mp = mel_spectrogram(pred, self.sample_rate, n_fft, hop, n_mels)
            mt = mel_spectrogram(target, self.sample_rate, n_fft, hop, n_mels)
            if cfg.mag_weight:
                loss = loss + cfg.mag_weight * F.l1_loss(mp, mt)
            if cfg.mse_weight:
                loss = loss + cfg.mse_weight * F.mse_loss(mp, mt)
            if cfg.log_weight:
                lp = mp.clamp_min(cfg.floor).log10()
                lt = mt.clamp_min(cfg.floor).log10()
                loss = loss + cfg.log_weight * F.l1_loss(lp, lt)
        return loss


class MultiResolutionSTFTLoss(nn.Module):
    """Spectral convergence + log STFT magnitude (Parallel WaveGAN, Yamamoto et al. 2020, eq. 4-6).

    Averaged over resolutions; hop n_fft / 4, Hann window of n_fft.

    Args:
        n_ffts: FFT sizes.
        floor: magnitude floor before the log.
    """

    def __init__(self, n_ffts: tuple[int, ...] = (512, 1024, 2048), floor: float = 1e-5):
        super().__init__()
        if not n_ffts:
            raise ConfigError("loss.stft_n_ffts must list at least one FFT size")
        self.n_ffts = tuple(n_ffts)
        self.floor = floor

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target: (B, 1, T). Returns a scalar, 0 iff the magnitudes agree."""
        loss = pred.new_zeros((), dtype=torch.float32)
        for n_fft in self.n_ffts:
            hop = max(1, n_fft // 4)
            sp = stft_magnitude(pred, n_fft, hop)  # (B, F, frames)
            st = stft_magnitude(target, n_fft, hop)
            # spectral convergence ||S_t - S_p||_F / ||S_t||_F
            sc = torch.linalg.vector_norm(st - sp) / (torch.linalg.vector_norm(st) + 1e-8)
            log_mag = F.l1_loss(sp.clamp_min(self.floor).log(), st.clamp_min(self.floor).log())
            loss = loss + sc + log_mag
        return loss / len(self.n_ffts)


def anti_wrap(x: torch.Tensor) -> torch.Tensor:
    """|x - 2 pi round(x / 2 pi)|: the distance between two phases, in [0, pi] (APNet eq. 6)."""
    return (x - 2 * torch.pi * torch.round(x / (2 * torch.pi))).abs()


class MultiResolutionPhaseLoss(nn.Module):
    """Phase losses of APNet (Ai & Ling 2023, sec. 3.3), at several STFT resolutions.

    For the output and target STFTs, the mean anti-wrapped error of the instantaneous phase,
    of the group delay (phase difference between neighbouring bins) and of the instantaneous
    angular frequency (phase difference between neighbouring frames). Each term is weighted by
    the target magnitude, so silence and noise-floor bins (whose phase is arbitrary) do not
    count. A mel loss only constrains magnitudes; these terms tie the output's harmonics and
    their timing to the input's, which PESQ and STOI reward.

    Args:
        n_ffts: STFT sizes (hop n_fft / 4).
    """

    def __init__(self, n_ffts: tuple[int, ...] = (512, 1024)):
        super().__init__()
        self.n_ffts = tuple(n_ffts)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        loss = pred.new_zeros(())
        for n_fft in self.n_ffts:
            sp = complex_stft(pred.float(), n_fft, n_fft // 4)
            st = complex_stft(target.float(), n_fft, n_fft // 4)
            w = st.abs().detach()  # (B, F, T)
            w = w / w.mean(dim=(1, 2), keepdim=True).clamp_min(1e-8)
            pp, pt = torch.angle(sp), torch.angle(st)
            ip = (anti_wrap(pp - pt) * w).mean()
            gd = (anti_wrap(pp.diff(dim=1) - pt.diff(dim=1)) * w[:, 1:]).mean()
            iaf = (anti_wrap(pp.diff(dim=2) - pt.diff(dim=2)) * w[..., 1:]).mean()
            loss = loss + (ip + gd + iaf) / 3
        return loss / len(self.n_ffts)


class MultiResolutionComplexLoss(nn.Module):
    """Power-law compressed complex spectrum loss (MP-SENet, Lu et al. 2023, eq. 11).

    Each STFT bin X becomes |X|^c e^(i angle X); the loss is the mean squared distance between
    the output's and the target's compressed bins, averaged over resolutions. Magnitude and
    phase in one term: the compression (c = 0.3) lets quiet bins count next to loud ones, and
    unlike the anti-wrapped phase losses it has no discontinuity where a phase error crosses pi.

    Args:
        n_ffts: STFT sizes (hop n_fft / 4).
        power: the compression exponent c, in (0, 1].
        eps: added to |X|^2 so the gradient is finite in silent bins.
    """

    def __init__(
        self, n_ffts: tuple[int, ...] = (512, 1024), power: float = 0.3, eps: float = 1e-9
    ):
        super().__init__()
        if not n_ffts:
            raise ConfigError("loss.complex_n_ffts must list at least one FFT size")
        self.n_ffts = tuple(n_ffts)
        self.power = power
        self.eps = eps

    def _compress(self, spec: torch.Tensor) -> torch.Tensor:
        """(B, F, T) complex -> (B, 2, F, T) real: real and imaginary parts of |X|^c e^(i phi)."""
        ri = torch.view_as_real(spec).movedim(-1, 1)
        power = ri.square().sum(dim=1, keepdim=True) + self.eps
        return ri * power.pow((self.power - 1) / 2)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Args: pred, target: (B, 1, T). Returns a scalar, 0 iff the spectra agree."""
        loss = pred.new_zeros((), dtype=torch.float32)
        for n_fft in self.n_ffts:
            cp = self._compress(complex_stft(pred.float(), n_fft, n_fft // 4))
            ct = self._compress(complex_stft(target.float(), n_fft, n_fft // 4))
            loss = loss + F.mse_loss(cp, ct)
        return loss / len(self.n_ffts)


@dataclass(frozen=True)
class Term:
    """One reconstruction loss term: how to build it from the config (None: a plain function
    of (pred, target) that needs no state)."""

    fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    build: Callable[[LossConfig, int], nn.Module] | None = None


# The one list of reconstruction terms: a term is a `LossConfig` weight of the same name plus
# one line here. The loss sum, the balancer and the config checks all read it.
TERMS: dict[str, Term] = {
    "l1": Term(fn=l1_loss),
    "mel": Term(build=lambda cfg, sr: MultiScaleMelLoss(cfg.mel_loss, sr)),
    "stft": Term(build=lambda cfg, sr: MultiResolutionSTFTLoss(cfg.stft_n_ffts)),
    "sisdr": Term(fn=sisdr_loss),
    "loudness": Term(fn=loudness_loss),
    "phase": Term(build=lambda cfg, sr: MultiResolutionPhaseLoss(cfg.phase_n_ffts)),
    "complex": Term(
        build=lambda cfg, sr: MultiResolutionComplexLoss(cfg.complex_n_ffts, cfg.complex_power)
    ),
}
# the decoder-output terms the adversarial step adds (losses/adversarial.py)
ADVERSARIAL_TERMS = ("adv", "fm")


class ReconstructionLosses(nn.Module):
    """The reconstruction terms (`TERMS`) of a `LossConfig` that have a non-zero weight.

    Args:
        cfg: loss weights and settings.
        sample_rate: audio rate in Hz.

    Attributes:
        weights: name -> weight for the active terms (keys of `TERMS`, in its order).
    """

    def __init__(self, cfg: LossConfig, sample_rate: int):
        super().__init__()
        self.weights = {
            name: float(getattr(cfg, name)) for name in TERMS if getattr(cfg, name) != 0
        }
        self.terms = nn.ModuleDict(
            {
                name: TERMS[name].build(cfg, sample_rate)
                for name in self.weights
                if TERMS[name].build is not None
            }
        )

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted active terms.

        Args:
            pred: (B, 1, T) decoder output.
            target: (B, 1, T) input audio.

        Returns:
            name -> scalar loss for every name in `weights`.
        """
        out: dict[str, torch.Tensor] = {}
        for name in self.weights:
            fn = self.terms[name] if name in self.terms else TERMS[name].fn
            out[name] = fn(pred, target)
        return out


def build_generator_losses(cfg: LossConfig, sample_rate: int) -> ReconstructionLosses:
    """The generator's reconstruction terms for `cfg` (adversarial ones need the discriminators).

    Checks the adversarial kind and reduction up front so a bad config fails before training.
    """
    check_kind(cfg.adversarial)
    if cfg.feature_matching not in ("l1", "relative"):
        raise ConfigError(
            f"unknown feature matching '{cfg.feature_matching}' in loss.feature_matching "
            "(l1 | relative)"
        )
    if cfg.gan_reduction not in REDUCTIONS:
        raise ConfigError(f"unknown loss.gan_reduction '{cfg.gan_reduction}' (mean | sum)")
    return ReconstructionLosses(cfg, sample_rate)
