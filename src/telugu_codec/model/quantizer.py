"""Residual vector quantizer with EMA codebooks.

References: SoundStream (Zeghidour et al. 2021) sec. 3.2 for RVQ and quantizer dropout;
VQ-VAE-2 / EnCodec for EMA codebook updates, k-means initialisation and dead-code replacement;
moshi for the detach pattern (each stage's output is detached before it is subtracted from the
residual, and one straight-through estimator is applied to the sum, so d(out)/d(in) = I exactly).

The codebooks are buffers updated by EMA, not parameters: they receive no gradient and the
optimizer never sees them. Under DDP the EMA statistics are summed over processes so every rank
keeps identical codebooks.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..config import QuantizerConfig


@dataclass
class QuantizerOutput:
    """Result of the residual quantizer.

    Attributes:
        quantized: (B, D, F) sum of the selected codewords (straight-through in training).
        codes: (B, n_q, F) int64 code indices.
        commit_loss: scalar, mean over the used codebooks of ||x - sg(q)||^2, already scaled by
            `commitment_weight`.
        perplexity: (n_q,) exp(entropy) of each codebook's usage in this batch (<= K).
        usage: (n_q,) share of each codebook's K codes used at least once in this batch.
        n_q: number of codebooks used (the maximum, with quantizer dropout).
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    n_q: int


def _all_reduce(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def _broadcast(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.broadcast(t, 0)
    return t


def kmeans(x: torch.Tensor, k: int, iters: int, generator: torch.Generator | None = None):
    """Plain k-means on (N, D) vectors; returns (centroids (k, D), counts (k,)).

    Seeds are drawn from the data (with replacement when N < k).
    """
    n = x.shape[0]
    idx = torch.randint(0, n, (k,), generator=generator, device="cpu").to(x.device)
    if n >= k:
        idx = torch.randperm(n, generator=generator, device="cpu")[:k].to(x.device)
    centroids = x[idx].clone()
    counts = torch.zeros(k, device=x.device)
    for _ in range(iters):
        assign = torch.cdist(x, centroids).argmin(dim=1)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
    return centroids, counts


class EMACodebook(nn.Module):
    """One codebook of K vectors of dimension D, trained by exponential moving averages."""

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        k = cfg.codebook_size
        self.register_buffer("inited", torch.tensor(not cfg.kmeans_init))
        # random until k-means replaces it on the first training batch (an untrained checkpoint
        # still gives distinct codes at every bitrate)
        self.register_buffer("embed", torch.randn(k, dim))
        self.register_buffer("cluster_size", torch.ones(k))
        self.register_buffer("embed_avg", self.embed.clone())

    def assign(self, x: torch.Tensor) -> torch.Tensor:
        """Nearest codeword for each row of x (N, D) -> (N,) int64."""
        # ||x - e||^2 = ||x||^2 - 2 x.e + ||e||^2; the first term does not change the argmin
        embed = self.embed.to(x.dtype)
        # one fused GEMM: ||e||^2 - 2 x.e (same values as the two-step form, no extra pass)
        dist_ = torch.addmm(embed.pow(2).sum(1)[None, :], x, embed.t(), alpha=-2)
        return dist_.argmin(dim=1)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (...,) -> codewords (..., D)."""
        return F.embedding(codes, self.embed)

    @torch.no_grad()
    def init_from(self, x: torch.Tensor) -> None:
        """k-means initialisation on the first batch (rank 0's result under DDP)."""
        centroids, counts = kmeans(x.float(), self.cfg.codebook_size, self.cfg.kmeans_iters)
        self.embed.copy_(_broadcast(centroids))
        self.embed_avg.copy_(self.embed)
        self.cluster_size.copy_(_broadcast(counts))
        self.inited.fill_(True)

    @torch.no_grad()
    def ema_update(self, x: torch.Tensor, codes: torch.Tensor) -> None:
        """Move codewords toward the mean of the vectors assigned to them.

        Args:
            x: (N, D) the vectors (fp32); codes: (N,) their assignments.
        """
        k = self.cfg.codebook_size
        decay, eps = self.cfg.decay, self.cfg.epsilon
        onehot_sum = torch.bincount(codes, minlength=k).to(x.dtype)
        embed_sum = torch.zeros(k, x.shape[1], device=x.device, dtype=x.dtype).index_add_(
            0, codes, x
        )
        onehot_sum, embed_sum = _all_reduce(onehot_sum), _all_reduce(embed_sum)
        self.cluster_size.mul_(decay).add_(onehot_sum, alpha=1 - decay)
        self.embed_avg.mul_(decay).add_(embed_sum, alpha=1 - decay)
        n = self.cluster_size.sum()
        smoothed = (self.cluster_size + eps) / (n + k * eps) * n  # Laplace smoothing
        self.embed.copy_(self.embed_avg / smoothed[:, None])

    @torch.no_grad()
    def replace_dead(self, x: torch.Tensor) -> int:
        """Re-seed codes whose EMA usage fell below the threshold with random batch vectors.

        Returns the number of codes replaced.
        """
        dead = self.cluster_size < self.cfg.dead_code_threshold
        n_dead = int(dead.sum())
        if n_dead == 0:
            return 0
        idx = torch.randint(0, x.shape[0], (n_dead,), device=x.device)
        new = _broadcast(x[idx].clone())
        self.embed[dead] = new
        self.embed_avg[dead] = new * self.cfg.dead_code_threshold
        self.cluster_size[dead] = self.cfg.dead_code_threshold
        return n_dead


class ResidualVectorQuantizer(nn.Module):
    """`n_q` EMA codebooks applied in turn to the residual of the previous ones."""

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        self.codebooks = nn.ModuleList(EMACodebook(dim, cfg) for _ in range(cfg.n_q))

    @property
    def n_q(self) -> int:
        return self.cfg.n_q

    def _sample_n_q(self, b: int, n_q: int, device: torch.device) -> torch.Tensor:
        """Quantizer dropout: per batch item, the number of codebooks to use (SoundStream)."""
        per_item = torch.full((b,), n_q, device=device)
        n_drop = int(round(b * self.cfg.dropout))
        if n_drop > 0 and n_q > 1:
            per_item[:n_drop] = torch.randint(1, n_q + 1, (n_drop,), device=device)
        return per_item

    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize latents.

        Args:
            x: (B, D, F) latents.
            n_q: codebooks to use (default all). In training, quantizer dropout may use fewer
                per batch item; codes of unused stages are still computed for logging.

        Returns:
            QuantizerOutput with quantized (B, D, F) and codes (B, n_q, F).
        """
        n_q = self.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        b, d, f = x.shape
        x32 = x.float()
        flat_in = x32.transpose(1, 2).reshape(b * f, d)  # (B*F, D)
        train = self.training and torch.is_grad_enabled()
        if train:
            keep_items = self._sample_n_q(b, n_q, x.device)  # (B,)
        residual = flat_in
        quantized = torch.zeros_like(flat_in)
        codes, commits, perps, usages = [], [], [], []
        for i, cb in enumerate(self.codebooks[:n_q]):
            if train:
                mask_items = keep_items > i  # (B,) items that use this stage
                mask = mask_items.repeat_interleave(f)  # (B*F,)
            if train and not bool(cb.inited):
                cb.init_from(residual.detach()[mask] if mask.any() else residual.detach())
            c = cb.assign(residual.detach())
            q = cb.lookup(c).to(residual.dtype)
            if train:
                m = mask.to(residual.dtype)[:, None]
                denom = (m.sum() * d).clamp_min(1.0)
                commits.append(((residual - q.detach()).pow(2) * m).sum() / denom)
                if mask.any():
                    cb.ema_update(residual.detach()[mask], c[mask])
                    cb.replace_dead(residual.detach()[mask])
                q = q * m
            else:
                commits.append((residual - q.detach()).pow(2).mean())
            codes.append(c.view(b, f))
            counts = torch.bincount(c, minlength=cb.cfg.codebook_size).float()
            probs = counts / counts.sum()
            perps.append(torch.exp(-(probs * torch.log(probs + 1e-10)).sum()))
            usages.append((counts > 0).float().mean())
            q = q.detach()
            residual = residual - q
            quantized = quantized + q
        # straight-through: forward value = codewords, gradient to x = identity
        out = flat_in + (quantized - flat_in).detach()
        out = out.view(b, f, d).transpose(1, 2).to(x.dtype)
        commit = torch.stack(commits).mean() * self.cfg.commitment_weight
        return QuantizerOutput(
            quantized=out,
            codes=torch.stack(codes, dim=1),
            commit_loss=commit,
            perplexity=torch.stack(perps),
            usage=torch.stack(usages),
            n_q=n_q,
        )

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """(B, D, F) latents -> (B, n_q, F) codes, no state change."""
        n_q = self.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        b, d, f = x.shape
        residual = x.float().transpose(1, 2).reshape(b * f, d)
        codes = []
        for cb in self.codebooks[:n_q]:
            c = cb.assign(residual)
            residual = residual - cb.lookup(c)
            codes.append(c.view(b, f))
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, n_q, F) codes -> (B, D, F) quantized latents (sum of codewords)."""
        n_q = codes.shape[1]
        if n_q > self.n_q:
            raise ValueError(f"codes use {n_q} codebooks but the quantizer has {self.n_q}")
        out = 0
        for i in range(n_q):
            out = out + self.codebooks[i].lookup(codes[:, i])  # (B, F, D)
        return out.transpose(1, 2)
