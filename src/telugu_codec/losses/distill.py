"""Distillation losses on codebook 1 (`loss.distill`, issue 25): a linear projection of the
first codebook's quantised output against a teacher, frame by frame.

- `cosine_distill_loss`: 1 - cosine similarity to teacher features, averaged over frames (Mimi,
  Defossez et al. 2024 sec. 3.2, distilling WavLM);
- `phone_distill_loss`: cross-entropy against one phone id per frame (our built-in teacher).

Frames without a teacher value (`valid` False, or phone id -1) do not count; with none at all
the loss is an exact 0 that still reaches the graph (so every process runs the same backward).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -1  # phone id of a frame without a label


def cosine_distill_loss(
    pred: torch.Tensor, target: torch.Tensor, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over valid frames of 1 - cos(pred, target).

    Args:
        pred: (B, C, F) projected student features.
        target: (B, F, C) teacher features at the codec's frame rate.
        valid: (B, F) bool, frames that have a teacher value (default all).
    """
    cos = F.cosine_similarity(pred.float(), target.float().transpose(1, 2), dim=1, eps=1e-8)
    if valid is None:
        return (1.0 - cos).mean()
    w = valid.to(cos.dtype)
    return ((1.0 - cos) * w).sum() / w.sum().clamp_min(1.0)


def phone_distill_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of per-frame phone logits, frames labelled `IGNORE` left out.

    Args:
        logits: (B, C, F) projected student features, one logit per phone class.
        target: (B, F) int64 phone ids in [0, C), or `IGNORE`.
    """
    if not bool((target != IGNORE).any()):
        return logits.float().sum() * 0.0
    return F.cross_entropy(logits.float(), target, ignore_index=IGNORE)
