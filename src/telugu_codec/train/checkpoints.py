"""Training checkpoints: everything needed to continue exactly, with no pickle.

A checkpoint is a folder ``RUN/checkpoints/step_0000100/`` holding

- ``codec.safetensors``: the generator, directly usable by encode/decode/`Codec.load`;
- ``discriminator.safetensors``;
- ``optimizers.safetensors`` + the JSON part of both optimizers' state in ``state.json``;
- ``rng.safetensors``: torch (and CUDA) generator states;
- ``quantizer.safetensors``: the quantizer's training-only buffers (recent vectors that dead
  codes are re-seeded from), so a resumed run re-seeds exactly as an uninterrupted one;
- ``state.json``: step, data position, python/numpy RNG, balancer, guard, bookkeeping.

It is written into a hidden temporary folder and renamed into place, so a run killed at any
moment leaves either a complete checkpoint or none; `state.json` is written last.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..checkpoint import (
    CODEC_FILE,
    atomic_write_text,
    load_state_strict,
    load_tensors,
    save_tensors,
)
from ..errors import CheckpointError

STATE_FILE = "state.json"
QUANTIZER_FILE = "quantizer.safetensors"


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints (those with a state.json), oldest first."""
    root = checkpoint_dir(run_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step_*") if (p / STATE_FILE).exists())


def latest_checkpoint(run_dir: Path) -> Path | None:
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1] if ckpts else None


# ------------------------------------------------------------------------- optimizer state
def optimizer_to_safe(opt: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """Split an optimizer state dict into tensors (for safetensors) and JSON-able rest."""
    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}.{pid}.{key}"] = value
            else:
                scalars[f"{pid}.{key}"] = value
    groups = [
        {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()}
        for g in sd["param_groups"]
    ]
    return tensors, {"param_groups": groups, "scalars": scalars}


def optimizer_from_safe(opt: torch.optim.Optimizer, prefix: str, tensors: dict, meta: dict) -> None:
    state: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        if not name.startswith(prefix + "."):
            continue
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = value
    for name, value in meta["scalars"].items():
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    groups = []
    for g in meta["param_groups"]:
        g = dict(g)
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
        groups.append(g)
    try:
        opt.load_state_dict({"state": state, "param_groups": groups})
    except (ValueError, KeyError, RuntimeError) as e:
        raise CheckpointError(f"optimizer state does not fit this model: {e}") from e


# ------------------------------------------------------------------------- RNG state
def rng_state() -> tuple[dict[str, torch.Tensor], dict]:
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = s
    py = random.getstate()
    np_state = np.random.get_state()
    meta = {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
    }
    return tensors, meta


def set_rng_state(tensors: dict[str, torch.Tensor], meta: dict) -> None:
    torch.set_rng_state(tensors["torch"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
        if len(states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(states)
    py = meta["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = meta["numpy"]
    np.random.set_state((n[0], np.array(n[1], dtype=np.uint32), *n[2:]))


# ------------------------------------------------------------------------- save / load
def save_checkpoint(
    run_dir: Path,
    step: int,
    codec: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    optimizers: dict[str, torch.optim.Optimizer],
    state: dict,
    keep_last: int,
    protect: set[str] | None = None,
) -> Path:
    """Write a complete checkpoint atomically and prune old ones.

    Args:
        state: JSON-able trainer state (step, data position, balancer, guard, ...).
        keep_last: how many recent checkpoints to keep (others are deleted unless protected).
        protect: checkpoint folder names never pruned (the last healthy one).
    """
    root = checkpoint_dir(run_dir)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:08d}"
    tmp = root / f".tmp_step_{step:08d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    codec.save(tmp / CODEC_FILE, extra_meta={"step": step})
    if discriminator is not None:
        save_tensors(tmp / "discriminator.safetensors", discriminator.state_dict(), {})
    opt_tensors, opt_meta = {}, {}
    for name, opt in optimizers.items():
        t, m = optimizer_to_safe(opt, name)
        opt_tensors.update(t)
        opt_meta[name] = m
    save_tensors(tmp / "optimizers.safetensors", opt_tensors, {})
    rng_t, rng_m = rng_state()
    save_tensors(tmp / "rng.safetensors", rng_t, {})
    quantizer = getattr(codec, "quantizer", None)
    if quantizer is not None and hasattr(quantizer, "training_state"):
        # the quantizer's buffers of recent vectors (dead-code re-seeding): training-only state
        save_tensors(tmp / QUANTIZER_FILE, quantizer.training_state(), {})
    full = dict(state, step=step, optimizers=opt_meta, rng=rng_m)
    atomic_write_text(tmp / STATE_FILE, json.dumps(full))
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    _prune(root, keep_last, protect or set())
    return final


def _prune(root: Path, keep_last: int, protect: set[str]) -> None:
    ckpts = sorted(p for p in root.glob("step_*") if (p / STATE_FILE).exists())
    for p in ckpts[: max(0, len(ckpts) - keep_last)]:
        if p.name not in protect:
            shutil.rmtree(p, ignore_errors=True)
    for p in root.glob(".tmp_step_*"):  # leftovers of a killed write
        shutil.rmtree(p, ignore_errors=True)


def load_checkpoint(
    path: Path,
    codec: torch.nn.Module,
    discriminator: torch.nn.Module | None,
    optimizers: dict[str, torch.optim.Optimizer],
    restore_rng: bool = True,
) -> dict:
    """Restore models, optimizers and RNG from a checkpoint folder; returns its state dict."""
    path = Path(path)
    try:
        state = json.loads((path / STATE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path / STATE_FILE}: {e}") from e
    tensors, _ = load_tensors(path / CODEC_FILE)
    load_state_strict(codec, tensors, path / CODEC_FILE)
    if discriminator is not None:
        d_path = path / "discriminator.safetensors"
        if not d_path.exists():
            raise CheckpointError(f"{path} has no discriminator weights")
        load_state_strict(discriminator, load_tensors(d_path)[0], d_path)
    opt_tensors, _ = load_tensors(path / "optimizers.safetensors")
    for name, opt in optimizers.items():
        if name not in state["optimizers"]:
            raise CheckpointError(f"{path} has no state for optimizer '{name}'")
        optimizer_from_safe(opt, name, opt_tensors, state["optimizers"][name])
    quantizer = getattr(codec, "quantizer", None)
    if (path / QUANTIZER_FILE).exists() and hasattr(quantizer, "load_training_state"):
        quantizer.load_training_state(load_tensors(path / QUANTIZER_FILE)[0])
    if restore_rng:
        rng_t, _ = load_tensors(path / "rng.safetensors")
        set_rng_state(rng_t, state["rng"])
    return state


def export_best(ckpt: Path, run_dir: Path) -> Path:
    """Copy a checkpoint's codec to RUN/checkpoints/best/ (atomically)."""
    best = checkpoint_dir(run_dir) / "best"
    best.mkdir(parents=True, exist_ok=True)
    tmp = best / f".{CODEC_FILE}.tmp"
    shutil.copyfile(ckpt / CODEC_FILE, tmp)
    tmp.replace(best / CODEC_FILE)
    atomic_write_text(best / "source.json", json.dumps({"checkpoint": ckpt.name}))
    return best
