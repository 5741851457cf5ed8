"""Data-parallel training under `torchrun` (DDP): process-group setup and small helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

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


def init_distributed(timeout_minutes: float | None = None) -> DistInfo:
    """Join the process group that `torchrun` describes in the environment (if any).

    NCCL on CUDA, gloo on CPU. A single process (no WORLD_SIZE or WORLD_SIZE=1) needs nothing.

    Args:
        timeout_minutes: how long a collective waits for the other ranks before it fails
            (``train.dist_timeout_minutes``); None: PyTorch's default.
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
        kwargs = {} if timeout_minutes is None else {"timeout": timedelta(minutes=timeout_minutes)}
        dist.init_process_group(backend=backend, **kwargs)
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


@contextmanager
def rank0_first(info: DistInfo | None = None) -> Iterator[None]:
    """Rank 0 runs the block first while the other ranks wait at a barrier, then they run it.

    For work whose result rank 0 leaves behind for the others, e.g. the start-up scan of a
    corpus: rank 0 probes every file and writes the scan cache, the others then find every
    file cached instead of each probing the whole corpus at once. Without a process group
    (`info` None or one process, and no group initialised) it just runs the block.

    If rank 0's block raises, rank 0 still reaches the barrier (so the others never hang) and
    the others run the block themselves, which raises the same error on every rank.
    """
    enabled = info.enabled if info is not None else dist.is_available() and dist.is_initialized()
    if enabled and dist.is_initialized() and dist.get_world_size() > 1:
        main = dist.get_rank() == 0
    else:
        yield
        return
    if not main:
        dist.barrier()  # wait for rank 0's block
    try:
        yield
    finally:
        if main:
            dist.barrier()  # release the others


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
