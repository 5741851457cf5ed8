"""Split residual quantization (`model.quantizer.split_first`): Mimi's semantic + acoustic RVQ.

Mimi (Defossez et al. 2024, sec. 3.2) distils a teacher into the first codebook, and found that
doing so in a plain RVQ hurts reconstruction: every later stage codes the residual of a codebook
that is now pulled towards phonetic content. It therefore quantizes the latent twice, in
parallel: a one-codebook quantizer (the "semantic" one, codebook 1 of the codes) and a residual
quantizer of the other n_q - 1 codebooks, each with its own 1x1 input and output projection, and
sums their outputs. We do the same with any quantizer kind:

    x (B, D, F) -> in_first  -> [1 codebook]        -> out_first -+
                -> in_rest   -> [n_q - 1 codebooks] -> out_rest  -+-> quantized (B, D, F)

The projections start so that the sum passes the latent through (in = I, out = I / 2), so the
codec starts where a plain RVQ starts. Codes are (B, n_q, F) as for every kind: codebook 1 comes
from the first quantizer, 2..n_q from the second; decoding `n_q` codebooks sums the first
quantizer's output and the second's first n_q - 1 stages, so fewer codebooks still decode.
Frame-local like the residual loop (1x1 projections), so streaming is unchanged.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ...config import QuantizerConfig
from .base import QuantizerOutput, ResidualQuantizer


def _projection(dim: int, scale: float) -> nn.Conv1d:
    """A 1x1 conv initialised to `scale` x identity (no bias)."""
    conv = nn.Conv1d(dim, dim, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(scale * torch.eye(dim).unsqueeze(-1))
    return conv


class SplitQuantizer(nn.Module):
    """Codebook 1 in a quantizer of its own, codebooks 2..n_q in a parallel residual quantizer.

    Args:
        dim: latent dimension D.
        cfg: the quantizer config (`split_first` true, `n_q` >= 2).
        kind: the residual quantizer class of `cfg.kind`, used for both parts.
    """

    def __init__(self, dim: int, cfg: QuantizerConfig, kind: type[ResidualQuantizer]):
        super().__init__()
        if cfg.n_q < 2:
            raise ValueError("a split quantizer needs n_q >= 2")
        self.cfg = cfg
        self.dim = dim
        # quantizer dropout is applied by this class (below), not by the first part
        self.first = kind(dim, dataclasses.replace(cfg, n_q=1, dropout=0.0))
        self.rest = kind(dim, dataclasses.replace(cfg, n_q=cfg.n_q - 1))
        self.in_first, self.out_first = _projection(dim, 1.0), _projection(dim, 0.5)
        self.in_rest, self.out_rest = _projection(dim, 1.0), _projection(dim, 0.5)

    # ------------------------------------------------------------------ properties
    @property
    def n_q(self) -> int:
        return self.cfg.n_q

    @property
    def codebook_size(self) -> int:
        return self.cfg.codebook_size

    @property
    def num_codes(self) -> list[int]:
        return self.first.num_codes + self.rest.num_codes

    @property
    def stages(self) -> nn.ModuleList:
        """Every stage in code order (codebook 1 first)."""
        return nn.ModuleList([*self.first.stages, *self.rest.stages])

    def _check_n_q(self, n_q: int | None) -> int:
        n_q = self.n_q if n_q is None else n_q
        if not 1 <= n_q <= self.n_q:
            raise ValueError(f"n_q must be in 1..{self.n_q}, got {n_q}")
        return n_q

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, n_q: int | None = None) -> QuantizerOutput:
        """Quantize latents x: (B, D, F) with `n_q` codebooks (default all).

        In training, a share `cfg.dropout / n_q` of the batch drops the acoustic part (depth 1,
        as uniform quantizer dropout would draw it); the acoustic quantizer applies its own
        dropout over codebooks 2..n_q to the rest.
        """
        n_q = self._check_n_q(n_q)
        sem = self.first(self.in_first(x), 1)
        quantized = self.out_first(sem.quantized)
        outs = [sem]
        if n_q > 1:
            ac = self.rest(self.in_rest(x), n_q - 1)
            acoustic = self.out_rest(ac.quantized)
            if self.training and torch.is_grad_enabled() and self.cfg.dropout > 0:
                keep = torch.rand(x.shape[0], device=x.device) >= self.cfg.dropout / n_q
                acoustic = acoustic * keep.to(acoustic.dtype)[:, None, None]
            quantized = quantized + acoustic
            outs.append(ac)
        first = self.out_first(sem.first) if sem.first is not None else None
        return QuantizerOutput(
            quantized=quantized,
            codes=torch.cat([o.codes for o in outs], dim=1),
            commit_loss=torch.stack([o.commit_loss.float() for o in outs]).mean(),
            perplexity=torch.cat([o.perplexity.to(x.device) for o in outs]),
            usage=torch.cat([o.usage.to(x.device) for o in outs]),
            replaced=torch.cat([o.replaced.cpu() for o in outs]),
            n_q=n_q,
            warming_up=any(o.warming_up for o in outs),
            first=first,
        )

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """(B, D, F) latents -> (B, n_q, F) int64 codes, no state change (frame-local)."""
        n_q = self._check_n_q(n_q)
        codes = [self.first.encode(self.in_first(x), 1)]
        if n_q > 1:
            codes.append(self.rest.encode(self.in_rest(x), n_q - 1))
        return torch.cat(codes, dim=1)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, n_q, F) codes -> (B, D, F) quantized latents (fp32)."""
        n_q = codes.shape[1]
        if n_q > self.n_q:
            raise ValueError(f"codes use {n_q} stages but the quantizer has {self.n_q}")
        if n_q < 1:
            raise ValueError("codes must have at least one stage")
        out = self.out_first(self.first.decode(codes[:, :1]).float())
        if n_q > 1:
            out = out + self.out_rest(self.rest.decode(codes[:, 1:]).float())
        return out

    # ------------------------------------------------------------------ health and state
    def dead_codes(self) -> list[int | None]:
        return self.first.dead_codes() + self.rest.dead_codes()

    def distinct(self) -> list[float | None]:
        return self.first.distinct() + self.rest.distinct()

    def training_state(self) -> dict[str, torch.Tensor]:
        out = {f"first.{k}": v for k, v in self.first.training_state().items()}
        return out | {f"rest.{k}": v for k, v in self.rest.training_state().items()}

    def load_training_state(self, tensors: dict[str, torch.Tensor]) -> None:
        for name, part in (("first", self.first), ("rest", self.rest)):
            prefix = f"{name}."
            part.load_training_state(
                {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            )
