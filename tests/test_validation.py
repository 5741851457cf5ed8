"""train/validation.py: the health metrics of one validation and its log line."""

from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from telugu_codec.config import load_config
from telugu_codec.model.codec import build_codec
from telugu_codec.model.discriminators import Discriminators
from telugu_codec.train.validation import health_line, validate

from .conftest import TINY_OVERRIDES, speechlike


def _run(disc: bool, n_items: int = 3):
    cfg = load_config(None, TINY_OVERRIDES + ["data.val_max_files=2", "train.audio_samples=1"])
    codec = build_codec(cfg)
    d = Discriminators(cfg.discriminator, cfg.model.sample_rate) if disc else None
    items = [torch.from_numpy(speechlike(0.3, seed=i)).unsqueeze(0) for i in range(n_items)]
    return cfg, codec, validate(codec, d, items, cfg, torch.device("cpu"), nullcontext)


def test_validation_measures_every_health_metric():
    cfg, codec, result = _run(disc=True)
    m = result.metrics
    for key in ("snr", "sisdr", "amplitude_ratio", "mel_distance", "d_acc_real", "d_acc_fake"):
        assert math.isfinite(m[f"val/{key}"]), key
    k = codec.codebook_size
    for q in range(codec.max_n_q):
        assert 1.0 <= m[f"val/perplexity/q{q}"] <= k
        assert 0.0 < m[f"val/usage/q{q}"] <= 1.0
        assert 0 <= m[f"val/dead_codes/q{q}"] <= k
    assert "val/pesq" not in m  # train.val_pesq is off
    assert len(result.samples) == 1  # train.audio_samples
    xs, ys = result.samples[0]
    assert xs.shape == ys.shape and xs.dim() == 1
    assert not codec.training  # left in eval mode


def test_validation_without_discriminators_has_no_accuracy():
    _, _, result = _run(disc=False, n_items=1)
    assert not any(k.startswith("val/d_acc") for k in result.metrics)


def test_health_line():
    val = {
        "val/snr": 3.14159,
        "val/amplitude_ratio": 0.97,
        "val/mel_distance": 0.5,
        "val/usage/q0": 0.5,
    }
    assert health_line(400, val, "healthy", None, "INR") == (
        "step 400: SNR 3.14 dB, amplitude 0.97, mel distance 0.500, codebooks: usage >= 50% "
        "(q0) | healthy"
    )
    line = health_line(400, dict(val, **{"val/pesq": 2.5}), "warning", 12.345, "EUR")
    assert ", PESQ 2.50," in line and line.endswith(", cost 12.3 EUR | warning")


def test_health_line_names_the_worst_codebook_and_the_churn():
    val = {
        "val/snr": 3.0,
        "val/amplitude_ratio": 1.0,
        "val/mel_distance": 0.5,
        "val/usage/q0": 0.9,
        "val/usage/q1": 0.2,
        "val/usage/q2": 0.7,
        "val/perplexity/q0": 600.0,
        "val/perplexity/q1": 90.0,
        "val/perplexity/q2": 40.0,
        "val/replaced_per_step/q0": 0.001,
        "val/replaced_per_step/q2": 0.25,
    }
    line = health_line(10, val, "healthy", None, "INR")
    assert "usage >= 20% (q1)" in line
    assert "perplexity >= 40 (q2)" in line
    assert "re-seeded <= 25.0%/step" in line


def test_quantizer_stats_count_replacements_after_the_warm_up():
    from types import SimpleNamespace

    import torch

    from telugu_codec.train.validation import QuantizerStats

    stats = QuantizerStats([100, 100])
    warm = SimpleNamespace(replaced=torch.tensor([0, 0]), warming_up=True)
    busy = SimpleNamespace(replaced=torch.tensor([10, 2]), warming_up=False)
    stats.add([warm])
    stats.add([busy])
    stats.add([busy, busy])  # two micro-batches in one step
    win = stats.window()
    assert win["quantizer/replaced/q0"] == (0 + 10 + 20) / 3
    since = stats.since_validation()  # the warm-up step does not count
    assert since["val/replaced_per_step/q0"] == (10 + 20) / 2 / 100
    assert since["val/replaced_per_step/q1"] == (2 + 4) / 2 / 100
    assert stats.since_validation() == {}
