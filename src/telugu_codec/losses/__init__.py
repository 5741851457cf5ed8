"""Training losses, each kept with what it owns.

- `adversarial`: the discriminator / generator pairs (hinge, LSGAN, BCE, the seed's mixed
  pair) and feature matching;
- `reconstruction`: L1, SI-SDR, loudness, multi-scale mel, multi-resolution STFT, APNet's
  phase losses, MP-SENet's compressed complex spectrum loss, and
  `ReconstructionLosses` / `build_generator_losses` for the active terms of a config;
- `distill`: cosine / phone cross-entropy on codebook 1 against a teacher (issue 25);
- `balancer`: the weighted sum and EnCodec's gradient balancer that combine the terms.
"""

from __future__ import annotations

from .adversarial import (
    ADVERSARIAL_KINDS,
    REDUCTIONS,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)
from .balancer import LossBalancer, weighted_sum
from .distill import cosine_distill_loss, phone_distill_loss
from .reconstruction import (
    MultiResolutionComplexLoss,
    MultiResolutionPhaseLoss,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    ReconstructionLosses,
    build_generator_losses,
    l1_loss,
    loudness_loss,
    sisdr,
    sisdr_loss,
)

__all__ = [
    "cosine_distill_loss",
    "phone_distill_loss",
    "ADVERSARIAL_KINDS",
    "REDUCTIONS",
    "LossBalancer",
    "MultiResolutionComplexLoss",
    "MultiResolutionPhaseLoss",
    "MultiResolutionSTFTLoss",
    "MultiScaleMelLoss",
    "ReconstructionLosses",
    "build_generator_losses",
    "discriminator_loss",
    "feature_matching_loss",
    "generator_adversarial_loss",
    "l1_loss",
    "loudness_loss",
    "sisdr",
    "sisdr_loss",
    "weighted_sum",
]
