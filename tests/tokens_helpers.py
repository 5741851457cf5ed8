"""A tiny codec file and a small corpus of awkward files for the tokens tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from telugu_codec.config import load_config
from telugu_codec.model.codec import Codec, build_codec

from .conftest import TINY_OVERRIDES

# relative path -> (samples, rate, channels): lengths that are not whole frames, several rates
GOOD = {
    "a/s0.wav": (1000, 16000, 1),
    "a/s1.wav": (321, 16000, 1),  # one sample past a frame
    "a/s2.wav": (16000 + 319, 16000, 1),
    "b/t0.wav": (22050, 22050, 2),  # stereo, resampled
    "b/t1.flac": (7000, 8000, 1),
    "b/t2.wav": (4800, 48000, 1),
    "c/u0.wav": (12345, 16000, 1),
}
BAD = ("bad/corrupt.wav", "bad/empty.wav", "bad/nan.wav")


def make_corpus(root: Path) -> Path:
    """GOOD files plus a corrupt, an empty and a NaN file (listed last by path order)."""
    rng = np.random.default_rng(0)
    for rel, (n, rate, ch) in GOOD.items():
        x = (0.1 * rng.standard_normal((n, ch))).astype(np.float32)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, x if ch > 1 else x[:, 0], rate)
    (root / "bad").mkdir(parents=True, exist_ok=True)
    (root / "bad/corrupt.wav").write_bytes(b"RIFF" + b"\0" * 60)
    (root / "bad/empty.wav").write_bytes(b"")
    x = np.zeros(800, np.float32)
    x[100] = np.nan
    sf.write(root / "bad/nan.wav", x, 16000, subtype="FLOAT")
    return root


def tiny_codec_file(path: Path, seed: int = 0, pitch: bool = False) -> Path:
    """A randomly initialised tiny codec (with the pitch channel: tiny-sf) saved to `path`."""
    cfg = load_config("tiny-sf" if pitch else None, TINY_OVERRIDES + [f"train.seed={seed}"])
    build_codec(cfg).save(path)
    return path


def load(path: Path) -> Codec:
    return Codec.load(path).remove_weight_norm()
