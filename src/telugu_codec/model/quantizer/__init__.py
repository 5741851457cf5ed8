"""Residual quantizers: one module per kind, chosen by `model.quantizer.kind`.

- `ema.py`: EMA codebooks (SoundStream / EnCodec), k-means++ init, dead-code replacement;
- `factorized.py`: DAC's factorised, L2-normalised codes with codebook + commitment losses;
- `fsq.py`: finite scalar quantization (no codebook);
- `base.py`: the residual loop, quantizer dropout, the output type, fp32 maths, statistics;
- `codebook_upkeep.py`: k-means++ and dead-code replacement shared by the learnt codebooks;
- `split.py`: `split_first` (Mimi): codebook 1 and codebooks 2..n_q as two parallel quantizers.

To add a kind: a module with a `Stage` and a `ResidualQuantizer` subclass, and a line in KINDS.
"""

from __future__ import annotations

from ...config import QuantizerConfig
from ...errors import ConfigError
from .base import QuantizerOutput, ResidualQuantizer, Stage, StageOutput
from .codebook_upkeep import CodebookUpkeep, kmeans, kmeans_plus_plus
from .ema import EMACodebook, ResidualVectorQuantizer
from .factorized import FactorizedCodebook, FactorizedResidualQuantizer
from .fsq import FSQResidualQuantizer, FSQStage, fsq_levels
from .split import SplitQuantizer

KINDS: dict[str, type[ResidualQuantizer]] = {
    "ema": ResidualVectorQuantizer,
    "factorized": FactorizedResidualQuantizer,
    "fsq": FSQResidualQuantizer,
}


def build_quantizer(dim: int, cfg: QuantizerConfig) -> ResidualQuantizer | SplitQuantizer:
    """The residual quantizer `cfg.kind` for latents of dimension `dim` (split in two, codebook
    1 apart, with `cfg.split_first`)."""
    if cfg.kind not in KINDS:
        raise ConfigError(
            f"model.quantizer.kind must be one of {', '.join(KINDS)}, got '{cfg.kind}'"
        )
    if cfg.split_first:
        return SplitQuantizer(dim, cfg, KINDS[cfg.kind])
    return KINDS[cfg.kind](dim, cfg)


__all__ = [
    "KINDS",
    "CodebookUpkeep",
    "EMACodebook",
    "FSQResidualQuantizer",
    "FSQStage",
    "FactorizedCodebook",
    "FactorizedResidualQuantizer",
    "QuantizerOutput",
    "ResidualQuantizer",
    "ResidualVectorQuantizer",
    "SplitQuantizer",
    "Stage",
    "StageOutput",
    "build_quantizer",
    "fsq_levels",
    "kmeans",
    "kmeans_plus_plus",
]
