"""Losses: adversarial pairs, feature matching, reconstruction terms, gradient balancer."""

from __future__ import annotations

import json
import math

import pytest
import torch

from telugu_codec.config import LossConfig, MelLossConfig, load_config
from telugu_codec.errors import CheckpointError, ConfigError
from telugu_codec.losses import (
    ADVERSARIAL_KINDS,
    LossBalancer,
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    build_generator_losses,
    discriminator_loss,
    feature_matching_loss,
    generator_adversarial_loss,
    l1_loss,
    sisdr,
    sisdr_loss,
    weighted_sum,
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


# ------------------------------------------------------------------------------------------
# reconstruction
# ------------------------------------------------------------------------------------------

SMALL_MEL = MelLossConfig(n_ffts=(32, 64, 128), n_mels=(5, 10, 20))


def _speechish(length: int = 2000, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(length) / 16000
    tone = 0.3 * torch.sin(2 * torch.pi * 220 * t) + 0.1 * torch.sin(2 * torch.pi * 1500 * t)
    return (tone + 0.01 * torch.randn(length, generator=g)).view(1, 1, -1).repeat(2, 1, 1)


@pytest.mark.parametrize(
    "loss_fn",
    [
        l1_loss,
        MultiScaleMelLoss(SMALL_MEL, 16000),
        MultiScaleMelLoss(MelLossConfig(n_ffts=(64,), n_mels=(16,), mse_weight=1.0), 16000),
        MultiResolutionSTFTLoss((64, 256)),
    ],
    ids=["l1", "mel", "mel_mse", "stft"],
)
def test_reconstruction_losses_zero_on_identical_and_grow_with_error(loss_fn):
    target = _speechish()
    noise = torch.randn(target.shape, generator=torch.Generator().manual_seed(1))
    assert float(loss_fn(target, target.clone())) == pytest.approx(0.0, abs=1e-7)
    small = float(loss_fn(target + 0.01 * noise, target))
    large = float(loss_fn(target + 0.1 * noise, target))
    assert 0 < small < large


def test_l1_known_value():
    assert float(l1_loss(torch.zeros(1, 1, 4), torch.tensor([[[1.0, -1.0, 2.0, 0.0]]]))) == 1.0


def test_sisdr_known_value_and_scale_invariance():
    n = 1600  # 10 whole periods of 100 Hz at 16 kHz: sine and cosine are orthogonal
    t = torch.arange(n) / 16000
    target = torch.sin(2 * torch.pi * 100 * t).view(1, 1, n)
    pred = target + 0.1 * torch.cos(2 * torch.pi * 100 * t).view(1, 1, n)  # 20 dB below
    assert float(sisdr(pred, target)[0]) == pytest.approx(20.0, abs=1e-3)
    assert float(sisdr_loss(pred, target)) == pytest.approx(-20.0, abs=1e-3)
    torch.testing.assert_close(sisdr_loss(3 * pred, target), sisdr_loss(pred, target))
    assert float(sisdr_loss(target, target)) < -60  # identical: the minimum, very negative


def test_mel_loss_needs_matching_lists():
    with pytest.raises(ConfigError, match="same length"):
        MultiScaleMelLoss(MelLossConfig(n_ffts=(32, 64), n_mels=(5,)), 16000)


@pytest.mark.parametrize(
    ("preset", "terms"),
    [("seed", {"l1"}), ("dac", {"mel"}), ("encodec", {"l1", "mel"}), ("l1-vq", {"l1"})],
)
def test_presets_activate_the_right_reconstruction_terms(preset, terms):
    cfg = load_config(preset)
    cfg.loss.mel_loss = SMALL_MEL if cfg.loss.mel else cfg.loss.mel_loss  # keep the test fast
    losses = build_generator_losses(cfg.loss, 16000)
    assert set(losses.weights) == terms
    target = _speechish(800)
    values = losses(target, target)
    assert set(values) == terms
    assert all(float(v) == pytest.approx(0.0, abs=1e-7) for v in values.values())
    weights = {k: float(getattr(cfg.loss, k)) for k in terms}
    assert float(weighted_sum(losses(target + 0.1, target), weights)) > 0


# ------------------------------------------------------------------------------------------
# balancer
# ------------------------------------------------------------------------------------------


def _two_half_losses(y: torch.Tensor, scale_a: float, scale_b: float) -> dict[str, torch.Tensor]:
    """Two losses with gradients on disjoint halves of y, of wildly different raw scales."""
    half = y.shape[-1] // 2
    return {
        "a": scale_a * y[..., :half].square().sum(),
        "b": scale_b * (y[..., half:] - 1).abs().sum(),
    }


def test_balancer_gives_each_loss_its_weight_share_of_the_gradient_norm():
    torch.manual_seed(0)
    balancer = LossBalancer({"a": 1.0, "b": 3.0}, ema_decay=0.9, total_norm=2.0)
    x = torch.randn(1, 1, 64)
    for _ in range(4):
        y = x.clone().requires_grad_(True)
        metrics = balancer.backward(_two_half_losses(y, 1e4, 1e-3), y)
        grad_a = float(y.grad[..., :32].norm())
        grad_b = float(y.grad[..., 32:].norm())
        # measured on the gradient that reached y: R * w / sum(w)
        assert grad_a == pytest.approx(2.0 * 1 / 4, rel=1e-4)
        assert grad_b == pytest.approx(2.0 * 3 / 4, rel=1e-4)
        assert metrics["grad_share/a"] == pytest.approx(grad_a, rel=1e-4)
        assert metrics["grad_norm/total"] == pytest.approx(math.hypot(grad_a, grad_b), rel=1e-4)
    # the raw norms differ by orders of magnitude; the balanced ones do not
    assert metrics["grad_norm/a"] / metrics["grad_norm/b"] > 1e4


def test_balancer_backpropagates_into_the_model():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.tensor(2.0))
    x = torch.randn(1, 1, 64)
    y = weight * x  # a one-parameter "decoder"
    balancer = LossBalancer({"a": 1.0, "b": 1.0})
    balancer.backward(_two_half_losses(y, 1.0, 1.0), y)
    # reference: same combined gradient, chained by hand through y = w x
    y2 = (weight.detach() * x).requires_grad_(True)
    fresh = LossBalancer({"a": 1.0, "b": 1.0})
    fresh.backward(_two_half_losses(y2, 1.0, 1.0), y2)
    assert float(weight.grad) == pytest.approx(float((y2.grad * x).sum()), rel=1e-5)


def test_balancer_state_is_json_and_resumes_identically():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 32)
    a = LossBalancer({"a": 1.0, "b": 2.0}, ema_decay=0.5)
    for scale in (1.0, 10.0):
        y = x.clone().requires_grad_(True)
        a.backward(_two_half_losses(y, scale, 1.0), y)
    state = json.loads(json.dumps(a.state_dict()))
    b = LossBalancer({"a": 1.0, "b": 2.0}, ema_decay=0.5)
    b.load_state_dict(state)
    ya, yb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ma = a.backward(_two_half_losses(ya, 100.0, 1.0), ya)
    mb = b.backward(_two_half_losses(yb, 100.0, 1.0), yb)
    assert ma == mb
    torch.testing.assert_close(ya.grad, yb.grad)
    with pytest.raises(CheckpointError):
        b.load_state_dict({"ema_sum": 3})


def test_balancer_from_config_and_bad_input():
    balancer = LossBalancer.from_config(load_config("encodec").loss)
    assert balancer.weights == {"l1": 0.1, "mel": 1.0, "adv": 3.0, "fm": 3.0}
    y = torch.zeros(1, 1, 4, requires_grad=True)
    with pytest.raises(KeyError, match="vq"):
        balancer.backward({"vq": y.sum()}, y)
    with pytest.raises(ConfigError):
        LossBalancer({"a": 0.0})


def test_loudness_loss_measures_level_in_nepers():
    import math

    from telugu_codec.losses import loudness_loss

    x = torch.randn(3, 1, 800)
    assert float(loudness_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(loudness_loss(0.5 * x, x)) == pytest.approx(math.log(2), rel=1e-4)
    assert float(loudness_loss(2 * x, x)) == pytest.approx(math.log(2), rel=1e-4)
    # it ignores the waveform's shape: a time-reversed copy has the same level
    assert float(loudness_loss(x.flip(-1), x)) == pytest.approx(0.0, abs=1e-5)
