"""Keeping learnt codebooks alive: k-means++ initialisation and dead-code replacement.

Both EMA and factorised codebooks die the same way: codes that stop being chosen never move
again. A `CodebookUpkeep` watches one stage:

- it keeps a ring buffer of the stage's recent input vectors (not just the current batch, which
  at CPU batch sizes holds ~200 vectors for 1024 codes);
- it counts the vectors the stage has coded (`seen`, summed over DDP processes) and when each
  code was last chosen; a code is dead when `dead_code_window x K` vectors went by without it,
  a definition that means the same thing at batch 200 and at batch 3200;
- every `replace_every` steps dead codes are re-seeded with buffered vectors drawn with
  probability proportional to their squared distance to the nearest codeword (k-means++'s
  rule: new codes go where the codebook serves the data worst); under DDP rank 0's draw is
  broadcast so every process keeps identical codebooks.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ...config import QuantizerConfig
from .base import broadcast_

MAX_STRIKES = 3  # re-seeds after which a code's dead-code window stops growing


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """(N, D), (K, D) -> (N, K) squared Euclidean distances in fp32 (clamped at 0)."""
    x, c = x.float(), centroids.float()
    d = torch.addmm(c.pow(2).sum(1)[None, :], x, c.t(), alpha=-2) + x.pow(2).sum(1, keepdim=True)
    return d.clamp_min_(0.0)


def kmeans_plus_plus(x: torch.Tensor, k: int) -> torch.Tensor:
    """k-means++ seeding (Arthur & Vassilvitskii 2007): (N, D) -> (k, D) rows of x.

    Each new seed is drawn with probability proportional to its squared distance to the nearest
    seed so far, so a vector already chosen (distance 0) is never chosen again: with N >= k
    distinct vectors the k seeds are distinct.
    """
    x = x.float()
    n = x.shape[0]
    first = int(torch.randint(0, n, (1,)))
    seeds = [first]
    d2 = (x - x[first]).pow(2).sum(1)
    for _ in range(1, k):
        total = d2.sum()
        if total <= 0:  # fewer distinct vectors than k: duplicates are unavoidable
            idx = int(torch.randint(0, n, (1,)))
        else:
            idx = int(torch.multinomial(d2 / total, 1))
        seeds.append(idx)
        d2 = torch.minimum(d2, (x - x[idx]).pow(2).sum(1))
    return x[torch.tensor(seeds, device=x.device)].clone()


def kmeans(x: torch.Tensor, k: int, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means++ seeding then `iters` Lloyd iterations on (N, D) vectors.

    Returns (centroids (k, D), counts (k,)). A centroid whose cluster empties keeps its place.
    """
    x = x.float()
    centroids = kmeans_plus_plus(x, k)
    counts = torch.zeros(k, device=x.device)
    for _ in range(iters):
        assign = squared_distances(x, centroids).argmin(dim=1)
        counts = torch.bincount(assign, minlength=k).float()
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None]
    if iters == 0:
        counts = torch.bincount(squared_distances(x, centroids).argmin(1), minlength=k).float()
    return centroids, counts


class CodebookUpkeep(nn.Module):
    """Usage counters and a buffer of recent vectors for one stage; see the module docstring.

    `seen`, `last_seen` and `updates` are state-dict buffers (small); the vector buffer is
    training-only state, saved in training checkpoints through `training_state`.
    """

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        k = cfg.codebook_size
        self.capacity = max(1, math.ceil(max(cfg.buffer_size, cfg.init_vectors) * k))
        self.register_buffer("seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("last_seen", torch.zeros(k, dtype=torch.long))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        # allocated on first use, so inference never pays for it
        self.register_buffer("buffer", torch.zeros(0, dim), persistent=False)
        # times each code was re-seeded: its dead-code window doubles with each (training state)
        self.register_buffer("strikes", torch.zeros(k, dtype=torch.long), persistent=False)
        self.fill = 0
        self.pos = 0

    # ------------------------------------------------------------------ buffer
    def add(self, x: torch.Tensor) -> None:
        """Append (N, D) vectors to the ring buffer (oldest overwritten)."""
        if self.buffer.shape[0] != self.capacity:
            self.buffer = torch.zeros(self.capacity, self.dim, device=x.device)
            self.fill = self.pos = 0
        x = x.detach().float()[-self.capacity :]
        n = x.shape[0]
        if n == 0:
            return
        end = self.pos + n
        if end <= self.capacity:
            self.buffer[self.pos : end] = x
        else:
            first = self.capacity - self.pos
            self.buffer[self.pos :] = x[:first]
            self.buffer[: n - first] = x[first:]
        self.pos = end % self.capacity
        self.fill = min(self.capacity, self.fill + n)

    def contents(self) -> torch.Tensor:
        return self.buffer[: self.fill]

    # ------------------------------------------------------------------ usage
    @torch.no_grad()
    def observe(self, x: torch.Tensor, counts: torch.Tensor) -> None:
        """Record one training step: the stage's (N, D) input rows (this process) and the
        per-code counts of the step summed over processes (K,)."""
        self.add(x)
        self.seen += counts.sum().long()
        self.last_seen[counts > 0] = self.seen
        self.updates += 1

    def reset_usage(self) -> None:
        """Every code counts as just used (after initialisation)."""
        self.last_seen.fill_(int(self.seen))
        self.strikes.zero_()

    def dead_mask(self) -> torch.Tensor:
        """(K,) bool: codes not chosen while `dead_code_window x K` vectors went by.

        A code's window grows `reseed_backoff` times each time it is re-seeded (at most
        `MAX_STRIKES` times): a code that dies again soon after re-seeding was placed where the
        data no longer is (early in training the encoder's latents drift fast), and re-seeding
        on a fixed clock is churn that never settles. Measured on `tiny` (encoder frozen at step
        150): with a fixed window 35-45 % of each codebook was re-seeded in the next 50 steps,
        in waves one window apart (94 % of the first k-means codewords died by step 70).
        """
        window = self.cfg.dead_code_window * self.cfg.codebook_size
        if window <= 0:
            return torch.zeros_like(self.last_seen, dtype=torch.bool)
        strikes = self.strikes.clamp(max=MAX_STRIKES).float()
        backoff = torch.pow(torch.tensor(float(self.cfg.reseed_backoff)), strikes)
        return (self.seen - self.last_seen).float() > window * backoff

    def due(self) -> bool:
        """True on the steps where dead codes are looked for."""
        return self.cfg.dead_code_window > 0 and int(self.updates) % self.cfg.replace_every == 0

    @torch.no_grad()
    def draw(self, n: int, codebook: torch.Tensor, normalize: bool = False) -> torch.Tensor | None:
        """`n` buffered vectors for re-seeding, drawn with p ~ squared distance to `codebook`.

        Rank 0's draw is broadcast (identical codebooks on every process). Returns (n, D), or
        None when rank 0 has nothing buffered.
        """
        data = self.contents()
        have = data.shape[0] > 0
        out = torch.zeros(n + 1, self.dim, device=self.buffer.device)
        if have:
            space = F.normalize(data, dim=1) if normalize else data
            ref = F.normalize(codebook.float(), dim=1) if normalize else codebook.float()
            w = squared_distances(space, ref).min(dim=1).values + 1e-12
            idx = torch.multinomial(w, n, replacement=n > data.shape[0])
            out[1:] = data[idx]
            out[0, 0] = 1.0
        broadcast_(out)
        if float(out[0, 0]) == 0.0:
            return None
        return out[1:]

    def mark_replaced(self, mask: torch.Tensor) -> None:
        self.last_seen[mask] = self.seen
        self.strikes[mask] += 1

    # ------------------------------------------------------------------ checkpoints
    def training_state(self, prefix: str) -> dict[str, torch.Tensor]:
        return {
            f"{prefix}.buffer": self.contents().cpu(),
            f"{prefix}.pos": torch.tensor([self.pos, self.fill], dtype=torch.long),
            f"{prefix}.strikes": self.strikes.cpu(),
        }

    def load_training_state(self, tensors: dict[str, torch.Tensor], prefix: str) -> None:
        strikes = tensors.get(f"{prefix}.strikes")
        if strikes is not None and strikes.shape == self.strikes.shape:
            self.strikes.copy_(strikes)
        data = tensors.get(f"{prefix}.buffer")
        if data is None:
            return
        self.buffer = torch.zeros(self.capacity, self.dim, device=self.last_seen.device)
        fill = min(int(data.shape[0]), self.capacity)
        self.buffer[:fill] = data[:fill].to(self.buffer.device)
        pos, _ = (int(v) for v in tensors[f"{prefix}.pos"])
        self.pos, self.fill = pos % self.capacity, fill
