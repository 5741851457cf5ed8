"""Training losses: adversarial pairs, feature matching, reconstruction, gradient balancer.

Conventions:
- argument order is ``(pred, target)`` as in `torch.nn.functional` (pred = decoder output);
- adversarial functions take lists of logits, one tensor per sub-discriminator (the
  `DiscriminatorOutput.logits` of `telugu_codec.model.discriminators`);
- every function returns a scalar tensor; lower is better for the party being trained.

Adversarial kinds (`LossConfig.adversarial`), each a consistent discriminator/generator pair:

=================  =====================================  ==============================
kind               discriminator (real x, fake G)         generator
=================  =====================================  ==============================
``hinge``          relu(1 - D(x)) + relu(1 + D(G))        -D(G)
``lsgan``          (1 - D(x))^2 + D(G)^2                  (1 - D(G))^2
``bce``            softplus(-D(x)) + softplus(D(G))       softplus(-D(G))
``hinge_g_bce_d``  softplus(-D(x)) + softplus(D(G))       -D(G)   (the seed's mismatch)
=================  =====================================  ==============================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import LossConfig, MelLossConfig
from .errors import CheckpointError, ConfigError
from .spectral import complex_stft, mel_spectrogram, stft_magnitude

ADVERSARIAL_KINDS = ("hinge", "lsgan", "bce", "hinge_g_bce_d")
REDUCTIONS = ("mean", "sum")


def _check_kind(kind: str) -> None:
    if kind not in ADVERSARIAL_KINDS:
        raise ConfigError(
            f"unknown adversarial loss '{kind}' in loss.adversarial "
            f"(choose from {', '.join(ADVERSARIAL_KINDS)})"
        )


def _reduce(terms: list[torch.Tensor], reduction: str) -> torch.Tensor:
    if reduction not in REDUCTIONS:
        raise ConfigError(f"unknown reduction '{reduction}' in loss.gan_reduction (mean | sum)")
    if not terms:
        raise ValueError("no discriminator outputs to compute a loss from")
    total = torch.stack(terms).sum()
    return total / len(terms) if reduction == "mean" else total


# --------------------------------------------------------------------------------------------
# adversarial pairs
# --------------------------------------------------------------------------------------------


def _d_term(real: torch.Tensor, fake: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "hinge":  # Lim & Ye 2017 (Geometric GAN); MelGAN eq. 1
        return F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    if kind == "lsgan":  # Mao et al. 2017, a = 0, b = c = 1; HiFi-GAN eq. 1
        return (1 - real).square().mean() + fake.square().mean()
    # bce and hinge_g_bce_d: -log sigmoid(D(x)) - log(1 - sigmoid(D(G))) (Goodfellow et al.)
    return F.softplus(-real).mean() + F.softplus(fake).mean()


def _g_term(fake: torch.Tensor, kind: str) -> torch.Tensor:
    if kind in ("hinge", "hinge_g_bce_d"):  # MelGAN eq. 2
        return -fake.mean()
    if kind == "lsgan":  # HiFi-GAN eq. 2
        return (1 - fake).square().mean()
    return F.softplus(-fake).mean()  # non-saturating: -log sigmoid(D(G))


def discriminator_loss(
    real_logits: list[torch.Tensor],
    fake_logits: list[torch.Tensor],
    kind: str,
    reduction: str = "mean",
) -> torch.Tensor:
    """Discriminator loss, lower when real is scored high and fake low.

    Each sub-discriminator's term is averaged over its output positions, then the terms are
    averaged (``reduction="mean"``) or summed (``"sum"``, DAC / HiFi-GAN) over
    sub-discriminators.

    Args:
        real_logits: per sub-discriminator, (B, ...) logits on real audio.
        fake_logits: the same on generated audio (detach it from the generator).
        kind: "hinge" | "lsgan" | "bce" | "hinge_g_bce_d" (see the module table).
        reduction: "mean" | "sum" over sub-discriminators.

    Returns:
        Scalar loss. Minimum 0 for hinge and lsgan (D(x) >= 1 and D(G) <= -1, resp. D(x) = 1 and
        D(G) = 0); infimum 0 for bce.
    """
    _check_kind(kind)
    if len(real_logits) != len(fake_logits):
        raise ValueError(f"{len(real_logits)} real vs {len(fake_logits)} fake outputs")
    terms = [_d_term(r, f, kind) for r, f in zip(real_logits, fake_logits)]
    return _reduce(terms, reduction)


def generator_adversarial_loss(
    fake_logits: list[torch.Tensor], kind: str, reduction: str = "mean"
) -> torch.Tensor:
    """Generator's adversarial loss, lower when the fake is scored as real.

    ``"hinge_g_bce_d"`` reproduces the seed recipe: the hinge generator loss ``-D(G)`` against
    a discriminator trained with BCE. The pair is inconsistent: a BCE discriminator is pushed to
    make its logits ever larger in magnitude (its loss only vanishes as D(x) -> +inf and
    D(G) -> -inf), there is no margin that stops it, and ``-D(G)`` is linear and unbounded
    below, so the generator's gradient scale is whatever the logit scale has drifted to and its
    loss value says nothing about how close real and fake are. The hinge pair avoids this
    because its discriminator stops at the margin |D| = 1; the bce pair because softplus
    saturates. Kept only to reproduce the seed; prefer "hinge", "lsgan" or "bce".

    Args:
        fake_logits: per sub-discriminator, (B, ...) logits on generated audio (not detached).
        kind: "hinge" | "lsgan" | "bce" | "hinge_g_bce_d".
        reduction: "mean" | "sum" over sub-discriminators.

    Returns:
        Scalar loss.
    """
    _check_kind(kind)
    return _reduce([_g_term(f, kind) for f in fake_logits], reduction)


def feature_matching_loss(
    real_features: list[list[torch.Tensor]],
    fake_features: list[list[torch.Tensor]],
    relative: bool = False,
    reduction: str = "mean",
) -> torch.Tensor:
    """L1 distance between discriminator feature maps of real and generated audio.

    MelGAN eq. 3 / HiFi-GAN eq. 5 with ``relative=False``: mean |D_k^l(x) - D_k^l(G)|.
    EnCodec eq. 2 with ``relative=True``: each layer's L1 divided by mean |D_k^l(x)|, which
    makes layers of different scale count equally.
    Real features are detached: feature matching trains the generator only.

    Args:
        real_features: per sub-discriminator, its list of (B, C, ...) feature maps on real audio.
        fake_features: the same on generated audio.
        relative: use EnCodec's relative form.
        reduction: "mean" averages over all (sub-discriminator, layer) pairs (EnCodec's
            1 / (K L)); "sum" adds them (DAC, HiFi-GAN).

    Returns:
        Scalar loss, 0 when the features are identical.
    """
    if len(real_features) != len(fake_features):
        raise ValueError(f"{len(real_features)} real vs {len(fake_features)} fake feature lists")
    terms = []
    for reals, fakes in zip(real_features, fake_features):
        if len(reals) != len(fakes):
            raise ValueError(f"{len(reals)} real vs {len(fakes)} fake feature maps")
        for real, fake in zip(reals, fakes):
            real = real.detach()
            term = (fake - real).abs().mean()
            if relative:
                term = term / (real.abs().mean() + 1e-8)
            terms.append(term)
    return _reduce(terms, reduction)


# --------------------------------------------------------------------------------------------
# reconstruction
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# putting terms together
# --------------------------------------------------------------------------------------------


class ReconstructionLosses(nn.Module):
    """The reconstruction terms of a `LossConfig` that have a non-zero weight.

    Args:
        cfg: loss weights and settings.
        sample_rate: audio rate in Hz.

    Attributes:
        weights: name -> weight for the active terms ("l1", "mel", "stft", "sisdr",
            "loudness", "phase").
    """

    def __init__(self, cfg: LossConfig, sample_rate: int):
        super().__init__()
        self.weights = {
            name: float(getattr(cfg, name))
            for name in ("l1", "mel", "stft", "sisdr", "loudness", "phase")
            if getattr(cfg, name) != 0
        }
        self.mel = MultiScaleMelLoss(cfg.mel_loss, sample_rate) if "mel" in self.weights else None
        self.stft = MultiResolutionSTFTLoss(cfg.stft_n_ffts) if "stft" in self.weights else None
        self.phase = MultiResolutionPhaseLoss(cfg.phase_n_ffts) if "phase" in self.weights else None

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        """Unweighted active terms.

        Args:
            pred: (B, 1, T) decoder output.
            target: (B, 1, T) input audio.

        Returns:
            name -> scalar loss for every name in `weights`.
        """
        out: dict[str, torch.Tensor] = {}
        if "l1" in self.weights:
            out["l1"] = l1_loss(pred, target)
        if self.mel is not None:
            out["mel"] = self.mel(pred, target)
        if self.stft is not None:
            out["stft"] = self.stft(pred, target)
        if "sisdr" in self.weights:
            out["sisdr"] = sisdr_loss(pred, target)
        if "loudness" in self.weights:
            out["loudness"] = loudness_loss(pred, target)
        if self.phase is not None:
            out["phase"] = self.phase(pred, target)
        return out


def build_generator_losses(cfg: LossConfig, sample_rate: int) -> ReconstructionLosses:
    """The generator's reconstruction terms for `cfg` (adversarial ones need the discriminators).

    Checks the adversarial kind and reduction up front so a bad config fails before training.
    """
    _check_kind(cfg.adversarial)
    if cfg.feature_matching not in ("l1", "relative"):
        raise ConfigError(
            f"unknown feature matching '{cfg.feature_matching}' in loss.feature_matching "
            "(l1 | relative)"
        )
    if cfg.gan_reduction not in REDUCTIONS:
        raise ConfigError(f"unknown loss.gan_reduction '{cfg.gan_reduction}' (mean | sum)")
    return ReconstructionLosses(cfg, sample_rate)


def weighted_sum(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """``sum(weights[k] * losses[k])`` over the keys of `losses` (the no-balancer path)."""
    return torch.stack([weights[k] * v for k, v in losses.items()]).sum()


class LossBalancer:
    """EnCodec's gradient balancer (Défossez et al. 2022, sec. 3.4; audiocraft `Balancer`).

    For losses l_i that depend on the model only through the decoder output y, the gradient
    sent back into the model is

        g = R * sum_i (w_i / sum_j w_j) * (dl_i/dy) / <||dl_i/dy||>_beta

    where <.>_beta is a bias-corrected exponential moving average of the gradient norm
    (per-item L2 norm averaged over the batch) and R = `total_norm`. A weight is then the
    share of the total gradient norm a loss gets, whatever the loss's own scale.

    Use it for the decoder-output terms only (reconstruction, adversarial, feature matching);
    the quantizer's commitment loss depends on the encoder output and gets its own
    ``backward``. The adversarial and feature-matching terms also reach the discriminator's
    parameters; zero those gradients (or freeze D) before the generator step.

    Args:
        weights: loss name -> weight (> 0); losses passed to `backward` must be among these.
        ema_decay: beta of the norm average (EnCodec: 0.999).
        total_norm: R, the norm of the combined gradient when the norms match their average.
        per_batch_item: norms per batch item then averaged (True), or over the whole batch.
        eps: added to the norm average before dividing.
    """

    def __init__(
        self,
        weights: dict[str, float],
        ema_decay: float = 0.999,
        total_norm: float = 1.0,
        per_batch_item: bool = True,
        eps: float = 1e-12,
    ):
        bad = {k: w for k, w in weights.items() if not w > 0}
        if bad:
            raise ConfigError(f"balancer weights must be > 0, got {bad}")
        if not 0.0 <= ema_decay < 1.0:
            raise ConfigError(f"loss.balancer_ema must be in [0, 1), got {ema_decay}")
        self.weights = {k: float(w) for k, w in weights.items()}
        self.ema_decay = float(ema_decay)
        self.total_norm = float(total_norm)
        self.per_batch_item = per_batch_item
        self.eps = eps
        # bias-corrected EMA: avg = ema_sum / ema_count
        self.ema_sum: dict[str, float] = {}
        self.ema_count: dict[str, float] = {}
        self.steps = 0

    @classmethod
    def from_config(cls, cfg: LossConfig) -> LossBalancer:
        """Balance every decoder-output term of `cfg` with a non-zero weight."""
        names = ("l1", "mel", "stft", "sisdr", "loudness", "adv", "fm")
        weights = {n: float(getattr(cfg, n)) for n in names if getattr(cfg, n) > 0}
        return cls(weights, cfg.balancer_ema, cfg.balancer_total_norm)

    def _norm(self, grad: torch.Tensor) -> float:
        if self.per_batch_item and grad.dim() > 1:
            return float(grad.flatten(1).norm(dim=1).mean())
        return float(grad.norm())

    def _update(self, name: str, value: float) -> float:
        beta = self.ema_decay
        self.ema_sum[name] = beta * self.ema_sum.get(name, 0.0) + value
        self.ema_count[name] = beta * self.ema_count.get(name, 0.0) + 1.0
        return self.ema_sum[name] / self.ema_count[name]

    def combined_grad(
        self, losses: dict[str, torch.Tensor], output: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The balanced gradient w.r.t. `output` (without backpropagating it further).

        Args:
            losses: name -> scalar loss that depends on the model only through `output`.
            output: the decoder output y, e.g. (B, 1, T), part of the autograd graph.

        Returns:
            (g, metrics): g has `output`'s shape; per loss name n the metrics hold
            ``grad_norm/n`` (this step's ||dl_n/dy||), ``grad_ema/n`` (its moving average) and
            ``grad_share/n`` (the norm of its rescaled gradient, which the balancer steers to
            total_norm * w_n / sum(w)); plus ``grad_norm/total`` for the combined gradient.
            Backpropagate with ``(output * g).sum()`` added to the other losses, so that one
            backward pass also carries e.g. the commitment loss through the shared encoder.
        """
        unknown = sorted(set(losses) - set(self.weights))
        if unknown:
            raise KeyError(f"no balancer weight for loss(es) {unknown}")
        combined = torch.zeros_like(output)
        metrics: dict[str, float] = {}
        if not losses:
            return combined, metrics
        total_weight = sum(self.weights[n] for n in losses)
        for name, loss in losses.items():
            (grad,) = torch.autograd.grad(loss, [output], retain_graph=True)
            norm = self._norm(grad)
            avg = self._update(name, norm)
            scale = self.total_norm * (self.weights[name] / total_weight) / (avg + self.eps)
            combined.add_(grad, alpha=scale)
            metrics[f"grad_norm/{name}"] = norm
            metrics[f"grad_ema/{name}"] = avg
            metrics[f"grad_share/{name}"] = scale * norm
        self.steps += 1
        metrics["grad_norm/total"] = self._norm(combined)
        return combined, metrics

    def backward(self, losses: dict[str, torch.Tensor], output: torch.Tensor) -> dict[str, float]:
        """Backpropagate the balanced combination of `losses` through `output`.

        Same as `combined_grad` followed by ``output.backward(g)``; returns the metrics.
        """
        if not losses:
            return {}
        grad, metrics = self.combined_grad(losses, output)
        output.backward(grad)
        return metrics

    def state_dict(self) -> dict[str, object]:
        """Plain floats / ints only (JSON-serialisable), for checkpoints."""
        return {
            "ema_sum": dict(self.ema_sum),
            "ema_count": dict(self.ema_count),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict[str, object]) -> None:
        """Restore the moving averages saved by `state_dict`.

        Raises:
            CheckpointError: `state` is not what `state_dict` writes.
        """
        try:
            ema_sum = {str(k): float(v) for k, v in state["ema_sum"].items()}  # type: ignore[attr-defined]
            ema_count = {str(k): float(v) for k, v in state["ema_count"].items()}  # type: ignore[attr-defined]
            steps = int(state["steps"])  # type: ignore[call-overload]
        except (KeyError, AttributeError, TypeError, ValueError) as e:
            raise CheckpointError(
                f"loss balancer state in the checkpoint is malformed ({e!r}); "
                "start without it or use a checkpoint written by this version"
            ) from e
        self.ema_sum, self.ema_count, self.steps = ema_sum, ema_count, steps


__all__ = [
    "ADVERSARIAL_KINDS",
    "LossBalancer",
    "MultiResolutionSTFTLoss",
    "MultiScaleMelLoss",
    "ReconstructionLosses",
    "build_generator_losses",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "l1_loss",
    "sisdr",
    "sisdr_loss",
    "weighted_sum",
]
