"""Discriminators: the specified MSD architecture, output shapes for any length, invariants."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from telugu_codec.config import (
    DiscriminatorConfig,
    MPDConfig,
    MRDConfig,
    MSDConfig,
    STFTDConfig,
    load_config,
)
from telugu_codec.errors import ConfigError
from telugu_codec.losses import discriminator_loss
from telugu_codec.model.discriminators import (
    Discriminators,
    MultiScaleDiscriminator,
    PeriodDiscriminator,
    ScaleDiscriminator,
    band_bins,
)

# The user's specification, written out here independently of the module's table:
# (in, out, kernel, stride, groups), "same" padding k // 2.
SPEC = [
    (1, 16, 15, 1, 1),
    (16, 64, 41, 4, 4),
    (64, 256, 41, 4, 16),
    (256, 1024, 41, 4, 64),
    (1024, 1024, 41, 4, 256),
    (1024, 1024, 5, 1, 1),
    (1024, 1, 3, 1, 1),
]
SEED_PARAMS_PER_SCALE = 5_637_953


def _convs(module: nn.Module) -> list[nn.Conv1d]:
    return [m for m in module.modules() if isinstance(m, nn.Conv1d)]


def test_msd_scale_matches_the_specified_layers_and_parameter_count():
    plain = ScaleDiscriminator(width=1.0, norm="none")
    convs = _convs(plain)
    got = [(c.in_channels, c.out_channels, c.kernel_size[0], c.stride[0], c.groups) for c in convs]
    assert got == SPEC
    assert [c.padding[0] for c in convs] == [k // 2 for _, _, k, _, _ in SPEC]
    # weights + biases, computed from the table and counted on the module
    from_table = sum(o * (i // g) * k + o for i, o, k, _, g in SPEC)
    assert from_table == SEED_PARAMS_PER_SCALE
    assert sum(p.numel() for p in plain.parameters()) == SEED_PARAMS_PER_SCALE


def test_weight_norm_adds_only_one_gain_per_output_channel():
    wn = ScaleDiscriminator(width=1.0, norm="weight")
    named = dict(wn.named_parameters())
    gains = {n: p for n, p in named.items() if n.endswith("original0")}
    directions = sum(p.numel() for n, p in named.items() if not n.endswith("original0"))
    assert directions == SEED_PARAMS_PER_SCALE  # weight_v + bias
    assert sum(p.numel() for p in gains.values()) == sum(o for _, o, _, _, _ in SPEC)


def test_seed_preset_builds_three_scales_and_spectral_norm_only_on_the_first():
    cfg = load_config("seed")
    msd = MultiScaleDiscriminator(MSDConfig(scales=3, width=0.25, spectral_norm_first=True))
    assert cfg.discriminator.kinds == ("msd",)
    assert msd.names == ["msd_1x", "msd_2x", "msd_4x"]
    for i, disc in enumerate(msd.discriminators):
        names = [n for n, _ in disc.named_parameters()]
        spectral = any(n.endswith("weight.original") for n in names)
        assert spectral == (i == 0)
    assert isinstance(msd.pool, nn.AvgPool1d)
    assert (msd.pool.kernel_size, msd.pool.stride, msd.pool.padding) == ((4,), (2,), (2,))


@pytest.mark.parametrize("width", [0.125, 0.25, 0.5])
def test_msd_width_scales_channels_and_keeps_groups_valid(width):
    convs = _convs(ScaleDiscriminator(width=width, norm="none"))
    assert convs[0].in_channels == 1 and convs[-1].out_channels == 1
    for conv, (_, o, _, _, _) in zip(convs[:-1], SPEC[:-1]):
        assert conv.out_channels == round(o * width)
        assert conv.in_channels % conv.groups == 0 and conv.out_channels % conv.groups == 0


# ------------------------------------------------------------------------------------------
# shapes for any length
# ------------------------------------------------------------------------------------------

SMALL = DiscriminatorConfig(
    kinds=("msd", "mpd", "stftd", "mrd"),
    msd=MSDConfig(scales=3, width=0.0625),
    mpd=MPDConfig(periods=(2, 3, 5), channels=2, max_channels=8),
    stftd=STFTDConfig(n_ffts=(256, 128), channels=4),
    mrd=MRDConfig(n_ffts=(256, 128), channels=4),
)


def _conv_len(n: int, stride: int) -> int:
    """Length after a 'same'-padded conv with odd kernel and this stride."""
    return (n - 1) // stride + 1


def _expected_logit_shapes(cfg: DiscriminatorConfig, t: int) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    for kind in cfg.kinds:
        if kind == "msd":
            n = t
            for i in range(cfg.msd.scales):
                if i:
                    n = n // 2 + 1  # AvgPool1d(4, 2, padding=2)
                m = n
                for _ in range(4):
                    m = _conv_len(m, 4)
                shapes.append((1, m))
        elif kind == "mpd":
            for p in cfg.mpd.periods:
                h = -(-t // p)
                for _ in range(4):
                    h = _conv_len(h, cfg.mpd.stride)
                shapes.append((1, h, p))
        elif kind == "stftd":
            for n_fft in cfg.stftd.n_ffts:
                frames = 1 + t // int(n_fft * cfg.stftd.hop_factor)
                f = n_fft // 2 + 1
                for _ in cfg.stftd.dilations:
                    f = _conv_len(f, 2)
                shapes.append((1, frames, f))
        elif kind == "mrd":
            for n_fft in cfg.mrd.n_ffts:
                frames = 1 + t // int(n_fft * cfg.mrd.hop_factor)
                width = 0
                for a, b in band_bins(n_fft, cfg.mrd.bands):
                    w = b - a
                    for _ in range(3):
                        w = _conv_len(w, 2)
                    width += w
                shapes.append((1, frames, width))
    return shapes


def _expected_feature_counts(cfg: DiscriminatorConfig) -> list[int]:
    counts: list[int] = []
    for kind in cfg.kinds:
        if kind == "msd":
            counts += [len(SPEC) - 1] * cfg.msd.scales
        elif kind == "mpd":
            counts += [5] * len(cfg.mpd.periods)
        elif kind == "stftd":
            counts += [2 + len(cfg.stftd.dilations)] * len(cfg.stftd.n_ffts)
        elif kind == "mrd":
            counts += [5 * len(cfg.mrd.bands)] * len(cfg.mrd.n_ffts)
    return counts


@pytest.fixture(scope="module")
def small_discriminators() -> Discriminators:
    torch.manual_seed(0)
    return Discriminators(SMALL, sample_rate=16000)


def test_names_follow_the_kinds(small_discriminators):
    assert small_discriminators.names == [
        "msd_1x",
        "msd_2x",
        "msd_4x",
        "mpd_p2",
        "mpd_p3",
        "mpd_p5",
        "stftd_n256",
        "stftd_n128",
        "mrd_n256",
        "mrd_n128",
    ]


@pytest.mark.parametrize("length", [1, 63, 1001, 4097])
def test_every_kind_gives_the_expected_shapes_for_odd_lengths(small_discriminators, length):
    batch = 2
    wav = 0.1 * torch.randn(batch, 1, length)
    with torch.no_grad():
        outs = small_discriminators(wav)
    assert len(outs) == len(small_discriminators.names)
    expected = _expected_logit_shapes(SMALL, length)
    counts = _expected_feature_counts(SMALL)
    for name, out, shape, count in zip(small_discriminators.names, outs, expected, counts):
        assert tuple(out.logits.shape) == (batch, *shape), name
        assert len(out.features) == count, name
        assert all(f.shape[0] == batch and torch.isfinite(f).all() for f in out.features), name
        assert torch.isfinite(out.logits).all(), name


def test_gradients_reach_the_input_through_every_discriminator(small_discriminators):
    wav = (0.1 * torch.randn(1, 1, 1001)).requires_grad_(True)
    for out in small_discriminators(wav):
        (grad,) = torch.autograd.grad(out.logits.sum(), wav, retain_graph=True)
        assert grad.abs().sum() > 0


def test_period_discriminator_only_mixes_samples_one_period_apart():
    torch.manual_seed(0)
    period = 3
    disc = PeriodDiscriminator(period, MPDConfig(channels=2, max_channels=8))
    wav = torch.randn(1, 1, 300)  # a multiple of the period: no padding
    j = 151
    bumped = wav.clone()
    bumped[..., j] += 1.0
    with torch.no_grad():
        delta = (disc(bumped).logits - disc(wav).logits).abs()  # (1, 1, H, period)
    changed = delta.sum(dim=(0, 1, 2)) > 0
    assert changed.tolist() == [c == j % period for c in range(period)]


def test_bad_kinds_and_bands_are_config_errors():
    with pytest.raises(ConfigError, match="unknown discriminator kind"):
        Discriminators(DiscriminatorConfig(kinds=("msd", "wavenet")), 16000)
    with pytest.raises(ConfigError, match="no bins"):
        band_bins(16, ((0.0, 0.01), (0.01, 1.0)))
    empty = Discriminators(DiscriminatorConfig(kinds=()), 16000)
    assert empty.names == [] and empty(torch.zeros(1, 1, 100)) == []


def test_small_msd_learns_to_tell_sines_from_noise():
    """A few Adam steps on toy data separate real (sines) from fake (noise) scores."""
    torch.manual_seed(0)
    msd = MultiScaleDiscriminator(MSDConfig(scales=3, width=0.25))
    opt = torch.optim.Adam(msd.parameters(), lr=1e-3, betas=(0.5, 0.9))
    t = torch.arange(2048) / 16000

    def batch() -> tuple[torch.Tensor, torch.Tensor]:
        f0 = 100 + 300 * torch.rand(8, 1, 1)
        real = 0.5 * torch.sin(2 * torch.pi * f0 * t + 6.28 * torch.rand(8, 1, 1))
        fake = 0.35 * torch.randn(8, 1, 2048)  # same RMS as the sines
        return real, fake

    def margin() -> float:
        real, fake = batch()
        with torch.no_grad():
            r = torch.stack([o.logits.mean() for o in msd(real)]).mean()
            f = torch.stack([o.logits.mean() for o in msd(fake)]).mean()
        return float(r - f)

    before = margin()
    losses = []
    for _ in range(15):
        real, fake = batch()
        loss = discriminator_loss(
            [o.logits for o in msd(real)], [o.logits for o in msd(fake)], "hinge"
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    after = margin()
    assert after > 1.0 and after > before + 0.5
    assert sum(losses[-3:]) / 3 < 0.5 * sum(losses[:3]) / 3
