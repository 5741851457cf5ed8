"""`detokenize`: tokens from a shard row, ``.npy``, ``.npz`` or ``.pt`` file -> audio.

`load_tokens` reads what the user gives (never with pickle: ``np.load(allow_pickle=False)``,
``torch.load(weights_only=True)``), `sanitize` makes codes of it, `decode_tokens` runs the
decoder. Token files hold raw codes (n_q, F) (``codes`` and ``pitch`` arrays in an ``.npz`` or
a ``.pt`` dict), or LM ids (with a vocab spec and a layout). Tokens carry no loudness, so the
audio comes out at the level the codec normalises to.
"""

from __future__ import annotations

import math
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import CodecError
from .shards import read_row

_ROW = re.compile(r"^(.*\.(?:parquet|tar))#(\d+)$")


@dataclass
class LoadedTokens:
    """Tokens as read: `tokens` (codes or ids), `pitch` where given, the codec hash when the
    source names one (a shard), and a label for messages."""

    tokens: np.ndarray
    pitch: np.ndarray | None
    codec_hash: str | None
    label: str


def _from_torch(path: Path) -> tuple[object, object | None]:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad or unsafe files
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CodecError(f"cannot read {path} as a tensor file ({msg[:200]})") from e
    if isinstance(obj, dict):
        if "codes" not in obj and "ids" not in obj:
            raise CodecError(f"{path} holds a dict without 'codes' or 'ids'")
        return obj.get("codes", obj.get("ids")), obj.get("pitch")
    return obj, None


def _as_numpy(x: object, path: Path) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if isinstance(x, (list, tuple, np.ndarray)):
        return np.asarray(x)
    raise CodecError(f"{path} holds {type(x).__name__}, not an array of tokens")


def load_tokens(spec: str, row: int | None = None) -> LoadedTokens:
    """Read tokens from ``SHARD#ROW`` (or SHARD with `row`), ``.npy``, ``.npz`` or ``.pt``.

    Raises:
        CodecError: a missing or unreadable file, no such row, an unknown kind of file.
    """
    m = _ROW.match(spec)
    if m:
        path, row = Path(m.group(1)), int(m.group(2))
    else:
        path = Path(spec)
    if not path.is_file():
        raise CodecError(f"tokens file not found: {path}")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".tar"):
        if row is None:
            raise CodecError(f"say which row of {path}: {path}#ROW or --row ROW")
        meta, r = read_row(path, row)
        return LoadedTokens(r.codes, r.pitch, meta.codec_hash, f"{path}#{row}")
    if row is not None:
        raise CodecError("--row is for token shards (.parquet, .tar), not for array files")
    pitch = None
    try:
        if suffix == ".npy":
            tokens = np.load(path, allow_pickle=False)
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                key = "codes" if "codes" in z.files else "ids" if "ids" in z.files else None
                if key is None:
                    raise CodecError(f"{path} has no 'codes' or 'ids' array (has {z.files})")
                tokens, pitch = z[key], z["pitch"] if "pitch" in z.files else None
        elif suffix in (".pt", ".pth"):
            t, p = _from_torch(path)
            tokens, pitch = _as_numpy(t, path), None if p is None else _as_numpy(p, path)
        else:
            raise CodecError(
                f"{path}: tokens come as SHARD.parquet#ROW, SHARD.tar#ROW, .npy, .npz or .pt"
            )
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise CodecError(f"cannot read tokens from {path}: {str(e).splitlines()[0]}") from e
    return LoadedTokens(np.asarray(tokens), pitch, None, str(path))


def decode_tokens(codec, codes: np.ndarray, pitch: np.ndarray | None) -> torch.Tensor:
    """Sanitized (n_q, F) codes [+ (F,) pitch] -> (F * hop,) float32 audio at unit gain."""
    device = next(codec.parameters()).device
    c = torch.as_tensor(np.asarray(codes, dtype=np.int64), device=device)[None]
    frames = c.shape[-1]
    if codec.normalization == "block":  # gain code 0 everywhere: 0 dB
        side = torch.zeros(1, math.ceil(frames / codec.cfg.norm_block_frames), dtype=torch.long)
    else:
        side = torch.ones(1)
    p = None
    if codec.has_pitch:
        p = torch.as_tensor(np.asarray(pitch, dtype=np.int64), device=device)[None]
    with torch.inference_mode():
        y = codec.decode_codes(c, frames * codec.hop_length, side.to(device), p)
    return y[0, 0].float().cpu()
