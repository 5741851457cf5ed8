"""The YAML presets: every one trains, and the published recipes hold their papers' values.

Also the discriminator input preprocessing (DAC's) and the range checks of the options the
recipes need.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from telugu_codec.config import PRESET_DIR, list_presets, load_config
from telugu_codec.errors import ConfigError
from telugu_codec.losses import feature_matching_loss
from telugu_codec.model.discriminators import Discriminators, preprocess
from telugu_codec.train.trainer import Trainer

from .conftest import speechlike

ROOT = Path(__file__).resolve().parents[1]

# every model and discriminator kind at a size that trains in about a second on a CPU; the
# recipe (losses, weights, reductions, optimisers, preprocessing) stays the preset's own
SMALL = [
    "model.encoder.channels=4",
    "model.decoder.channels=4",
    "model.latent_dim=16",
    "model.encoder.stft.dim=16",
    "model.encoder.stft.intermediate_dim=32",
    "model.encoder.stft.layers=1",
    "model.decoder.istft.dim=16",
    "model.decoder.istft.intermediate_dim=32",
    "model.decoder.istft.layers=1",
    "model.quantizer.codebook_size=64",
    "model.quantizer.n_q=4",
    "model.quantizer.kmeans_iters=2",
    "discriminator.msd.width=0.0625",
    "discriminator.mpd.channels=4",
    "discriminator.mpd.max_channels=16",
    "discriminator.stftd.channels=4",
    "discriminator.mrd.channels=4",
    "data.segment_seconds=0.25",
    "data.batch_size=2",
    "data.val_max_files=1",
    "data.val_max_seconds=0.5",
    "train.d_warmup_steps=0",  # the adversarial terms take part in the step
    "train.val_every=1000",
    "train.ckpt_every=1000",
    "train.log_every=1",
]


def test_the_two_preset_folders_are_the_same_files():
    """configs/ (what users browse) and the package's presets (what load_config reads)."""
    here = sorted(p.name for p in (ROOT / "configs").glob("*.yaml"))
    assert here == sorted(p.name for p in PRESET_DIR.glob("*.yaml"))
    for name in here:
        assert (ROOT / "configs" / name).read_bytes() == (PRESET_DIR / name).read_bytes(), name


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_takes_one_finite_training_step(tmp_path, data_dir, preset):
    """Builds (codec, discriminators, losses, data) and takes one D + G step on a tiny batch,
    adversarial terms included."""
    cfg = load_config(preset, SMALL)
    t = Trainer(
        cfg, tmp_path / "run", data_dir, progress=False, tensorboard=False, log=lambda _m: None
    )
    x = torch.stack([torch.from_numpy(speechlike(0.25, seed=i)) for i in range(2)]).unsqueeze(1)
    logs = t.train_step([x])
    assert logs["finite"] == 1.0
    assert all(math.isfinite(v) for k, v in logs.items() if k.startswith("loss/"))
    gan = bool(cfg.discriminator.kinds) and cfg.loss.adv > 0
    assert ("loss/adv" in logs) == gan and ("loss/d" in logs) == gan


def test_dac_preset_holds_dacs_published_recipe():
    """Kumar et al. 2023 / descript-audio-codec conf/final/16khz.yml and scripts/train.py."""
    cfg = load_config("dac")
    loss, q, d, tc = cfg.loss, cfg.model.quantizer, cfg.discriminator, cfg.train
    assert (loss.mel, loss.fm, loss.adv) == (15.0, 2.0, 1.0)
    assert (loss.l1, loss.stft, loss.sisdr, loss.loudness, loss.phase, loss.complex) == (0,) * 6
    assert (q.codebook_weight * loss.vq, q.commitment_weight * loss.vq) == (1.0, 0.25)
    assert (loss.adversarial, loss.feature_matching, loss.gan_reduction) == ("lsgan", "l1", "sum")
    assert not loss.balancer
    m = loss.mel_loss
    assert m.n_ffts == (32, 64, 128, 256, 512, 1024, 2048)
    assert m.n_mels == (5, 10, 20, 40, 80, 160, 320)
    assert (m.mag_weight, m.log_weight, m.mse_weight, m.floor) == (0.0, 1.0, 0.0, 1e-5)
    assert d.kinds == ("mpd", "mrd") and d.mpd.periods == (2, 3, 5, 7, 11)
    assert d.mrd.n_ffts == (2048, 1024, 512)
    assert d.mrd.bands == ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1.0))
    assert (d.remove_dc, d.peak_normalize) == (True, 0.8)
    assert (q.kind, q.n_q, q.codebook_size, q.factorized_dim, q.dropout) == (
        "factorized",
        12,
        1024,
        8,
        0.5,
    )
    assert (tc.d_optim.grad_clip, tc.g_optim.grad_clip) == (10.0, 1000.0)
    for o in (tc.g_optim, tc.d_optim):
        assert (o.lr, o.betas, o.schedule, o.gamma) == (1e-4, (0.8, 0.99), "exponential", 0.999996)


def test_encodec_preset_holds_encodecs_published_recipe():
    """Defossez et al. 2022, sec. 3.3-3.4 and 4."""
    cfg = load_config("encodec")
    loss, q, d, tc = cfg.loss, cfg.model.quantizer, cfg.discriminator, cfg.train
    assert (loss.l1, loss.mel, loss.adv, loss.fm, loss.vq) == (0.1, 1.0, 3.0, 3.0, 1.0)
    assert q.commitment_weight == 1.0
    assert (loss.stft, loss.sisdr, loss.loudness, loss.phase, loss.complex) == (0,) * 5
    assert (loss.adversarial, loss.feature_matching, loss.gan_reduction) == (
        "hinge",
        "relative",
        "mean",
    )
    assert (loss.balancer, loss.balancer_ema, loss.balancer_total_norm) == (True, 0.999, 1.0)
    m = loss.mel_loss
    assert m.n_ffts == tuple(2**e for e in range(5, 12)) and m.n_mels == (64,) * 7
    assert (m.mag_weight, m.mse_weight, m.log_weight) == (1.0, 1.0, 0.0)  # L1 + L2, linear
    assert (q.kind, q.decay, q.kmeans_init, q.codebook_size) == ("ema", 0.99, True, 1024)
    assert d.kinds == ("stftd",) and (d.remove_dc, d.peak_normalize) == (False, 0.0)
    for o in (tc.g_optim, tc.d_optim):
        assert (o.lr, o.betas, o.schedule) == (3e-4, (0.5, 0.9), "constant")


@pytest.mark.parametrize("preset", ["dac", "encodec"])
def test_published_presets_say_where_they_depart_from_their_model(preset):
    text = (PRESET_DIR / f"{preset}.yaml").read_text()
    header = text[: text.index("\nname:")]
    assert all(line.startswith("#") for line in header.splitlines())
    assert "departs from" in header and "16 kHz" in header


def test_gan_sum_reduction_adds_every_layer():
    """DAC sums feature matching over sub-discriminators and layers: 'sum' is 'mean' x count."""
    real = [[torch.zeros(1, 2, 3), torch.zeros(1, 2, 3)], [torch.zeros(1, 4)]]
    fake = [[torch.ones(1, 2, 3), 2 * torch.ones(1, 2, 3)], [3 * torch.ones(1, 4)]]
    assert float(feature_matching_loss(real, fake, reduction="sum")) == pytest.approx(6.0)
    assert float(feature_matching_loss(real, fake, reduction="mean")) == pytest.approx(2.0)


def test_preprocessing_removes_dc_and_normalises_the_peak():
    torch.manual_seed(0)
    x = 0.3 * torch.randn(3, 1, 800) + torch.tensor([0.5, -0.2, 0.0]).view(3, 1, 1)
    y = preprocess(x, remove_dc=True, peak=0.8)
    assert torch.allclose(y.mean(dim=-1), torch.zeros(3, 1), atol=1e-6)
    assert torch.allclose(y.abs().amax(dim=-1), torch.full((3, 1), 0.8), atol=1e-6)
    assert preprocess(x, remove_dc=False, peak=0.0) is x
    silence = torch.zeros(1, 1, 100)
    assert torch.equal(preprocess(silence, True, 0.8), silence)  # no division by zero


def _disc_logits(remove_dc: bool, peak: float, x: torch.Tensor) -> list[torch.Tensor]:
    cfg = load_config(
        None,
        [
            "discriminator.kinds=[mpd,mrd]",
            "discriminator.mpd.periods=[2,3]",
            "discriminator.mpd.channels=4",
            "discriminator.mpd.max_channels=16",
            "discriminator.mrd.channels=4",
            f"discriminator.remove_dc={str(remove_dc).lower()}",
            f"discriminator.peak_normalize={peak}",
        ],
    ).discriminator
    torch.manual_seed(1)
    disc = Discriminators(cfg, 16000)
    with torch.no_grad():
        return [o.logits for o in disc(x)]


def test_discriminators_see_real_and_fake_through_the_same_preprocessing():
    """With DAC's preprocessing an offset and a gain change nothing the discriminators see
    (so they cannot tell real from fake by level or DC); without it they do."""
    torch.manual_seed(0)
    x = 0.2 * torch.randn(2, 1, 4000)
    shifted = 2.5 * x + 0.1
    for a, b in zip(_disc_logits(True, 0.8, x), _disc_logits(True, 0.8, shifted)):
        assert torch.allclose(a, b, atol=1e-5)
    plain = zip(_disc_logits(False, 0.0, x), _disc_logits(False, 0.0, shifted))
    assert any(not torch.allclose(a, b, atol=1e-3) for a, b in plain)


@pytest.mark.parametrize(
    "override",
    [
        "discriminator.peak_normalize=1.5",
        "discriminator.peak_normalize=-0.1",
        "discriminator.remove_dc=maybe",
        "loss.gan_reduction=max",
        "data.crops_per_file=two",
        "data.val_hold_out=none",
        "train.dist_timeout_minutes=0",
        "train.dist_timeout_minutes=nan",
    ],
)
def test_range_checks_reject_bad_values_in_one_line(override):
    with pytest.raises(ConfigError) as err:
        load_config("dac", [override])
    message = str(err.value)
    assert "\n" not in message and override.split("=")[0] in message
