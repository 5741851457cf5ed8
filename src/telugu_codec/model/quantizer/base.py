"""What every residual quantizer shares: the output type, the residual loop with quantizer
dropout, fp32 maths under autocast, code statistics and the DDP helpers.

A residual quantizer is a stack of stages; stage i codes the residual left by stages 0..i-1
(SoundStream sec. 3.2). Each stage implements `Stage` (in `ema.py`, `factorized.py`, `fsq.py`);
`ResidualQuantizer` runs the loop. The nearest-neighbour search and every codebook update run
in fp32 even under bf16 autocast: a bf16 search picks other codes than the fp32 search used at
inference (about 2 % of later-stage codes differed on CUDA before this rule). True fp32, not
TF32, even when `train.tf32` turns TF32 on for the rest of the model (`full_fp32`): TF32
keeps a 10-bit mantissa in matrix products, as far from fp32 as bf16 is for this search.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ...config import QuantizerConfig
from ...nn.fixed_order import pad_rows


@dataclass
class QuantizerOutput:
    """Result of a residual quantizer's forward pass.

    Attributes:
        quantized: (B, D, F) the quantized latents (sum of the stages' outputs; gradients reach
            the input straight through, see each kind).
        codes: (B, n_q, F) int64 code indices in [0, codebook_size).
        commit_loss: scalar; the quantizer's own training loss (commitment, plus the codebook
            loss for learnt codebooks), already weighted by the config; 0 without training.
        perplexity: (n_q,) exp(entropy) of each stage's code usage in this batch (<= K).
        usage: (n_q,) share of each stage's codes used at least once in this batch.
        replaced: (n_q,) int64 dead codes re-seeded by this call (0 outside training).
        n_q: number of stages used (the maximum, with quantizer dropout).
        warming_up: True while the quantizer gathers latents for its k-means initialisation and
            passes them through unquantized.
        first: (B, D, F) codebook 1's output alone, with its straight-through gradient (what
            `loss.distill` trains); None where a quantizer does not give it.
    """

    quantized: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    replaced: torch.Tensor
    n_q: int
    warming_up: bool = False
    first: torch.Tensor | None = None


@dataclass
class StageOutput:
    """One stage on (N, D) rows: out (N, D), codes (N,), loss (scalar), replaced (int)."""

    out: torch.Tensor
    codes: torch.Tensor
    loss: torch.Tensor
    replaced: int = 0


@contextmanager
def full_fp32(device_type: str) -> Iterator[None]:
    """fp32 arithmetic in the block: autocast off, and TF32 off for matrix products and
    convolutions (both are process-wide switches; restored on exit). While a graph is traced
    (`torch.compile`, ONNX export) only autocast is switched: the switches are not traceable,
    and an exported graph has no TF32."""
    if torch.compiler.is_compiling():
        with torch.autocast(device_type=device_type, enabled=False):
            yield
        return
    matmul = torch.get_float32_matmul_precision()
    cudnn = torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.autocast(device_type=device_type, enabled=False):
            yield
    finally:
        torch.set_float32_matmul_precision(matmul)
        torch.backends.cudnn.allow_tf32 = cudnn


# ------------------------------------------------------------------------------ DDP helpers
def distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_(t: torch.Tensor) -> torch.Tensor:
    """Sum over processes, in place (no-op in a single process)."""
    if distributed():
        dist.all_reduce(t)
    return t


def broadcast_(t: torch.Tensor) -> torch.Tensor:
    """Rank 0's value on every process, in place (no-op in a single process)."""
    if distributed():
        dist.broadcast(t, 0)
    return t


# ------------------------------------------------------------------------------ statistics
def code_stats(codes: torch.Tensor, num_codes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(N,) codes -> (perplexity, usage): exp(entropy) of the usage and the share of codes used."""
    counts = torch.bincount(codes.reshape(-1), minlength=num_codes)[:num_codes].float()
    total = counts.sum().clamp_min(1.0)
    probs = counts / total
    perplexity = torch.exp(-(probs * torch.log(probs + 1e-10)).sum())
    return perplexity, (counts > 0).float().mean()


@torch.no_grad()
def distinct_fraction(vectors: torch.Tensor, rel_tol: float = 1e-3) -> float:
    """Share of the (K, D) rows that have no other row within rel_tol x their median norm."""
    v = vectors.float()
    k = v.shape[0]
    if k < 2:
        return 1.0
    tol = rel_tol * float(v.norm(dim=1).median().clamp_min(1e-12))
    d = torch.cdist(v, v)
    d.fill_diagonal_(float("inf"))
    return float((d.min(dim=1).values > tol).float().mean())


def sample_depths(batch: int, n_q: int, dropout: float, device: torch.device) -> torch.Tensor:
    """Quantizer dropout (SoundStream sec. 3.2): the number of stages each item uses.

    A share `dropout` of the batch draws its depth uniformly from 1..n_q; the rest use all n_q.
    Returns (B,) int64.
    """
    depths = torch.full((batch,), n_q, dtype=torch.long, device=device)
    n_drop = int(round(batch * dropout))
    if n_drop > 0 and n_q > 1:
        depths[:n_drop] = torch.randint(1, n_q + 1, (n_drop,), device=device)
    return depths


class Stage(nn.Module):
    """One quantizer stage. Subclasses implement the four methods below.

    Attributes:
        num_codes: codes this stage can emit (<= the config's codebook_size).
    """

    num_codes: int

    def quantize(self, x: torch.Tensor, mask: torch.Tensor | None) -> StageOutput:
        """Training/validation path on (N, D) fp32 rows; `mask` (N,) bool marks the rows that
        use this stage in training (quantizer dropout), None outside training."""
        raise NotImplementedError

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(N, D) -> (N,) int64 codes, no state change."""
        raise NotImplementedError

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(...,) int64 -> (..., D) this stage's contribution to the latent."""
        raise NotImplementedError

    def dead_codes(self) -> int | None:
        """Codes currently counted as dead (None where the kind has no codebook)."""
        return None

    def distinct(self) -> float | None:
        """Share of distinct codewords (None where the kind has no codebook)."""
        return None


class ResidualQuantizer(nn.Module):
    """`n_q` stages, each quantizing the residual of the previous ones.

    Subclasses build `self.stages` and set `straight_through`:
    - True (EMA codebooks, no learnt parameters): each stage's output is detached and one
      straight-through estimator is applied to the sum, so d(quantized)/d(x) = I exactly
      (moshi's pattern);
    - False (learnt projections/codebooks): each stage applies its own straight-through
      estimator and its output keeps its gradient; the residual handed to the next stage is
      detached (moshi), so a stage is trained for its own residual only.
    """

    straight_through: bool = True

    def __init__(self, dim: int, cfg: QuantizerConfig):
        super().__init__()
        self.cfg = cfg
        self.dim = dim
        self.stages = nn.ModuleList()

    # ------------------------------------------------------------------ properties
    @property
    def n_q(self) -> int:
        return self.cfg.n_q

    @property
    def codebook_size(self) -> int:
        """The code alphabet K per stage (codes are stored in ceil(log2 K) bits)."""
        return self.cfg.codebook_size

    @property
    def num_codes(self) -> list[int]:
        return [s.num_codes for s in self.stages]

    def _check_n_q(self, n_q: int | None) -> int:
        n_q = self.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    # ------------------------------------------------------------------ hooks
    def warming_up(self, flat: torch.Tensor) -> bool:
        """Training hook run before the loop (e.g. gather latents for k-means); True to pass
        the latents through unquantized this step."""
        return False

    def training_state(self) -> dict[str, torch.Tensor]:
        """Training-only tensors that are not in the state dict (buffers of recent vectors).

        Saved in training checkpoints (not in codec files) so a resumed run replaces dead codes
        exactly as an uninterrupted one.
        """
        return {}

    def load_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        pass

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize latents.

        Args:
            x: (B, D, F) latents.
            n_q: stages to use (default all). In training, quantizer dropout may use fewer per
                batch item; codes of unused stages are still computed for logging.

        Returns:
            QuantizerOutput with quantized (B, D, F) in x's dtype and codes (B, n_q, F).
        """
        n_q = self._check_n_q(n_q)
        b, d, f = x.shape
        with full_fp32(x.device.type):
            flat = x.float().transpose(1, 2).reshape(b * f, d)  # (B*F, D)
            train = self.training and torch.is_grad_enabled()
            if train and self.warming_up(flat.detach()):
                return self._passthrough(x, n_q)
            depths = sample_depths(b, n_q, self.cfg.dropout, x.device) if train else None
            residual = flat
            total = torch.zeros_like(flat)
            codes, losses, perps, usages, replaced = [], [], [], [], []
            first = flat
            for i, stage in enumerate(self.stages[:n_q]):
                mask = (depths > i).repeat_interleave(f) if depths is not None else None
                so = stage.quantize(residual, mask)
                if i == 0:  # every item uses stage 1 (depths >= 1), so no mask here
                    st = self.straight_through
                    first = flat + (so.out - flat).detach() if st else so.out
                out = so.out if mask is None else so.out * mask[:, None].to(so.out.dtype)
                residual = residual - out.detach()
                total = total + (out.detach() if self.straight_through else out)
                codes.append(so.codes.view(b, f))
                losses.append(so.loss)
                replaced.append(so.replaced)
                p, u = code_stats(so.codes, stage.num_codes)
                perps.append(p)
                usages.append(u)
            if self.straight_through:
                total = flat + (total - flat).detach()
        return QuantizerOutput(
            quantized=total.view(b, f, d).transpose(1, 2).to(x.dtype),
            codes=torch.stack(codes, dim=1),
            commit_loss=torch.stack(losses).mean(),
            perplexity=torch.stack(perps),
            usage=torch.stack(usages),
            replaced=torch.tensor(replaced, dtype=torch.long),
            n_q=n_q,
            first=first.view(b, f, d).transpose(1, 2).to(x.dtype),
        )

    def _passthrough(self, x: torch.Tensor, n_q: int) -> QuantizerOutput:
        b, _, f = x.shape
        zero = x.new_zeros(()).float()
        return QuantizerOutput(
            quantized=x,
            codes=torch.zeros(b, n_q, f, dtype=torch.long, device=x.device),
            commit_loss=zero,
            perplexity=torch.ones(n_q),
            usage=torch.zeros(n_q),
            replaced=torch.zeros(n_q, dtype=torch.long),
            n_q=n_q,
            warming_up=True,
            first=x,
        )

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """(B, D, F) latents -> (B, n_q, F) int64 codes, no state change.

        Frame-local: frame f's codes depend on latent frame f only (streaming relies on it),
        with the same bits for any number of frames and batch size: fewer than
        `fixed_order.MIN_COLUMNS` rows are zero-padded, so the distance products never take
        MKL's small-matrix path, whose sums are ordered differently (nn/fixed_order.py).
        """
        n_q = self._check_n_q(n_q)
        b, d, f = x.shape
        with full_fp32(x.device.type):
            residual, rows = pad_rows(x.float().transpose(1, 2).reshape(b * f, d))
            codes = []
            for stage in self.stages[:n_q]:
                c = stage.encode(residual)
                residual = residual - stage.decode(c)
                codes.append(c[:rows].view(b, f))
        return torch.stack(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, n_q, F) codes -> (B, D, F) quantized latents (fp32)."""
        n_q = codes.shape[1]
        if n_q > self.n_q:
            raise ValueError(f"codes use {n_q} stages but the quantizer has {self.n_q}")
        with full_fp32(codes.device.type):
            out = 0
            for i in range(n_q):
                out = out + self.stages[i].decode(codes[:, i])  # (B, F, D)
        if isinstance(out, int):
            raise ValueError("codes must have at least one stage")
        return out.transpose(1, 2)

    # ------------------------------------------------------------------ health
    def dead_codes(self) -> list[int | None]:
        return [s.dead_codes() for s in self.stages]

    def distinct(self) -> list[float | None]:
        return [s.distinct() for s in self.stages]
