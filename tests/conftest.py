"""Shared fixtures: tiny configs and audio the tests make themselves."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from telugu_codec.config import Config, load_config

TINY_OVERRIDES = [
    "model.encoder.channels=4",
    "model.decoder.channels=4",
    "model.latent_dim=16",
    "model.quantizer.codebook_size=64",
    "model.quantizer.n_q=4",
    "model.quantizer.kmeans_iters=2",
]


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    np.random.seed(0)
    yield


@pytest.fixture
def tiny_config() -> Config:
    """A very small codec (a few thousand parameters) for fast tests."""
    return load_config(None, TINY_OVERRIDES)


def speechlike(seconds: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> np.ndarray:
    """A voiced, formant-filtered pulse train with syllable-rate amplitude modulation."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    f0 = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    src = np.sign(np.sin(phase)) * 0.5 + 0.05 * rng.standard_normal(n)
    out = np.zeros(n)
    for fc, bw in ((500, 80), (1500, 120), (2500, 160)):
        r = np.exp(-np.pi * bw / sample_rate)
        a1, a2 = -2 * r * np.cos(2 * np.pi * fc / sample_rate), r * r
        y = np.zeros(n)
        for i in range(2, n):
            y[i] = src[i] - a1 * y[i - 1] - a2 * y[i - 2]
        out += y / np.abs(y).max()
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t)) ** 2
    out = out * env
    return (0.3 * out / np.abs(out).max()).astype(np.float32)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Eight 1 s speech-like files (the trainer tests' corpus; a module may define its own)."""
    import soundfile as sf

    d = tmp_path_factory.mktemp("speech")
    for i in range(8):
        sf.write(d / f"utt{i}.wav", speechlike(1.0, seed=i), 16000)
    return d


def initialised_codec(*overrides: str):
    """A tiny codec (`TINY_OVERRIDES` + `overrides`) whose codebooks k-means has initialised
    on one training-mode pass, in eval mode."""
    from telugu_codec.model.codec import build_codec

    codec = build_codec(load_config(None, TINY_OVERRIDES + list(overrides)))
    codec.train()
    codec(torch.randn(2, 1, 3200) * 0.1)  # k-means initialises the codebooks
    return codec.eval()


@pytest.fixture
def one_thread():
    """torch on one intra-op thread for the test: many tiny products and convolutions, where a
    second thread on a shared 2-core machine only waits."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
