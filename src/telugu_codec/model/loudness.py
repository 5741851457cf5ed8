"""Loudness normalisation around the codec: whole-clip (`clip`) or causal per-block (`block`).

`clip` scales a clip to `target_rms` with one gain computed from the whole clip (audio.normalize):
every output sample depends on the future, so it cannot stream.

`block` is the streaming kind. Time is cut into blocks of `norm_block_frames` codec frames
(L samples). The gain of block b comes only from the samples before it: a running level (an
exponential moving average, time constant `norm_time_constant`, of the mean power of each past
block louder than `norm_gate_db`; quieter blocks leave it unchanged, so pauses do not pump the
gain up) is turned into a gain towards `target_rms`, clamped to +-`max_gain_db` and rounded to
`GAIN_STEP_DB`. That gain code is what the bitstream carries (one byte per block) and what both
sides use. Within block b the linear gain ramps from g(b-1) to g(b) so that it never jumps:

    g(t) = g[b-1] + (g[b] - g[b-1]) * (t - b L + 1) / L,     b L <= t < (b + 1) L

The encoder sees x(t) g(t); the decoder output is divided by the same g(t). Nothing waits for
future samples: the algorithmic latency of the codec is unchanged. Before the first block
louder than the gate the gain is 0 dB.

Streaming (model/streaming.py) and the offline path call the same functions on the same
per-block arrays, so their gain codes are identical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..bitstream import GAIN_STEP_DB
from ..config import ModelConfig
from ..errors import ConfigError

GAIN_CODE_MIN, GAIN_CODE_MAX = -128, 127  # int8 codes of GAIN_STEP_DB: -64 .. +63.5 dB
NORMALIZATIONS = ("clip", "block", "none")


def normalization_kind(cfg: ModelConfig) -> str:
    """`cfg.normalization`, or "none" when `cfg.normalize` is off. Raises ConfigError."""
    if cfg.normalization not in NORMALIZATIONS:
        raise ConfigError(
            f"model.normalization must be one of {', '.join(NORMALIZATIONS)}, "
            f"got '{cfg.normalization}'"
        )
    if cfg.normalization == "block":
        if not 1 <= cfg.norm_block_frames <= 255:
            raise ConfigError(
                f"model.norm_block_frames must be 1..255, got {cfg.norm_block_frames}"
            )
        if cfg.norm_time_constant <= 0:
            raise ConfigError("model.norm_time_constant must be positive")
    return cfg.normalization if cfg.normalize else "none"


def gain_from_code(code: torch.Tensor | int) -> torch.Tensor:
    """Gain code(s) -> linear gain, float32: 10 ** (code * GAIN_STEP_DB / 20)."""
    c = torch.as_tensor(code, dtype=torch.float64)
    return torch.pow(10.0, c * (GAIN_STEP_DB / 20.0)).float()


@dataclass
class BlockGainState:
    """Running level of a batch of streams.

    Attributes:
        level: (B,) float64 mean power estimate (undefined where `active` is False).
        active: (B,) bool, True once a block louder than the gate has been seen.
        code: (B,) int64 gain code of the current (last started) block.
    """

    level: torch.Tensor
    active: torch.Tensor
    code: torch.Tensor

    @classmethod
    def initial(cls, batch: int = 1, device: torch.device | str = "cpu") -> BlockGainState:
        return cls(
            torch.zeros(batch, dtype=torch.float64, device=device),
            torch.zeros(batch, dtype=torch.bool, device=device),
            torch.zeros(batch, dtype=torch.int64, device=device),
        )


class BlockGain:
    """The `block` normaliser's arithmetic for one model config (stateless; state is passed).

    Args:
        cfg: the model config (target_rms, max_gain_db, norm_* fields).
        hop_length: samples per codec frame.
    """

    def __init__(self, cfg: ModelConfig, hop_length: int):
        self.block_frames = cfg.norm_block_frames
        self.block_length = cfg.norm_block_frames * hop_length  # L samples
        seconds = self.block_length / cfg.sample_rate
        self.decay = math.exp(-seconds / cfg.norm_time_constant)
        self.gate_power = 10.0 ** (cfg.norm_gate_db / 10.0)
        self.target_db = 20.0 * math.log10(cfg.target_rms)
        self.max_code = min(GAIN_CODE_MAX, int(cfg.max_gain_db / GAIN_STEP_DB))
        self._ramp: torch.Tensor | None = None

    @property
    def ramp(self) -> torch.Tensor:
        """(L,) float32: (i + 1) / L, the share of the new gain at sample i of a block."""
        if self._ramp is None:
            n = self.block_length
            self._ramp = torch.arange(1, n + 1, dtype=torch.float64).div(n).float()
        return self._ramp

    def block_power(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n * L) samples of n whole blocks -> (B, n) float64 mean power per block."""
        b = x.shape[0]
        return x.detach().double().reshape(b, -1, self.block_length).pow(2).mean(dim=-1)

    def advance(self, state: BlockGainState, power: torch.Tensor) -> BlockGainState:
        """Fold one finished block's power (B,) into the level; return the next block's state."""
        loud = power > self.gate_power
        ema = self.decay * state.level + (1.0 - self.decay) * power
        level = torch.where(loud, torch.where(state.active, ema, power), state.level)
        active = state.active | loud
        level_db = 10.0 * torch.log10(level.clamp_min(1e-30))
        steps = torch.round((self.target_db - level_db) / GAIN_STEP_DB)
        code = torch.where(active, steps.clamp(-self.max_code, self.max_code), 0.0)
        return BlockGainState(level, active, code.long())

    def codes(
        self, x: torch.Tensor, state: BlockGainState | None = None
    ) -> tuple[torch.Tensor, BlockGainState]:
        """Gain codes of every block that starts in `x`.

        Args:
            x: (B, T) raw samples from the start of a block (T any length).
            state: the state at the start of `x` (default: a fresh stream).

        Returns:
            codes (B, ceil(T / L)) int64 and the state of the last block started.
        """
        if state is None:
            state = BlockGainState.initial(x.shape[0], x.device)
        n_blocks = -(-x.shape[-1] // self.block_length)
        full = x.shape[-1] // self.block_length
        power = self.block_power(x[:, : full * self.block_length])  # (B, full)
        codes = []
        for i in range(n_blocks):
            if i > 0:
                state = self.advance(state, power[:, i - 1])
            codes.append(state.code)
        return torch.stack(codes, dim=1), state

    def curve(
        self, codes: torch.Tensor, prev: torch.Tensor, start: int, length: int
    ) -> torch.Tensor:
        """Per-sample gain over samples [start, start + length) of a run of blocks.

        Args:
            codes: (B, n) gain codes of the blocks covering the span, the first being the block
                that holds sample `start` (block index floor(start / L) of the stream when
                `start` counts from a block boundary).
            prev: (B,) gain code of the block before the first one (its own code at a stream's
                first block).
            start: offset of the span's first sample from the start of `codes[:, 0]`'s block.
            length: number of samples.

        Returns:
            (B, 1, length) float32 gains.
        """
        b = codes.shape[0]
        g = gain_from_code(torch.cat([prev.view(b, 1), codes], dim=1)).to(codes.device)
        g0, g1 = g[:, :-1, None], g[:, 1:, None]  # (B, n, 1)
        full = g0 + (g1 - g0) * self.ramp.to(codes.device)  # (B, n, L)
        return full.reshape(b, 1, -1)[..., start : start + length]

    def codes_and_curve(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gain codes and per-sample gains of whole signals from their start.

        Args:
            x: (B, 1, T) raw audio.

        Returns:
            (codes (B, ceil(T / L)) int64, curve (B, 1, T) float32).
        """
        codes, _ = self.codes(x[:, 0])
        return codes, self.curve(codes, codes[:, 0], 0, x.shape[-1])
