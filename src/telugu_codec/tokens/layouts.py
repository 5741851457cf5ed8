"""LM layouts of a (S, F) code array, each with its exact inverse.

A tokenized utterance is S streams (the n_q codebooks, then the pitch channel for a model that
has one) of F frames. A language model sees them in one of three layouts:

- ``flatten`` (frame-major): ``[s0 f0, s1 f0, ..., s{S-1} f0, s0 f1, ...]``, shape (S * F,);
  one token per step, S steps per frame (SPEAR-TTS, VALL-E's AR stage over all levels).
- ``delay`` (MusicGen, Copet et al. 2023, sec. 2.2): stream k shifted right by k steps, the
  gaps filled with `pad`, shape (S, F + S - 1); one step predicts all S streams, stream k of
  frame t at step t + k, so coarse codes come before the fine ones that depend on them.
- ``parallel``: all streams of a frame at one step, time first, shape (F, S) (moshi's depth
  transformer input, or S summed embeddings).

Every function takes raw codes (no vocab offsets; `vocab.VocabSpec` adds those) and returns a
new array; ``inverse(apply(x)) == x`` exactly for every layout (tests/test_tokens_layouts.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import CodecError


def _check_2d(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] < 1:
        raise CodecError(f"expected codes shaped (streams, frames), got {codes.shape}")
    return codes


# ------------------------------------------------------------------------------ flatten
def flatten(codes: np.ndarray) -> np.ndarray:
    """(S, F) -> (S * F,) frame-major: all streams of frame 0, then of frame 1, ..."""
    return np.ascontiguousarray(_check_2d(codes).T).reshape(-1)


def unflatten(flat: np.ndarray, streams: int) -> np.ndarray:
    """(S * F,) frame-major -> (S, F). A length that is not a whole number of frames is an
    error here; `sanitize` drops or refuses a partial last frame first."""
    flat = np.asarray(flat).reshape(-1)
    if streams < 1 or flat.size % streams:
        raise CodecError(
            f"{flat.size} tokens are not a whole number of frames of {streams} streams "
            "(use sanitize to drop the partial frame)"
        )
    return np.ascontiguousarray(flat.reshape(-1, streams).T)


# ------------------------------------------------------------------------------ delay
def delay(codes: np.ndarray, pad: int) -> np.ndarray:
    """(S, F) -> (S, F + S - 1): ``out[k, t] = codes[k, t - k]`` for k <= t < F + k, else
    `pad` (MusicGen's delay pattern)."""
    codes = _check_2d(codes)
    s, f = codes.shape
    dtype = np.result_type(codes.dtype, np.min_scalar_type(pad))
    out = np.full((s, f + s - 1), pad, dtype=dtype)
    for k in range(s):
        out[k, k : k + f] = codes[k]
    return out


def undelay(delayed: np.ndarray) -> np.ndarray:
    """(S, T) delay layout -> (S, T - S + 1) codes: ``codes[k, t] = delayed[k, t + k]``."""
    delayed = _check_2d(delayed)
    s, t = delayed.shape
    f = t - s + 1
    if f < 0:
        raise CodecError(f"a delay layout of {s} streams needs at least {s - 1} steps, got {t}")
    return np.stack([delayed[k, k : k + f] for k in range(s)])


def delay_pad_mask(streams: int, frames: int) -> np.ndarray:
    """(S, F + S - 1) bool: True where `delay` puts padding (what an LM loss should ignore)."""
    mask = np.ones((streams, frames + streams - 1), dtype=bool)
    for k in range(streams):
        mask[k, k : k + frames] = False
    return mask


# ------------------------------------------------------------------------------ parallel
def parallel(codes: np.ndarray) -> np.ndarray:
    """(S, F) -> (F, S): one step per frame, all streams at once."""
    return np.ascontiguousarray(_check_2d(codes).T)


def unparallel(steps: np.ndarray) -> np.ndarray:
    """(F, S) -> (S, F)."""
    return np.ascontiguousarray(_check_2d(steps).T)


# ------------------------------------------------------------------------------ registry
@dataclass(frozen=True)
class Layout:
    """One layout: `apply(codes, pad)` and `invert(tokens, streams)` (exact inverses)."""

    name: str
    apply: Callable[[np.ndarray, int], np.ndarray]
    invert: Callable[[np.ndarray, int], np.ndarray]


LAYOUTS: dict[str, Layout] = {
    "flatten": Layout("flatten", lambda c, pad: flatten(c), lambda x, s: unflatten(x, s)),
    "delay": Layout("delay", delay, lambda x, s: undelay(np.asarray(x).reshape(s, -1))),
    "parallel": Layout("parallel", lambda c, pad: parallel(c), lambda x, s: unparallel(x)),
}


def get_layout(name: str) -> Layout:
    """The layout called `name`, or CodecError listing the known ones."""
    if name not in LAYOUTS:
        raise CodecError(f"unknown layout '{name}'; choose one of {', '.join(LAYOUTS)}")
    return LAYOUTS[name]
