"""The shipped pretrained codecs (`telugu_codec.pretrained`): names resolve in the API and the
CLI, encode/decode default to them and say so, an altered file is refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from telugu_codec.checkpoint import find_codec_file
from telugu_codec.cli import main
from telugu_codec.errors import CheckpointError
from telugu_codec.model.codec import Codec
from telugu_codec.pretrained import (
    DEFAULT_MODEL,
    PACKAGE_DIR,
    REGISTRY_FILE,
    registry,
    resolve,
    sha256_file,
)
from telugu_codec.train.finetune import resolve_init_source

from .conftest import speechlike

SHIPPED = ("te-small", "te-small-stream")


def test_the_package_ships_both_models_each_within_20_mb():
    models = registry()
    assert set(SHIPPED) <= set(models)
    for name in SHIPPED:
        m = models[name]
        path = resolve(name)
        assert path.parent == PACKAGE_DIR
        assert path.stat().st_size <= 20e6, f"{name}: {path.stat().st_size / 1e6:.1f} MB"
        assert sha256_file(path) == m.sha256
    assert models["te-small-stream"].causal and not models["te-small"].causal


def test_names_resolve_in_the_api():
    for name in SHIPPED:
        codec = Codec.load(name)
        m = registry()[name]
        assert find_codec_file(name) == resolve(name)
        assert codec.model_hash == m.model_hash
        assert codec.num_parameters() == m.parameters
        assert codec.frame_rate == m.frame_rate
        assert codec.metadata()["parameters"] == m.parameters
    # fine-tuning from a name finds the codec and, where shipped, the discriminators
    src = resolve_init_source("te-small")
    assert src.codec_file == resolve("te-small")
    assert src.discriminator_file is None or src.discriminator_file.exists()


def test_a_path_named_like_a_model_is_a_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError, match="no codec.safetensors"):
        (tmp_path / DEFAULT_MODEL).mkdir()
        find_codec_file(DEFAULT_MODEL)


def _copy_models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(PACKAGE_DIR, root, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return root


def test_an_altered_shipped_file_is_refused(tmp_path, monkeypatch, capsys):
    root = _copy_models(tmp_path)
    monkeypatch.setenv("TELUGU_CODEC_MODELS_DIR", str(root))
    assert Codec.load("te-small").model_hash == registry()["te-small"].model_hash  # intact copy
    path = root / registry()["te-small"].file
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="was altered"):
        Codec.load("te-small")
    wav = tmp_path / "in.wav"
    sf.write(wav, speechlike(0.5), 16000)
    rc = main(["encode", str(wav), str(tmp_path / "a.tcc"), "--checkpoint", "te-small"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "was altered" in err[0]
    assert not (tmp_path / "a.tcc").exists()


def test_a_missing_or_unknown_model_is_one_line(tmp_path, monkeypatch, capsys):
    root = _copy_models(tmp_path)
    monkeypatch.setenv("TELUGU_CODEC_MODELS_DIR", str(root))
    (root / registry()["te-small-stream"].file).unlink()
    with pytest.raises(CheckpointError, match="is missing"):
        Codec.load("te-small-stream")
    (root / REGISTRY_FILE).unlink()
    wav = tmp_path / "in.wav"
    sf.write(wav, speechlike(0.5), 16000)
    rc = main(["encode", str(wav), str(tmp_path / "a.tcc")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and len(err) == 1 and "ships no pretrained te-small" in err[0]


def test_encode_and_decode_default_to_the_shipped_models(tmp_path, capsys):
    wav = tmp_path / "in.wav"
    sf.write(wav, speechlike(1.0), 16000)
    assert main(["encode", str(wav), str(tmp_path / "a.tcc"), "--bitrate", "3"]) == 0
    err = [ln for ln in capsys.readouterr().err.splitlines() if "pretrained" in ln]
    note = f"note: using the pretrained {DEFAULT_MODEL} (the default; --checkpoint picks another)"
    assert err == [note]
    stream = ["--checkpoint", "te-small-stream"]
    assert main(["encode", str(wav), str(tmp_path / "s.tcc"), *stream]) == 0
    capsys.readouterr()
    # decode picks the model whose weights encoded each file
    for tcc, name in (("a.tcc", "te-small"), ("s.tcc", "te-small-stream")):
        out = tmp_path / f"{name}.wav"
        assert main(["decode", str(tmp_path / tcc), str(out)]) == 0
        err = capsys.readouterr().err
        assert f"using the pretrained {name} (the shipped model that encoded it" in err
        audio, sr = sf.read(out)
        assert sr == 16000 and len(audio) == 16000 and np.isfinite(audio).all()
        direct = Codec.load(name).remove_weight_norm()
        from telugu_codec.bitstream import read_tcc

        expected = direct.decode(read_tcc(tmp_path / tcc)).numpy().reshape(-1)
        np.testing.assert_allclose(audio, expected, atol=1.0 / 32768 + 1e-6)


def test_models_lists_them(capsys):
    assert main(["models", "--verify"]) == 0
    out = capsys.readouterr().out
    for name in SHIPPED:
        assert name in out and f"verified: {resolve(name)}" in out
    assert f"{DEFAULT_MODEL}*" in out


def _bench(name: str):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_model_card_shows_the_committed_numbers():
    """docs/models.md's results, fine-tuning and training sections are exactly what the
    committed results files and models.json render to (no hand-edited number)."""
    import json

    card = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    bench = _bench("bench_pretrained")
    results = json.loads(bench.RESULTS.read_text())
    assert set(results["models"]) >= set(SHIPPED)
    for name in SHIPPED:  # measured on the shipped weights, not an earlier file
        assert results["models"][name]["model_hash"] == registry()[name].model_hash
    assert bench.card_section(results) in card
    assert bench.training_section() in card
    finetune = _bench("bench_finetune")
    assert finetune.card_section(json.loads(finetune.RESULTS.read_text())) in card
