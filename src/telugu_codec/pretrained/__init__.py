"""Pretrained codecs shipped inside the package: `te-small` and `te-small-stream`.

Each is a codec file (`codec.safetensors` format: weights + config + metadata, see
`model/codec.py`) in this folder, listed in `models.json` with the SHA-256 of the whole file.
A name resolves to its file only after the file's bytes hash to the listed value, so a file
altered on disk (weights or metadata) is refused with one line; the codec's own model hash,
checked again by `Codec.load`, covers the weights a second time.

`models.json` is written by `scripts/publish_pretrained.py` from a training run; the model card
with each model's recipe, quality and limits is `docs/models.md`.

Names resolve wherever a checkpoint is accepted (`checkpoint.find_codec_file`):
``--checkpoint te-small``, ``Codec.load("te-small")``, ``train.init_from=te-small``; `encode`
and `decode` use `DEFAULT_MODEL` when no ``--checkpoint`` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CheckpointError

DEFAULT_MODEL = "te-small"
# the folder of the shipped files; TELUGU_CODEC_MODELS_DIR points elsewhere (tests, mirrors)
PACKAGE_DIR = Path(__file__).resolve().parent
REGISTRY_FILE = "models.json"


@dataclass(frozen=True)
class PretrainedModel:
    """One shipped codec, as `models.json` lists it.

    Attributes:
        name: what users type (``te-small``).
        file: the codec file's name in the models folder.
        sha256: hex SHA-256 of the file's bytes.
        model_hash: the codec's weight hash (`checkpoint.state_hash`), also in .tcc headers.
        preset: the config preset it was trained from.
        causal: streams with no look-ahead beyond its frame.
        description: one line.
        parameters: codec parameters.
        frame_rate: frames per second.
        kbps: nominal bitrate (kbps, side channels included) for 1 .. max codebooks.
        latency_ms: algorithmic latency of the streaming path (None: not a streaming model).
        training: how it was trained (steps, CPU-hours, data), for `models` and the card.
        discriminator: its discriminators' file (for fine-tuning with the GAN), or "".
        discriminator_sha256: that file's SHA-256.
    """

    name: str
    file: str
    sha256: str
    model_hash: str
    preset: str
    causal: bool
    description: str
    parameters: int
    frame_rate: float
    kbps: list[float]
    latency_ms: float | None = None
    training: dict = field(default_factory=dict)
    discriminator: str = ""
    discriminator_sha256: str = ""

    def path(self, root: Path | None = None) -> Path:
        return (root or models_dir()) / self.file


def models_dir() -> Path:
    """The folder holding `models.json` and the files."""
    env = os.environ.get("TELUGU_CODEC_MODELS_DIR")
    return Path(env) if env else PACKAGE_DIR


def registry(root: Path | None = None) -> dict[str, PretrainedModel]:
    """Every shipped model by name ({} when this install ships none)."""
    file = (root or models_dir()) / REGISTRY_FILE
    if not file.exists():
        return {}
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
        return {e["name"]: PretrainedModel(**e) for e in entries["models"]}
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{file} is not a valid model list ({e})") from e


def is_model_name(text: str | Path) -> bool:
    """True when `text` names a shipped model (and is not a path that exists)."""
    s = str(text)
    return not Path(s).exists() and s in registry()


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verified(name: str, path: Path, sha256: str) -> Path:
    if not path.exists():
        raise CheckpointError(f"pretrained model '{name}': its file {path} is missing")
    actual = sha256_file(path)
    if actual != sha256:
        raise CheckpointError(
            f"pretrained model '{name}' was altered: {path} hashes to {actual[:16]}..., not the "
            f"shipped {sha256[:16]}...; reinstall telugu-codec"
        )
    return path


def get(name: str, root: Path | None = None) -> PretrainedModel:
    """The registry entry of `name` (CheckpointError naming the shipped ones if unknown)."""
    models = registry(root)
    if name not in models:
        known = ", ".join(sorted(models)) or "none in this install"
        raise CheckpointError(f"no pretrained model named '{name}' (shipped: {known})")
    return models[name]


def resolve(name: str, root: Path | None = None) -> Path:
    """The verified codec file of the shipped model `name`.

    Raises:
        CheckpointError: unknown name, file missing, or its bytes differ from the listed hash.
    """
    model = get(name, root)
    return _verified(name, model.path(root), model.sha256)


def resolve_discriminator(name: str, root: Path | None = None) -> Path | None:
    """The verified discriminator file of `name`, or None when it ships without one."""
    model = get(name, root)
    if not model.discriminator:
        return None
    path = (root or models_dir()) / model.discriminator
    return _verified(name, path, model.discriminator_sha256)


def by_model_hash(stream_hash: str) -> str | None:
    """The name of the shipped model whose weight hash begins with `stream_hash` (a .tcc
    header's, possibly shortened), if any."""
    for name, m in registry().items():
        if stream_hash and m.model_hash.startswith(stream_hash):
            return name
    return None
