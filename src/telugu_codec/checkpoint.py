"""Safe checkpoint files: safetensors for tensors, JSON/YAML for everything else, atomic writes.

Nothing here unpickles anything. A codec file (`codec.safetensors`) carries the codec weights
and, in the safetensors metadata, the resolved config (YAML) and a JSON `meta` block (model
hash, sample rate, frame rate, K, max n_q, package version).

Every safetensors file written here also carries ``sha256``, the `state_hash` of the tensors it
holds, and `load_tensors` refuses a file whose tensors no longer match it (a bit flipped on
disk would otherwise load and decode silently wrong). A write that fails (disk full) raises a
one-line `StorageError` and leaves nothing behind.
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

from .errors import CheckpointError, CodecError, StorageError
from .pretrained import is_model_name, resolve

CODEC_FILE = "codec.safetensors"
CHECKSUM_KEY = "sha256"  # safetensors metadata: state_hash of the file's tensors
_EMPTY = "__empty__"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder + fsync + rename: never a half-written file."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise StorageError.writing(path, e) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        raise StorageError.writing(path, e) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_output_dir(path: str | Path) -> None:
    """A one-line error if `path` cannot become a folder: it, or the first of its parents that
    exists, is a file."""
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise CodecError(f"cannot use {path} as an output folder: {p} is a file")
            break


def make_output_dir(path: str | Path) -> Path:
    """Create an output folder (and its parents); a one-line error if a file is in the way."""
    path = Path(path)
    check_output_dir(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StorageError.writing(path, e) from e
    return path


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Atomically write a safetensors file (tensors made contiguous, CPU, unshared).

    The metadata gains ``sha256``: the `state_hash` of the tensors, checked by `load_tensors`.

    Raises:
        StorageError: the file could not be written (disk full, ...); no file is left behind.
    """
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    if not clean:  # safetensors cannot read back a file without tensors
        clean[_EMPTY] = torch.zeros(1)
    metadata = dict(metadata, **{CHECKSUM_KEY: state_hash(clean)})
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise StorageError.writing(path, e) from e
    os.close(fd)
    try:
        save_file(clean, tmp, metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as e:
        raise StorageError.writing(path, e) from e
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
    stored = metadata.get(CHECKSUM_KEY)
    if stored is not None and state_hash(tensors) != stored:
        raise CheckpointError(
            f"{path} is corrupt: its tensors do not match the checksum stored with them "
            "(the file changed on disk); use another checkpoint"
        )
    tensors.pop(_EMPTY, None)
    return tensors, metadata


def check_finite(tensors: dict[str, torch.Tensor], source: Path | str) -> None:
    """Refuse weights holding NaN or infinity (they decode to NaN audio)."""
    for name, t in tensors.items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            raise CheckpointError(
                f"{source} holds NaN or infinite weights ({name}); use an earlier checkpoint"
            )


def codec_config(metadata: dict[str, str], source: Path | str) -> Any:
    """The resolved `Config` stored in a codec file's metadata (plain YAML, a mapping).

    Raises:
        CheckpointError: no telugu-codec metadata, YAML that is not plain (a ``!!python`` tag),
            not a mapping, or a config this version cannot use.
    """
    import yaml

    from .config import from_dict

    if metadata.get("format") != "telugu-codec" or "config" not in metadata:
        raise CheckpointError(f"{source} is not a telugu-codec checkpoint (no codec metadata)")
    try:
        data = yaml.safe_load(metadata["config"])
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{source}: its config is not plain YAML ({first})") from e
    if not isinstance(data, dict):
        raise CheckpointError(f"{source}: its config is not a mapping of keys to values")
    try:
        return from_dict(data)
    except CodecError as e:
        raise CheckpointError(f"{source}: its config does not fit this version: {e}") from e


def codec_meta(metadata: dict[str, str], source: Path | str) -> dict[str, Any]:
    """The JSON `meta` block of a codec file ({} when absent)."""
    try:
        meta = json.loads(metadata.get("meta", "{}"))
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{source}: its metadata is not valid JSON ({e})") from e
    if not isinstance(meta, dict):
        raise CheckpointError(f"{source}: its metadata is not a JSON object")
    return meta


def verify_model_hash(tensors: dict[str, torch.Tensor], meta: dict, source: Path | str) -> str:
    """Recompute the model hash of `tensors`; refuse them if it differs from the stored one.

    Returns:
        The model hash.
    """
    actual = state_hash(tensors)
    stored = meta.get("model_hash")
    if stored and stored != actual:
        raise CheckpointError(
            f"{source} is corrupt: its weights hash to {actual}, not the {stored} stored with "
            "them (the file changed on disk); use another checkpoint"
        )
    return actual


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
        if t.numel():
            h.update(t.view(torch.uint8).numpy())
    return h.hexdigest()[:16]


def find_codec_file(path: str | Path) -> Path:
    """Resolve a codec checkpoint from a file, a checkpoint folder or a training run folder.

    A run folder resolves to its best checkpoint if it has one, else its latest by
    (rollbacks, step), as `train.checkpoints.latest_checkpoint` orders them. The name of a
    shipped pretrained model (`pretrained`, e.g. ``te-small``) resolves to its verified file
    unless a path of that name exists.
    """
    if is_model_name(path):
        return resolve(str(path))
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
        steps = sorted(
            (_rollbacks(p), p.name, p) for p in ckpts.glob("step_*") if (p / CODEC_FILE).exists()
        )
        if steps:
            return steps[-1][2] / CODEC_FILE
    raise CheckpointError(
        f"no {CODEC_FILE} in {path} (expected a checkpoint file, a checkpoint folder or a "
        "training run folder)"
    )


def _rollbacks(ckpt: Path) -> int:
    """How many rollbacks a training checkpoint's run had made (-1 if it cannot be read)."""
    try:
        return int(json.loads((ckpt / "state.json").read_text()).get("rollbacks", 0))
    except (OSError, ValueError, TypeError, AttributeError):
        return -1


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"cannot read {path}: {e}") from e
