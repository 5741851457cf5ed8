"""The projection `loss.distill` trains codebook 1 through (issue 25; Mimi sec. 3.2).

A 1x1 convolution from the latent (D) to the teacher's size (`loss.teacher.dim`: feature
dimensions, or phone classes). It lives in the codec only when distillation is on, so its
weights are saved and resumed with the codec's and trained by the generator's optimizer; it is
never used to encode or decode.
"""

from __future__ import annotations

from torch import nn

from ..config import Config


def build_distill_head(config: Config) -> nn.Module | None:
    """Conv1d(latent_dim -> teacher.dim, 1) when `config.loss.distill` > 0, else None."""
    if config.loss.distill <= 0:
        return None
    return nn.Conv1d(config.model.latent_dim, config.loss.teacher.dim, 1)
