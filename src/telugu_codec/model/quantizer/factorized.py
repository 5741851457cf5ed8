"""Factorised residual VQ, as in DAC (Kumar et al. 2023, sec. 3.2).

Each stage projects the residual to a low dimension (`factorized_dim`, 8 by default), finds the
nearest code by cosine similarity (both sides L2-normalised, which DAC found to improve
codebook usage), and projects the chosen (unnormalised) codeword back. The codebook is a
parameter trained by the codebook loss ||e - sg(z)||^2 and the encoder by the commitment loss
||z - sg(e)||^2 (VQ-VAE, van den Oord et al. 2017, eq. 3). Dead codes are re-seeded from a
buffer of recent projected vectors, as for the EMA codebooks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

from ...config import QuantizerConfig
from .base import ResidualQuantizer, Stage, StageOutput, all_reduce_, distinct_fraction
from .codebook_upkeep import CodebookUpkeep


def _masked_mse(a: torch.Tensor, b: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    err = (a - b).pow(2)
    if m is None:
        return err.mean()
    w = m.to(err.dtype)[:, None]
    return (err * w).sum() / (w.sum() * err.shape[1]).clamp_min(1.0)


class FactorizedCodebook(Stage):
    """One DAC stage: (N, D) -> project to d -> cosine lookup in K codes -> project back."""

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        d, k = cfg.factorized_dim, cfg.codebook_size
        self.num_codes = k
        self.proj_in = weight_norm(nn.Linear(dim, d))
        self.proj_out = weight_norm(nn.Linear(d, dim))
        self.codebook = nn.Parameter(torch.randn(k, d))
        self.upkeep = CodebookUpkeep(d, cfg)

    def search(self, z: torch.Tensor) -> torch.Tensor:
        """(N, d) projected vectors -> (N,) nearest codes by cosine similarity (fp32)."""
        sim = F.normalize(z.float(), dim=1) @ F.normalize(self.codebook.float(), dim=1).t()
        return sim.argmax(dim=1)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.search(self.proj_in(x))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.proj_out(F.embedding(codes, self.codebook))

    def quantize(self, x: torch.Tensor, mask: torch.Tensor | None) -> StageOutput:
        z = self.proj_in(x)  # (N, d)
        codes = self.search(z.detach())
        e = F.embedding(codes, self.codebook)
        commit = _masked_mse(z, e.detach(), mask)
        codebook_loss = _masked_mse(e, z.detach(), mask)
        z_q = z + (e - z).detach()  # straight-through: forward e, gradient to z = identity
        loss = self.cfg.commitment_weight * commit + self.cfg.codebook_weight * codebook_loss
        replaced = 0
        if mask is not None:
            with torch.no_grad():
                counts = torch.bincount(codes[mask], minlength=self.num_codes).float()
                all_reduce_(counts)
                self.upkeep.observe(z.detach()[mask], counts)
                if self.upkeep.due():
                    replaced = self.replace_dead()
        return StageOutput(self.proj_out(z_q), codes, loss, replaced)

    @torch.no_grad()
    def replace_dead(self) -> int:
        dead = self.upkeep.dead_mask()
        n = int(dead.sum())
        if n == 0:
            return 0
        new = self.upkeep.draw(n, self.codebook, normalize=True)
        if new is None:
            return 0
        self.codebook[dead] = new.to(self.codebook.dtype)
        self.upkeep.mark_replaced(dead)
        return n

    def dead_codes(self) -> int | None:
        return int(self.upkeep.dead_mask().sum())

    def distinct(self) -> float | None:
        return distinct_fraction(F.normalize(self.codebook.detach().float(), dim=1))


class FactorizedResidualQuantizer(ResidualQuantizer):
    """`n_q` factorised stages (DAC); each stage's output keeps its gradient."""

    straight_through = False

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__(dim, cfg)
        self.stages = nn.ModuleList(FactorizedCodebook(dim, cfg) for _ in range(cfg.n_q))

    def training_state(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, s in enumerate(self.stages):
            out.update(s.upkeep.training_state(f"stage{i}"))
        return out

    def load_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for i, s in enumerate(self.stages):
            s.upkeep.load_training_state(tensors, f"stage{i}")
