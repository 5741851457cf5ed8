"""One rank of a torchrun job for tests/test_trainer_ddp.py (not a test module itself).

Builds the tiny test trainer in-process, injects a fault on one rank if asked, and writes what
this rank saw to ``{out}/rank{r}.pt``. Run as
``python -m torch.distributed.run --nproc_per_node=2 -m tests.ddp_worker '<json>'`` from the
repository root; the JSON holds ``mode`` ("nan" or "step"), ``run_dir``, ``data``, ``out``,
``overrides`` and the mode's own keys (see `_nan_run` and `_one_step`).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

from telugu_codec.config import load_config
from telugu_codec.train.distributed import cleanup, state_checksum
from telugu_codec.train.trainer import Trainer

from .test_trainer import TRAIN_OVERRIDES


def _trainer(args: dict) -> Trainer:
    cfg = load_config(None, TRAIN_OVERRIDES + list(args["overrides"]))
    return Trainer(
        cfg,
        args["run_dir"],
        args["data"],
        device="cpu",
        progress=False,
        tensorboard=False,
        log=lambda _m: None,
    )


def _nan_run(t: Trainer, rank: int, args: dict) -> dict:
    """Train ``steps`` steps; on rank ``nan_rank`` the mel loss of the first micro-batch at
    step ``nan_step`` is NaN (once). Returns every step's (step, finite) as this rank saw it."""
    real_losses, real_count = t.gan.generator_losses, t._count_step
    injected, seen = [False], []

    def losses(x, out, adversarial):
        terms = real_losses(x, out, adversarial)
        if rank == args["nan_rank"] and t.state.step == args["nan_step"] and not injected[0]:
            injected[0] = True
            terms["mel"] = terms["mel"] * float("nan")
        return terms

    def count(result):
        seen.append((t.state.step, bool(result.finite)))
        real_count(result)

    t.gan.generator_losses, t._count_step = losses, count
    result = t.train(args["steps"])
    return {
        "reason": result.reason,
        "seen": seen,
        "step": t.state.step,
        "nonfinite_total": t.state.nonfinite_total,
        "codec": state_checksum(t.codec),
        "disc": state_checksum(t.disc),
    }


def _one_step(t: Trainer, rank: int, world: int, args: dict) -> dict:
    """One `train_step` at step ``start_step`` on this rank's share of the batch in ``batch``,
    cut into ``train.grad_accum`` micro-batches. Returns the gradients and the weights."""
    x = torch.load(args["batch"])  # (B, 1, T), the global batch
    mine = x.chunk(world)[rank]
    t.codec.train()
    t.codec(mine)  # FSQ's scale initialisation, on the statistics of the whole batch (reduced)
    t.state.step = args.get("start_step", 0)
    t.train_step(list(mine.chunk(t.cfg.train.grad_accum)))
    return {
        "g_grads": {k: p.grad.clone() for k, p in t.codec.named_parameters() if p.grad is not None},
        "codec": {k: v.clone() for k, v in t.codec.state_dict().items()},
        "disc": {k: v.clone() for k, v in t.disc.state_dict().items()} if t.disc else {},
    }


def main() -> None:
    args = json.loads(sys.argv[1])
    torch.set_num_threads(1)  # two ranks on the two cores of a test machine
    t = _trainer(args)
    rank, world = t.dist.rank, t.dist.world_size
    report = _nan_run(t, rank, args) if args["mode"] == "nan" else _one_step(t, rank, world, args)
    torch.save(report, Path(args["out"]) / f"rank{rank}.pt")
    cleanup(t.dist)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
