"""losses/reconstruction.py: L1, SI-SDR, loudness, mel and STFT terms; active terms per preset."""

from __future__ import annotations

import math

import pytest
import torch

from telugu_codec.config import MelLossConfig, load_config
from telugu_codec.errors import ConfigError
from telugu_codec.losses import (
    MultiResolutionSTFTLoss,
    MultiScaleMelLoss,
    build_generator_losses,
    l1_loss,
    sisdr,
    sisdr_loss,
    weighted_sum,
)

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


def test_loudness_loss_measures_level_in_nepers():

    from telugu_codec.losses import loudness_loss

    x = torch.randn(3, 1, 800)
    assert float(loudness_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(loudness_loss(0.5 * x, x)) == pytest.approx(math.log(2), rel=1e-4)
    assert float(loudness_loss(2 * x, x)) == pytest.approx(math.log(2), rel=1e-4)
    # it ignores the waveform's shape: a time-reversed copy has the same level
    assert float(loudness_loss(x.flip(-1), x)) == pytest.approx(0.0, abs=1e-5)


def test_phase_loss_is_zero_on_identical_inputs_and_sees_phase_only_errors():
    from telugu_codec.losses import MultiResolutionPhaseLoss

    torch.manual_seed(0)
    loss = MultiResolutionPhaseLoss((256, 512))
    t = torch.arange(8000) / 16000
    x = torch.sin(2 * torch.pi * 220 * t).view(1, 1, -1) * 0.3
    assert float(loss(x, x)) < 1e-5
    # the same magnitude spectrum with another phase: mel-type losses barely see it
    shifted = torch.sin(2 * torch.pi * 220 * t + 1.5).view(1, 1, -1) * 0.3
    louder = x * 2.0
    assert float(loss(shifted, x)) > 0.3
    assert float(loss(louder, x)) < 1e-4  # a gain does not change the phase
    anti = torch.tensor([0.0, 2 * torch.pi, -3 * torch.pi, 0.5])
    from telugu_codec.losses.reconstruction import anti_wrap

    assert torch.allclose(anti_wrap(anti), torch.tensor([0.0, 0.0, torch.pi, 0.5]), atol=1e-6)


def test_complex_loss_sees_phase_and_level_and_has_finite_gradients_in_silence():
    from telugu_codec.losses import MultiResolutionComplexLoss

    loss = MultiResolutionComplexLoss((256, 512), power=0.3)
    t = torch.arange(8000) / 16000
    x = torch.sin(2 * torch.pi * 220 * t).view(1, 1, -1) * 0.3
    assert float(loss(x, x)) < 1e-8
    shifted = torch.sin(2 * torch.pi * 220 * t + 1.5).view(1, 1, -1) * 0.3
    # a phase error as large as a 2x level error: both show
    assert float(loss(shifted, x)) > 0.5 * float(loss(2 * x, x)) > 0
    # a smaller phase error gives a smaller loss (no wrap-around at small errors)
    nearer = torch.sin(2 * torch.pi * 220 * t + 0.3).view(1, 1, -1) * 0.3
    assert 0 < float(loss(nearer, x)) < float(loss(shifted, x))
    # silent output (the collapse the project exists to avoid): finite gradient, positive loss
    silent = torch.zeros_like(x, requires_grad=True)
    value = loss(silent, x)
    value.backward()
    assert float(value) > 0 and torch.isfinite(silent.grad).all() and silent.grad.abs().sum() > 0


def test_complex_loss_is_an_active_term_when_weighted():
    cfg = load_config("tiny", ["loss.complex=10", "loss.complex_n_ffts=[256]"])
    losses = build_generator_losses(cfg.loss, cfg.model.sample_rate)
    assert losses.weights["complex"] == 10.0
    x = torch.randn(2, 1, 4000) * 0.1
    assert set(losses(x * 0.5, x)) >= {"complex", "mel"}
    with pytest.raises(ConfigError, match="complex_power"):
        load_config("tiny", ["loss.complex_power=0"])
