"""ONNX export: onnxruntime matches PyTorch within 1e-4, offline and step by step."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from telugu_codec.config import load_config
from telugu_codec.model.codec import Codec, build_codec
from telugu_codec.model.export import export_onnx

from .conftest import TINY_OVERRIDES

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

CAUSAL = ["model.causal=true", "model.normalization=block", "model.norm_block_frames=2"]


def make_codec(*extra: str) -> Codec:
    codec = build_codec(load_config(None, TINY_OVERRIDES + list(extra)))
    codec.train()
    codec(torch.randn(2, 1, 3200) * 0.1)  # k-means initialises the codebooks
    return codec.eval()


def session(path):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), opts)


def run_steps(path, first: np.ndarray, chunks: list[slice], states: dict) -> np.ndarray:
    s = session(path)
    names = [i.name for i in s.get_inputs()]
    state = {n: np.zeros(shape, np.float32) for n, shape in states.items()}
    outs = []
    for sl in chunks:
        out = s.run(None, {names[0]: first[..., sl], **state})
        outs.append(out[0])
        state = dict(zip(names[1:], out[1:]))
    return np.concatenate(outs, axis=-1)


def reference(codec: Codec, audio: torch.Tensor, n_q: int):
    with torch.no_grad():
        codes = codec.quantizer.encode(codec.encoder(audio), n_q)
        return codes.numpy(), codec.decoder(codec.quantizer.decode(codes)).numpy()


@pytest.mark.parametrize("extra", [CAUSAL, []], ids=["causal", "non-causal"])
def test_onnx_matches_torch(tmp_path, extra):
    codec = make_codec(*extra)
    meta = export_onnx(codec, tmp_path, n_q=3, dynamo=False)
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1, 9 * 320)) * 0.1)
    audio = audio.float()
    codes, wav = reference(codec, audio, 3)
    got = session(tmp_path / "encoder.onnx").run(None, {"audio": audio.numpy()})[0]
    assert np.array_equal(got, codes)
    y = session(tmp_path / "decoder.onnx").run(None, {"codes": codes})[0]
    assert np.abs(y - wav).max() < 1e-4
    assert json.loads((tmp_path / "export.json").read_text())["n_q"] == 3
    if not codec.cfg.causal:
        assert set(meta["files"]) == {"encoder", "decoder"}
        return
    frames = [slice(0, 640), slice(640, 960), slice(960, 2880)]  # 2, 1 and 6 frames
    files = meta["files"]
    got = run_steps(
        tmp_path / "encoder_step.onnx", audio.numpy(), frames, files["encoder_step"]["states"]
    )
    assert np.array_equal(got, codes)
    y = run_steps(
        tmp_path / "decoder_step.onnx",
        codes,
        [slice(0, 4), slice(4, 5), slice(5, 9)],
        files["decoder_step"]["states"],
    )
    assert np.abs(y - wav).max() < 1e-4


@pytest.mark.slow
def test_dynamo_exported_step_matches_torch(tmp_path):
    # the default exporter (torch.export, ~20 s a graph here): the decoder step, which holds
    # every kind of op the graphs use (embedding, conv, sub-pixel interleave, Snake, state)
    codec = make_codec(*CAUSAL)
    meta = export_onnx(codec, tmp_path, parts=("decoder_step",))
    audio = (torch.randn(1, 1, 6 * 320) * 0.1).float()
    codes, wav = reference(codec, audio, codec.max_n_q)
    states = meta["files"]["decoder_step"]["states"]
    y = run_steps(tmp_path / "decoder_step.onnx", codes, [slice(0, 5), slice(5, 6)], states)
    assert np.abs(y - wav).max() < 1e-4


def test_export_cli(tmp_path):
    from telugu_codec.cli import main

    assert main(["init", "--out", str(tmp_path / "c"), *TINY_OVERRIDES, *CAUSAL]) == 0
    out = tmp_path / "onnx"
    args = ["export", "--onnx", str(out), "--checkpoint", str(tmp_path / "c"), "--torchscript"]
    assert main(args) == 0
    names = {p.name for p in out.iterdir()}
    assert names == {
        "encoder.onnx",
        "decoder.onnx",
        "encoder_step.onnx",
        "decoder_step.onnx",
        "export.json",
    }
