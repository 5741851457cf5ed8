"""Adversarial losses: the discriminator / generator pairs and feature matching.

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

from ..errors import ConfigError

ADVERSARIAL_KINDS = ("hinge", "lsgan", "bce", "hinge_g_bce_d")
REDUCTIONS = ("mean", "sum")


def check_kind(kind: str) -> None:
    """Raise `ConfigError` unless `kind` is one of `ADVERSARIAL_KINDS`."""
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
    check_kind(kind)
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
    check_kind(kind)
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
