"""Safe checkpoint files: safetensors for tensors, JSON/YAML for everything else, atomic writes.

Nothing here unpickles anything. A codec file (`codec.safetensors`) carries the codec weights
and, in the safetensors metadata, the resolved config (YAML) and a JSON `meta` block (model
hash, sample rate, frame rate, K, max n_q, package version).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError

CODEC_FILE = "codec.safetensors"
_EMPTY = "__empty__"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write a safetensors file (tensors made contiguous, CPU, unshared)."""
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    if not clean:  # safetensors cannot read back a file without tensors
        clean[_EMPTY] = torch.zeros(1)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file -> (tensors, metadata). Raises CheckpointError if unreadable."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            metadata = dict(f.metadata() or {})
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(
            f"cannot read checkpoint {path}: {str(e).splitlines()[0] if str(e) else e}"
        ) from e
    tensors.pop(_EMPTY, None)
    return tensors, metadata


def load_state_strict(module: torch.nn.Module, tensors: dict, source: Path | str) -> None:
    """`module.load_state_dict(tensors, strict=True)`, with a one-line CheckpointError."""
    try:
        module.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        first = [ln.strip() for ln in str(e).splitlines() if ln.strip()][1:2]
        raise CheckpointError(
            f"{source} does not match the model its config describes: "
            f"{first[0] if first else str(e)[:200]}"
        ) from e


def state_hash(state: dict[str, torch.Tensor]) -> str:
    """Stable short hash of a state dict (names, dtypes, shapes and bytes)."""
    h = hashlib.sha256()
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous().reshape(-1)
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(state[key].shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:16]


def find_codec_file(path: str | Path) -> Path:
    """Resolve a codec checkpoint from a file, a checkpoint folder or a training run folder.

    A run folder resolves to its best checkpoint if it has one, else its latest.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.is_file():
        return path
    if (path / CODEC_FILE).exists():
        return path / CODEC_FILE
    ckpts = path / "checkpoints"
    if ckpts.is_dir():
        if (ckpts / "best" / CODEC_FILE).exists():
            return ckpts / "best" / CODEC_FILE
        steps = sorted(p for p in ckpts.glob("step_*") if (p / CODEC_FILE).exists())
        if steps:
            return steps[-1] / CODEC_FILE
    raise CheckpointError(
        f"no {CODEC_FILE} in {path} (expected a checkpoint file, a checkpoint folder or a "
        "training run folder)"
    )


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
