"""Fine-tuning: start a new run from another run's weights, with parts of the codec frozen.

`init_weights` loads a codec (and the discriminators, when the source has them and they fit)
into the freshly built models of a new run: the optimizers, step, learning-rate schedule and data
position start afresh. The source is a codec file, a checkpoint folder or a run folder (its
best checkpoint when the checkpoint it was exported from still exists, for the discriminators;
else its latest). The new config must describe a model of the same shapes: the first tensor that
differs is named in the error.

`freeze` keeps parts of the codec exactly as loaded (``train.freeze: [encoder, quantizer]``):
their parameters get no gradients, and a frozen quantizer's codebook updates (EMA, dead-code
re-seeding, k-means) are undone after every forward pass, so it still applies quantizer dropout
(the decoder keeps learning every bitrate) but never changes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import yaml
from torch import nn

from ..checkpoint import CODEC_FILE, load_tensors, read_json
from ..config import Config, _merge, from_dict, parse_override
from ..errors import CheckpointError, ConfigError
from ..model.codec import Codec
from ..pretrained import is_model_name, resolve, resolve_discriminator

FREEZABLE = ("encoder", "quantizer", "decoder")
DISC_FILE = "discriminator.safetensors"


@dataclass
class InitSource:
    """The files a run is initialised from."""

    codec_file: Path
    discriminator_file: Path | None


def resolve_init_source(path: str | Path) -> InitSource:
    """Find the codec (and discriminator) files of a codec file, checkpoint or run folder.

    Raises:
        CheckpointError: nothing usable at `path`.
    """
    if is_model_name(path):  # a shipped model (`pretrained`), e.g. te-small
        return InitSource(resolve(str(path)), resolve_discriminator(str(path)))
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")

    def in_folder(folder: Path) -> InitSource:
        disc = folder / DISC_FILE
        return InitSource(folder / CODEC_FILE, disc if disc.is_file() else None)

    if path.is_file():
        disc = path.parent / DISC_FILE
        sibling = path.name == CODEC_FILE and disc.is_file()
        return InitSource(path, disc if sibling else None)
    if (path / CODEC_FILE).is_file():
        return in_folder(path)
    ckpts = path / "checkpoints"
    steps = sorted(p for p in ckpts.glob("step_*") if (p / CODEC_FILE).is_file())
    best = ckpts / "best"
    if (best / CODEC_FILE).is_file():
        try:
            origin = ckpts / str(read_json(best / "source.json")["checkpoint"])
        except (CheckpointError, KeyError, TypeError):
            origin = None
        if origin is not None and (origin / CODEC_FILE).is_file():
            return in_folder(origin)
        return in_folder(best)
    if steps:
        return in_folder(steps[-1])
    raise CheckpointError(
        f"no {CODEC_FILE} in {path} (expected a codec file, a checkpoint folder or a training "
        "run folder)"
    )


def first_mismatch(model: dict[str, torch.Tensor], loaded: dict[str, torch.Tensor]) -> str | None:
    """The first difference between a model's state dict and loaded tensors, in the model's
    order, as a phrase; None when every name and shape agrees."""
    for name, t in model.items():
        if name not in loaded:
            return f"{name} is missing from the checkpoint"
        if tuple(loaded[name].shape) != tuple(t.shape):
            return (
                f"{name} is {tuple(loaded[name].shape)} in the checkpoint and "
                f"{tuple(t.shape)} in this model"
            )
    extra = sorted(set(loaded) - set(model))
    if extra:
        return f"the checkpoint has {extra[0]}, which this model lacks"
    return None


def _source_rate(metadata: dict[str, str]) -> int | None:
    try:
        return int(yaml.safe_load(metadata["config"])["model"]["sample_rate"])
    except (KeyError, TypeError, ValueError, yaml.YAMLError):
        return None


def init_weights(
    codec: Codec,
    disc: nn.Module | None,
    source: str | Path,
    log: Callable[[str], None] = print,
) -> InitSource:
    """Load `source`'s codec weights (and its discriminators when present and fitting).

    Raises:
        CheckpointError: the source's codec does not fit `codec` (the first mismatching tensor
            is named) or was trained at another sample rate.
    """
    src = resolve_init_source(source)
    tensors, metadata = load_tensors(src.codec_file)
    rate = _source_rate(metadata)
    if rate is not None and rate != codec.sample_rate:
        raise CheckpointError(
            f"{src.codec_file} is a {rate} Hz codec but this config's model is "
            f"{codec.sample_rate} Hz; set model.sample_rate={rate}"
        )
    problem = first_mismatch(codec.state_dict(), tensors)
    if problem is not None:
        raise CheckpointError(
            f"{src.codec_file} does not fit this config's model: {problem}; leave out --config "
            "to use the checkpoint's own, or change the model overrides"
        )
    codec.load_state_dict(tensors, strict=True)
    codec._hash = None  # weights changed: the hash is computed again when asked
    loaded = "codec"
    if disc is not None and src.discriminator_file is not None:
        d_tensors, _ = load_tensors(src.discriminator_file)
        d_problem = first_mismatch(disc.state_dict(), d_tensors)
        if d_problem is None:
            disc.load_state_dict(d_tensors, strict=True)
            loaded = "codec and discriminators"
        else:
            log(f"note: discriminators start afresh: they do not fit ({d_problem})")
    where = src.codec_file if loaded == "codec" else src.codec_file.parent
    if is_model_name(source):  # the shipped file's folder holds every model: name it
        where = f"the pretrained {source} ({src.codec_file})"
    log(f"initialised {loaded} from {where}")
    return src


def freeze(codec: Codec, parts: tuple[str, ...] | list[str]) -> list[str]:
    """Keep `parts` of the codec as they are (see the module docstring). Returns the parts.

    Raises:
        ConfigError: an unknown part name.
    """
    for part in parts:
        if part not in FREEZABLE:
            raise ConfigError(
                f"train.freeze: unknown part '{part}' (choose from {', '.join(FREEZABLE)})"
            )
        module = getattr(codec, part)
        module.requires_grad_(False)
        if part == "quantizer":
            _undo_state_changes(module)
    return list(parts)


def _undo_state_changes(module: nn.Module) -> None:
    """Restore every parameter and buffer of `module` after each forward pass."""
    saved: dict[str, torch.Tensor] = {}

    def before(mod: nn.Module, _args: tuple) -> None:
        saved.clear()
        saved.update({k: v.detach().clone() for k, v in mod.state_dict().items()})

    def after(mod: nn.Module, _args: tuple, _out: object) -> None:
        with torch.no_grad():
            for k, v in mod.state_dict().items():
                v.copy_(saved[k])

    module.register_forward_pre_hook(before)
    module.register_forward_hook(after)


def source_config(source: str | Path, overrides: list[str] | None = None) -> Config:
    """The config stored with `source`'s codec, as the base of a fine-tuning run: its model,
    losses and training settings, without its own init_from / freeze / data sources, then
    `overrides`."""
    src = resolve_init_source(source)
    _, metadata = load_tensors(src.codec_file)
    try:
        data = yaml.safe_load(metadata["config"])
    except (KeyError, yaml.YAMLError) as e:
        raise CheckpointError(f"{src.codec_file} carries no config") from e
    data.setdefault("train", {}).update(init_from="", freeze=[])
    data.setdefault("data", {})["sources"] = []
    for text in overrides or []:
        data = _merge(data, parse_override(text))
    return from_dict(data)


def codec_from(source: str | Path, config: Config | None = None) -> Codec:
    """A codec with `source`'s weights: its own model, or `config`'s (shapes checked)."""
    if config is None:
        return Codec.load(resolve_init_source(source).codec_file)
    codec = Codec(config.model, config)
    init_weights(codec, None, source, log=lambda _m: None)
    return codec
