"""checkpoint.py and `Codec.load`: what is on disk is verified, never trusted.

A bit flipped on disk, NaN weights or a config that is not a plain YAML mapping are refused
with one-line errors; a write that fails (disk full) says so and leaves nothing behind.
"""

from __future__ import annotations

import errno
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from telugu_codec import checkpoint
from telugu_codec.checkpoint import CHECKSUM_KEY, load_tensors, save_tensors
from telugu_codec.errors import CheckpointError, StorageError
from telugu_codec.model.codec import Codec, build_codec


def _saved(tmp_path: Path, cfg) -> Path:
    return build_codec(cfg).save(tmp_path / "c")


def _metadata(path: Path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as f:
        return dict(f.metadata())


def _flip_a_weight_bit(path: Path) -> None:
    data = bytearray(path.read_bytes())
    header = int.from_bytes(data[:8], "little")
    data[8 + header + 101] ^= 0x04  # inside the tensor bytes, after the JSON header
    path.write_bytes(bytes(data))


def test_a_bit_flipped_on_disk_is_refused(tmp_path, tiny_config):
    path = _saved(tmp_path, tiny_config)
    Codec.load(path)  # intact: loads
    _flip_a_weight_bit(path)
    with pytest.raises(CheckpointError, match="corrupt"):
        Codec.load(path)


def test_the_model_hash_is_recomputed_not_trusted(tmp_path, tiny_config):
    """A file from before the content checksum: its stored model hash is checked on load."""
    path = _saved(tmp_path, tiny_config)
    meta = _metadata(path)
    meta.pop(CHECKSUM_KEY)
    tensors = load_file(str(path))
    name = next(k for k, v in tensors.items() if v.is_floating_point() and v.numel() > 4)
    tensors[name].view(-1)[3] += 0.25
    save_file(tensors, str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="hash"):
        Codec.load(path)


def test_non_finite_weights_are_refused(tmp_path, tiny_config):
    codec = build_codec(tiny_config)
    with torch.no_grad():
        next(codec.parameters()).view(-1)[0] = math.nan
    path = codec.save(tmp_path / "c")  # hash and checksum are consistent with the NaN
    with pytest.raises(CheckpointError, match="NaN"):
        Codec.load(path)


@pytest.mark.parametrize(
    "config_text",
    ["just a string", "- 1\n- 2\n", "!!python/object/apply:os.system ['echo pwned']"],
    ids=["scalar", "list", "python-tag"],
)
def test_a_config_that_is_not_a_plain_mapping_is_refused(tmp_path, tiny_config, config_text):
    path = _saved(tmp_path, tiny_config)
    meta = _metadata(path)
    meta["config"] = config_text
    save_file(load_file(str(path)), str(path), metadata=meta)
    with pytest.raises(CheckpointError, match="config"):
        Codec.load(path)


def _disk_full(tensors, filename, metadata=None):  # noqa: ARG001
    Path(filename).write_bytes(b"\0" * 100)  # a partial file, as a full disk leaves
    raise OSError(errno.ENOSPC, "No space left on device")


def test_disk_full_while_saving_tensors_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint, "save_file", _disk_full)
    with pytest.raises(StorageError, match="disk is full"):
        save_tensors(tmp_path / "a.safetensors", {"w": torch.ones(4)}, {})
    assert list(tmp_path.iterdir()) == []


def test_disk_full_in_an_atomic_write_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_text("old")

    def fsync(_fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", fsync)
    with pytest.raises(StorageError, match="disk is full"):
        checkpoint.atomic_write_text(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_checksum_round_trip(tmp_path):
    save_tensors(tmp_path / "a.safetensors", {"w": torch.arange(6.0)}, {"x": "1"})
    tensors, meta = load_tensors(tmp_path / "a.safetensors")
    assert torch.equal(tensors["w"], torch.arange(6.0)) and meta["x"] == "1"


def test_a_run_folder_resolves_to_the_newest_checkpoint_after_a_rollback(tmp_path):
    """After rolling back from step 5 to 2, the run's step 3 is newer than the rejected 5."""
    import json

    from telugu_codec.checkpoint import CODEC_FILE, find_codec_file

    for step, rollbacks in ((2, 0), (5, 0), (3, 1)):
        ckpt = tmp_path / "checkpoints" / f"step_{step:08d}"
        ckpt.mkdir(parents=True)
        (ckpt / CODEC_FILE).write_bytes(b"")
        (ckpt / "state.json").write_text(json.dumps({"step": step, "rollbacks": rollbacks}))
    assert find_codec_file(tmp_path).parent.name == "step_00000003"
