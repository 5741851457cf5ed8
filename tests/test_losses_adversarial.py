"""losses/adversarial.py: the discriminator / generator pairs and feature matching."""

from __future__ import annotations

import math

import pytest
import torch

from telugu_codec.config import LossConfig
from telugu_codec.errors import ConfigError
from telugu_codec.losses import (
    ADVERSARIAL_KINDS,
    build_generator_losses,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
)


def _full(value: float, shape: tuple[int, ...] = (2, 1, 5)) -> torch.Tensor:
    return torch.full(shape, float(value))


# ------------------------------------------------------------------------------------------
# adversarial pairs
# ------------------------------------------------------------------------------------------


# per kind, a "real-looking" and a "fake-looking" score: LSGAN's targets are 1 and 0, the
# others are sign-based
LABELS = {
    "hinge": (1.5, -1.5),
    "lsgan": (1.0, 0.0),
    "bce": (3.0, -3.0),
    "hinge_g_bce_d": (3.0, -3.0),
}


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_discriminator_loss_is_lower_when_real_high_and_fake_low(kind):
    hi, lo = LABELS[kind]
    mid = (hi + lo) / 2
    good = discriminator_loss([_full(hi)], [_full(lo)], kind)
    bad = discriminator_loss([_full(lo)], [_full(hi)], kind)
    undecided = discriminator_loss([_full(mid)], [_full(mid)], kind)
    assert good < undecided < bad


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_generator_loss_is_lower_when_fake_scored_as_real(kind):
    hi, lo = LABELS[kind]
    assert generator_adversarial_loss([_full(hi)], kind) < generator_adversarial_loss(
        [_full(lo)], kind
    )


@pytest.mark.parametrize("kind", ADVERSARIAL_KINDS)
def test_d_and_g_pull_the_fake_score_in_opposite_directions(kind):
    """Between the fake and real labels, D's loss never rewards raising a fake score and G's
    never rewards lowering it."""
    hi, lo = LABELS[kind]
    scores = torch.linspace(lo, hi, 61).view(1, 1, -1).requires_grad_(True)
    real = torch.full((1, 1, 61), hi)
    (d_grad,) = torch.autograd.grad(discriminator_loss([real], [scores], kind), scores)
    (g_grad,) = torch.autograd.grad(generator_adversarial_loss([scores], kind), scores)
    assert (d_grad >= 0).all() and (g_grad <= 0).all()
    assert (d_grad > 0).any() and (g_grad < 0).any()


@pytest.mark.parametrize(
    ("kind", "d_at_zero", "g_at_half"),
    [
        ("hinge", 2.0, -0.5),
        ("lsgan", 1.0, 0.25),
        ("bce", 2 * math.log(2), math.log1p(math.exp(-0.5))),
        ("hinge_g_bce_d", 2 * math.log(2), -0.5),
    ],
)
def test_adversarial_known_values(kind, d_at_zero, g_at_half):
    d = discriminator_loss([_full(0.0)], [_full(0.0)], kind)
    g = generator_adversarial_loss([_full(0.5)], kind)
    assert float(d) == pytest.approx(d_at_zero, rel=1e-6)
    assert float(g) == pytest.approx(g_at_half, rel=1e-6)


def test_minima_of_the_bounded_pairs():
    assert float(discriminator_loss([_full(1.5)], [_full(-1.2)], "hinge")) == 0.0
    assert float(discriminator_loss([_full(1.0)], [_full(0.0)], "lsgan")) == 0.0
    assert float(generator_adversarial_loss([_full(1.0)], "lsgan")) == 0.0
    # the seed's pair: the generator loss keeps falling however "real" the fake already looks
    assert float(generator_adversarial_loss([_full(100.0)], "hinge_g_bce_d")) == -100.0
    assert float(generator_adversarial_loss([_full(100.0)], "bce")) == pytest.approx(0, abs=1e-6)


def test_sub_discriminators_are_averaged_or_summed():
    real = [_full(0.0, (2, 1, 7)), _full(0.0, (2, 1, 3, 4))]
    fake = [_full(0.5, (2, 1, 7)), _full(-0.5, (2, 1, 3, 4))]
    each = [discriminator_loss([r], [f], "lsgan") for r, f in zip(real, fake)]
    mean = discriminator_loss(real, fake, "lsgan")
    total = discriminator_loss(real, fake, "lsgan", reduction="sum")
    assert float(mean) == pytest.approx(float(sum(each)) / 2)
    assert float(total) == pytest.approx(float(sum(each)))


def test_unknown_adversarial_kind_is_a_config_error():
    with pytest.raises(ConfigError, match="hinge"):
        discriminator_loss([_full(0)], [_full(0)], "wgan")
    with pytest.raises(ConfigError):
        build_generator_losses(LossConfig(adversarial="wgan"), 16000)


# ------------------------------------------------------------------------------------------
# feature matching
# ------------------------------------------------------------------------------------------


def _features(seed: int) -> list[list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [
        [torch.randn(2, 4, 9, generator=g), torch.randn(2, 8, 3, generator=g)],
        [torch.randn(2, 3, 5, 2, generator=g)],
    ]


@pytest.mark.parametrize("relative", [False, True])
def test_feature_matching_zero_on_identical_and_positive_otherwise(relative):
    real = _features(0)
    assert float(feature_matching_loss(real, _features(0), relative)) == 0.0
    assert float(feature_matching_loss(real, _features(1), relative)) > 0.1


def test_feature_matching_known_values_and_relative_scale_invariance():
    ones = [[torch.ones(1, 2, 3)], [2 * torch.ones(1, 1, 4)]]
    zeros = [[torch.zeros(1, 2, 3)], [torch.zeros(1, 1, 4)]]
    assert float(feature_matching_loss(ones, zeros)) == pytest.approx(1.5)  # (1 + 2) / 2 layers
    assert float(feature_matching_loss(ones, zeros, reduction="sum")) == pytest.approx(3.0)
    assert float(feature_matching_loss(ones, zeros, relative=True)) == pytest.approx(1.0)
    real, fake = _features(0), _features(1)
    scaled = [[10 * f for f in fs] for fs in real], [[10 * f for f in fs] for fs in fake]
    torch.testing.assert_close(
        feature_matching_loss(*scaled, relative=True), feature_matching_loss(real, fake, True)
    )


def test_feature_matching_trains_only_the_generator_side():
    real = [[torch.randn(2, 3, 5, requires_grad=True)]]
    fake = [[torch.randn(2, 3, 5, requires_grad=True)]]
    feature_matching_loss(real, fake).backward()
    assert real[0][0].grad is None
    assert fake[0][0].grad is not None and fake[0][0].grad.abs().sum() > 0
