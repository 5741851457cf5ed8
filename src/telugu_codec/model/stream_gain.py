"""The loudness gain of a stream, one push at a time (model/loudness.py has the arithmetic).

`StreamNormalizer` applies the encoder side causally to raw samples as they come and hands out
the `block` gain codes as their frames complete; `StreamDenormalizer` rebuilds the gain curve
on the decoder side from the codes received. Both follow one stream.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch
from torch import nn

from ..bitstream import GAIN_STEP_DB, code_from_gain
from ..errors import CodecError
from .loudness import BlockGain, BlockGainState, gain_from_code


class StreamNormalizer:
    """The encoder side of the loudness gain, applied causally to raw samples as they come."""

    def __init__(self, codec: nn.Module, gain: float | None):
        self.kind = codec.normalization
        self.block = codec.block_gain
        self.gain_code = 0
        if self.kind == "clip" and gain is not None:
            self.gain_code = code_from_gain(float(gain))
        self.fixed = gain_from_code(self.gain_code).item() if self.kind == "clip" else 1.0
        if self.kind == "block":
            self.state = BlockGainState.initial(1)
            self.prev = self.state.code.clone()
            self.pos = 0  # samples into the current block
            self.block_index = 0
            self.raw: list[torch.Tensor] = []
            self.pending = {0: int(self.state.code)}  # block index -> code, not yet sent

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) raw samples -> (n,) normalised samples."""
        if self.kind != "block":
            return x * self.fixed if self.fixed != 1.0 else x
        g, n, out = self.block, self.block.block_length, []
        while x.numel():
            m = min(x.numel(), n - self.pos)
            seg, x = x[:m], x[m:]
            curve = g.curve(self.state.code.view(1, 1), self.prev, self.pos, m)
            out.append(seg * curve.view(-1))
            self.raw.append(seg)
            self.pos += m
            if self.pos == n:  # block done: its power sets the next block's gain
                power = g.block_power(torch.cat(self.raw).view(1, -1))
                self.prev = self.state.code.clone()
                self.state = g.advance(self.state, power[:, 0])
                self.block_index += 1
                self.pending[self.block_index] = int(self.state.code)
                self.pos, self.raw = 0, []
        return torch.cat(out) if out else x

    def gains_for(self, first: int, n: int) -> np.ndarray:
        """Gain codes of the blocks starting in frames [first, first + n), removed from pending."""
        if self.kind != "block":
            return np.zeros(0, np.int64)
        b = self.block.block_frames
        idx = range(-(-first // b), -(-(first + n) // b))
        return np.array([self.pending.pop(i) for i in idx], dtype=np.int64)


class StreamDenormalizer:
    """The decoder side: the gain curve for output samples from the gain codes received."""

    def __init__(self, codec: nn.Module, normalization: str, gain: float, block_frames: int):
        self.kind = normalization
        self.fixed = float(gain) if normalization == "clip" else 1.0
        self.max_db = codec.cfg.max_gain_db + GAIN_STEP_DB
        if not (math.isfinite(self.fixed) and self.fixed > 0):
            raise CodecError(f"gain {gain!r} is not a positive finite number")
        if abs(20 * math.log10(self.fixed)) > self.max_db:
            raise CodecError(f"gain {gain:g} is beyond +-{codec.cfg.max_gain_db:g} dB")
        if normalization not in ("clip", "block", "none"):
            raise CodecError(f"unknown normalisation '{normalization}'")
        if normalization == "block":
            cfg = dataclasses.replace(codec.cfg, norm_block_frames=block_frames)
            self.block = BlockGain(cfg, codec.hop_length)
            self.codes: dict[int, int] = {}  # gain block index -> gain code

    def add(self, gains: np.ndarray, first: int, n: int) -> None:
        if self.kind != "block":
            return
        b = self.block.block_frames
        idx = list(range(-(-first // b), -(-(first + n) // b)))
        if len(gains) != len(idx):
            raise CodecError(
                f"frames {first}..{first + n} start {len(idx)} gain blocks, got {len(gains)} gains"
            )
        if len(gains) and np.abs(gains).max() * GAIN_STEP_DB > self.max_db:
            raise CodecError(f"a block gain is beyond +-{self.max_db - GAIN_STEP_DB:g} dB")
        self.codes.update(zip(idx, (int(g) for g in gains)))

    def curve(self, start: int, length: int) -> torch.Tensor | float:
        """Gains for samples [start, start + length) as (length,), or one float."""
        if self.kind != "block":
            return self.fixed
        n = self.block.block_length
        b0, b1 = start // n, -(-(start + length) // n)
        try:
            codes = torch.tensor([[self.codes[b] for b in range(b0, b1)]])
            prev = torch.tensor([self.codes[max(b0 - 1, 0)]])
        except KeyError as e:
            raise CodecError(f"no gain received for gain block {e.args[0]}") from e
        for b in [b for b in self.codes if b < b0 - 1]:
            del self.codes[b]
        return self.block.curve(codes, prev, start - b0 * n, length).view(-1)
