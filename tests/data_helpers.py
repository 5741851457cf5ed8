"""Audio files and settings that the data tests (tests/test_data_*.py) make themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from telugu_codec.config import DataConfig

SR = 16000
ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "data" / "demo-te"
HAS_MP3 = "MP3" in sf.available_formats()


def quiet(_: str) -> None:
    pass


def noise(seconds: float, sr: int = SR, seed: int = 0, level_db: float = -20.0) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal(int(seconds * sr))
    return (x * 10 ** (level_db / 20)).astype(np.float32)


def tone(seconds: float, freq: float, sr: int = SR, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write(path: Path, x: np.ndarray, sr: int = SR, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr, subtype=subtype)
    return path


def make_folder(root: Path, n: int, seconds: float = 2.0) -> list[Path]:
    return [write(root / f"f{i:02d}.wav", noise(seconds, seed=i)) for i in range(n)]


def small_cfg(**kw) -> DataConfig:
    base = dict(batch_size=4, val_fraction=0.2, segment_seconds=0.5)
    base.update(kw)
    return DataConfig(**base)


def peak_freq(x: np.ndarray, sr: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * sr / len(x))
