"""Residual VQ with EMA codebooks (SoundStream sec. 3.2, EnCodec sec. 3.2; VQ-VAE-2 updates).

The codebooks are buffers updated by exponential moving averages, not parameters: they receive
no gradient and the optimizer never sees them. Under DDP the EMA statistics are summed over
processes so every rank keeps identical codebooks.

Initialisation: the first training steps pass the latents through unquantized while stage 0
gathers `init_vectors x K` of them; then every stage is initialised at once by k-means++ on
that buffer, stage i on the residuals left by stages 0..i-1 (one ~200-vector batch for 1024
codes gave ~200 distinct centroids; k-means++ on a few x K vectors gives K distinct ones).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ...config import QuantizerConfig
from .base import ResidualQuantizer, Stage, StageOutput, all_reduce_, broadcast_, distinct_fraction
from .codebook_upkeep import CodebookUpkeep, kmeans, squared_distances


class EMACodebook(Stage):
    """One codebook of K vectors of dimension D, trained by exponential moving averages."""

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.codebook_size
        self.num_codes = k
        self.register_buffer("inited", torch.tensor(not cfg.kmeans_init))
        # random until k-means replaces it (an untrained checkpoint still gives distinct codes)
        self.register_buffer("embed", torch.randn(k, dim))
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("embed_avg", self.embed.clone())
        self.upkeep = CodebookUpkeep(dim, cfg)

    # ------------------------------------------------------------------ search
    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest codeword for each row of x (N, D) -> (N,) int64, in fp32."""
        return squared_distances(x, self.embed).argmin(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (...,) -> codewords (..., D)."""
        return F.embedding(codes, self.embed)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.assign(x)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        return self.lookup(codes)

    # ------------------------------------------------------------------ training
    def quantize(self, x: torch.Tensor, mask: torch.Tensor | None) -> StageOutput:
        codes = self.assign(x.detach())
        q = self.lookup(codes)
        if mask is None:
            return StageOutput(q, codes, (x - q.detach()).pow(2).mean())
        m = mask.to(x.dtype)[:, None]
        commit = ((x - q.detach()).pow(2) * m).sum() / (m.sum() * x.shape[1]).clamp_min(1.0)
        rows, row_codes = x.detach()[mask], codes[mask]
        counts = self.ema_update(rows, row_codes)  # every process calls it (collectives)
        self.upkeep.observe(rows, counts)
        replaced = self.replace_dead() if self.upkeep.due() else 0
        return StageOutput(q, codes, commit * self.cfg.commitment_weight, replaced)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Move codewords toward the mean of the vectors assigned to them.

        Args:
            x: (N, D) the vectors (fp32); codes: (N,) their assignments.

        Returns:
            (K,) the step's per-code counts summed over processes.
        """
        k = self.cfg.codebook_size
        decay, eps = self.cfg.decay, self.cfg.epsilon
        counts = torch.bincount(codes, minlength=k).to(x.dtype)
        sums = torch.zeros(k, x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, codes, x)
        all_reduce_(counts)
        all_reduce_(sums)
        self.cluster_size.mul_(decay).add_(counts, alpha=1 - decay)
        self.embed_avg.mul_(decay).add_(sums, alpha=1 - decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (n + k * eps) * n  # Laplace smoothing
        self.embed.copy_(self.embed_avg / smoothed[:, None])
        return counts

    @torch.no_grad()
    def replace_dead(self) -> int:
        """Re-seed dead codes from the buffer of recent residuals; returns how many."""
        dead = self.upkeep.dead_mask()
        n = int(dead.sum())
        if n == 0:
            return 0
        new = self.upkeep.draw(n, self.embed)
        if new is None:
            return 0
        size = self.cluster_size.sum() / self.cfg.codebook_size  # expected usage of one code
        self.embed[dead] = new
        self.cluster_size[dead] = size
        self.embed_avg[dead] = new * size
        self.upkeep.mark_replaced(dead)
        return n

    @torch.no_grad()
    def init_from(self, x: torch.Tensor, rows_per_step: float) -> torch.Tensor:
        """k-means++ initialisation on (N, D) vectors (rank 0's result under DDP).

        `rows_per_step` (all processes) scales the cluster sizes to the EMA's per-step counts.
        Returns the residual x - q for the next stage.
        """
        k = self.cfg.codebook_size
        centroids, counts = kmeans(x, k, self.cfg.kmeans_iters)
        broadcast_(centroids)
        broadcast_(counts)
        size = counts.clamp_min(1.0) * (rows_per_step / max(1, x.shape[0]))
        self.embed.copy_(centroids)
        self.cluster_size.copy_(size)
        self.embed_avg.copy_(centroids * size[:, None])
        self.inited.fill_(True)
        self.upkeep.reset_usage()
        return x - self.lookup(self.assign(x))

    # ------------------------------------------------------------------ health
    def dead_codes(self) -> int | None:
        return int(self.upkeep.dead_mask().sum())

    def distinct(self) -> float | None:
        return distinct_fraction(self.embed)


class ResidualVectorQuantizer(ResidualQuantizer):
    """`n_q` EMA codebooks applied in turn to the residual of the previous ones."""

    straight_through = True

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__(dim, cfg)
        self.stages = torch.nn.ModuleList(EMACodebook(dim, cfg) for _ in range(cfg.n_q))

    @property
    def codebooks(self) -> torch.nn.ModuleList:
        return self.stages

    @torch.no_grad()
    def warming_up(self, flat: torch.Tensor) -> bool:
        """Gather latents until k-means++ can initialise every stage; True while gathering."""
        if all(bool(s.inited) for s in self.stages):
            return False
        first = self.stages[0].upkeep
        first.add(flat)
        need = math.ceil(self.cfg.init_vectors * self.cfg.codebook_size)
        ready = broadcast_(torch.tensor([float(first.fill >= need)], device=flat.device))
        if float(ready) == 0.0:
            return True
        rows = all_reduce_(torch.tensor([float(flat.shape[0])], device=flat.device))
        residual = first.contents().clone()
        for i, stage in enumerate(self.stages):
            if i > 0:
                stage.upkeep.add(residual)
            residual = stage.init_from(residual, float(rows))
        return False

    def training_state(self) -> dict[str, torch.Tensor]:
        out = {}
        for i, s in enumerate(self.stages):
            out.update(s.upkeep.training_state(f"stage{i}"))
        return out

    def load_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for i, s in enumerate(self.stages):
            s.upkeep.load_training_state(tensors, f"stage{i}")
