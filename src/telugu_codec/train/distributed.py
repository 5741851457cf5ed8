"""Data-parallel training under `torchrun` (DDP): process-group setup and small helpers."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed() -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (if any).

    NCCL on CUDA, gloo on CPU. A single process (no WORLD_SIZE or WORLD_SIZE=1) needs nothing.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank=rank, world_size=world, local_rank=local)


def broadcast_int(value: int, info: DistInfo, device: torch.device) -> int:
    """Rank 0's value on every rank (used for stop / rollback decisions)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.broadcast(t, 0)
    return int(t.item())


def all_reduce_max(value: int, info: DistInfo, device: torch.device) -> int:
    """The largest of every rank's value (a stop any one rank was asked for stops them all)."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def all_ranks_true(flags: torch.Tensor, info: DistInfo) -> list[bool]:
    """Each of `flags` (k,) bool, true only where it is true on every rank (all ranks call).

    One collective and one host transfer for the k flags together. Every rank gets the same
    answer, so a decision taken on it (skip a non-finite update) is taken by all of them.
    """
    flags = flags.reshape(-1).to(torch.int32)
    if info.enabled:
        dist.all_reduce(flags, op=dist.ReduceOp.MIN)
    return [bool(v) for v in flags.tolist()]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


@torch.no_grad()
def state_checksum(module: torch.nn.Module) -> torch.Tensor:
    """(2 x tensors,) float64: each state-dict tensor's sum and position-weighted sum.

    Identical replicas give identical checksums; a single changed element changes them
    (with probability ~1), which is what `replicas_agree` needs.
    """
    out = []
    for t in module.state_dict().values():
        v = t.detach().reshape(-1).double()
        w = torch.arange(1, v.numel() + 1, dtype=torch.float64, device=v.device)
        out += [v.sum(), (v * w).sum() / max(1, v.numel())]
    return torch.stack(out) if out else torch.zeros(1, dtype=torch.float64)


def replicas_agree(module: torch.nn.Module, info: DistInfo, device: torch.device) -> bool:
    """True when every process holds the same weights and buffers as rank 0 (all ranks call).

    DDP keeps parameters identical by averaging gradients; buffers updated outside autograd
    (EMA codebooks, dead-code re-seeding, k-means) are only identical if every such update is
    reduced or broadcast. This is the check that they were.
    """
    if not info.enabled:
        return True
    mine = state_checksum(module).to(device)
    ref = mine.clone()
    dist.broadcast(ref, 0)
    same = torch.tensor([float(torch.equal(mine, ref))], device=device)
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    return bool(same.item() == 1.0)
