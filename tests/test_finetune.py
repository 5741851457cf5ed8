"""train/finetune.py, `train --init-from` and `init --from`: fine-tuning from a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from telugu_codec.cli import main
from telugu_codec.config import load_config
from telugu_codec.errors import CheckpointError
from telugu_codec.model.codec import Codec
from telugu_codec.train.finetune import resolve_init_source
from telugu_codec.train.trainer import Trainer

from .conftest import speechlike
from .test_trainer import TRAIN_OVERRIDES

# EMA codebooks that update from the first step (no k-means warm-up): freezing must undo that
BASE = TRAIN_OVERRIDES + ["model.quantizer.kmeans_init=false", "train.val_every=2"]


def make(run_dir: Path, data: Path, *extra: str) -> Trainer:
    cfg = load_config(None, BASE + list(extra))
    return Trainer(cfg, run_dir, data, progress=False, tensorboard=False, log=lambda _m: None)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, Path]:
    """(data folder, a run trained for 2 steps)."""
    base = tmp_path_factory.mktemp("ft")
    data = base / "data"
    data.mkdir()
    for i in range(6):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    make(base / "src", data).train(2)
    return data, base / "src"


def part(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if k.startswith(prefix)}


def test_init_from_gives_the_source_weights_at_step_0(source, tmp_path):
    data, src = source
    files = resolve_init_source(src)
    assert files.discriminator_file is not None  # a run resolves to a full checkpoint
    t = make(tmp_path / "ft", data, f"train.init_from={src}")
    assert t.state.step == 0
    want = load_file(str(files.codec_file))
    got = t.codec.state_dict()
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    d_want = load_file(str(files.discriminator_file))
    assert all(torch.equal(d_want[k], v) for k, v in t.disc.state_dict().items())
    t.train(1)  # fresh optimizers: the step-0 checkpoint is the source, and training moves on
    step0 = load_file(str(tmp_path / "ft/checkpoints/step_00000000/codec.safetensors"))
    assert all(torch.equal(want[k], step0[k]) for k in want)


def test_frozen_encoder_and_quantizer_do_not_change(source, tmp_path):
    data, src = source
    want = load_file(str(resolve_init_source(src).codec_file))
    t = make(tmp_path / "ft", data, f"train.init_from={src}", "train.freeze=[encoder,quantizer]")
    t.train(2)
    after = load_file(str(tmp_path / "ft/checkpoints/step_00000002/codec.safetensors"))
    for prefix in ("encoder.", "quantizer."):
        frozen = part(after, prefix)
        assert frozen and all(torch.equal(want[k], v) for k, v in frozen.items()), prefix
    decoder = part(after, "decoder.")
    assert any(not torch.equal(want[k], v) for k, v in decoder.items())
    # without freezing, the EMA codebooks move in the same two steps
    u = make(tmp_path / "free", data, f"train.init_from={src}")
    u.train(2)
    moved = load_file(str(tmp_path / "free/checkpoints/step_00000002/codec.safetensors"))
    assert any(not torch.equal(want[k], v) for k, v in part(moved, "quantizer.").items())


def test_shape_mismatch_names_the_first_tensor(source, tmp_path):
    data, src = source
    with pytest.raises(CheckpointError, match=r"quantizer\.stages\.0\.embed is \(64, 16\)"):
        make(tmp_path / "x", data, f"train.init_from={src}", "model.quantizer.codebook_size=32")
    with pytest.raises(CheckpointError, match="16000 Hz"):
        make(tmp_path / "y", data, f"train.init_from={src}", "model.sample_rate=24000")


def test_cli_init_from_and_codec_only_export(source, tmp_path, capsys):
    data, src = source
    out = tmp_path / "te.safetensors"
    assert main(["init", "--from", str(src), "--out", str(out)]) == 0
    exported = load_file(str(out))
    want = load_file(str(resolve_init_source(src).codec_file))
    assert exported.keys() == want.keys() and all(torch.equal(want[k], exported[k]) for k in want)
    assert not any(k.startswith(("mpd", "mrd", "discriminators")) for k in exported)
    assert Codec.load(out).sample_rate == 16000
    bad = ["init", "--from", str(src), "--out", str(tmp_path / "b.safetensors"), "--config"]
    assert main([*bad, "tiny"]) == 2
    assert "does not fit this config's model: encoder" in capsys.readouterr().err
    # train --init-from without --config: the checkpoint's own config; a frozen quantizer
    run = tmp_path / "cli"
    args = ["train", "--init-from", str(src), "--data", str(data), "--out", str(run)]
    args += ["--max-steps", "1", "--no-progress", "--device", "cpu", "--freeze", "quantizer"]
    assert main(args) == 0
    cfg = load_config(run / "config.yaml")
    assert cfg.train.init_from == str(src) and cfg.train.freeze == ("quantizer",)
    assert cfg.model.quantizer.codebook_size == 64  # from the source run, not the default
