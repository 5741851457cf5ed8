"""tokens/tokenize.py: a corpus -> token shards equal to single-file encoding, resumable,
split over ranks, skipping and listing bad files, refusing another codec's folder."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from telugu_codec.audio import load_audio
from telugu_codec.bitstream import read_tcc
from telugu_codec.data.prepare import prepare
from telugu_codec.errors import CodecError
from telugu_codec.stream_io import encode_file
from telugu_codec.tokens.shards import read_meta, read_shard
from telugu_codec.tokens.tokenize import buckets, merge, tokenize

from .tokens_helpers import BAD, GOOD, load, make_corpus, tiny_codec_file

ROOT = Path(__file__).resolve().parent.parent


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("tok")
    corpus = make_corpus(root / "corpus")
    ckpt = tiny_codec_file(root / "tiny.safetensors")
    codec = load(ckpt)
    ref = root / "ref"
    tokenize(codec, [str(corpus)], ref, shard_items=3, batch_seconds=0.5, log=quiet)
    return {"root": root, "corpus": corpus, "ckpt": ckpt, "codec": codec, "ref": ref}


def _rows(folder: Path) -> list:
    rows = []
    for f in sorted(folder.glob("tokens-*")):
        if f.stat().st_size:
            rows += read_shard(f)[1]
    return rows


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_tokenize_equals_encode_for_every_file(env, tmp_path):
    codec, rows = env["codec"], _rows(env["ref"])
    assert sorted(Path(r.path).relative_to(env["corpus"]).as_posix() for r in rows) == sorted(GOOD)
    for r in rows:
        wav = load_audio(r.path, codec.sample_rate).wav
        encode_file(codec, r.path, tmp_path / "x.tcc")  # what `telugu-codec encode` writes
        tcc = read_tcc(tmp_path / "x.tcc")
        assert r.codes.dtype == np.uint16
        np.testing.assert_array_equal(r.codes, tcc.codes)
        np.testing.assert_array_equal(r.codes, codec.encode(wav, codec.sample_rate).codes)
        assert r.n_frames == math.ceil(len(wav) / codec.hop_length)  # the documented rule
        assert r.duration == pytest.approx(len(wav) / codec.sample_rate, abs=1e-6)


def test_parquet_schema_and_metadata_read_with_pyarrow(env):
    pq = pytest.importorskip("pyarrow.parquet")
    file = env["ref"] / "tokens-000000.parquet"
    table = pq.read_table(file)
    assert table.column_names == ["codes", "n_frames", "path", "duration", "speaker"]
    assert str(table.schema.field("codes").type) == "list<element: list<element: uint16>>"
    meta = json.loads(table.schema.metadata[b"telugu_codec"])
    codec = env["codec"]
    assert meta["codec_hash"] == codec.model_hash and meta["n_q"] == codec.max_n_q
    assert meta["codebook_size"] == codec.codebook_size
    assert meta["frame_rate"] == codec.frame_rate and "model:" in meta["config"]
    first = table.slice(0, 1).to_pylist()[0]
    assert len(first["codes"]) == codec.max_n_q and len(first["codes"][0]) == first["n_frames"]


def test_hf_datasets_loads_the_shards(env):
    datasets = pytest.importorskip("datasets")
    files = sorted(str(p) for p in env["ref"].glob("tokens-*.parquet"))
    ds = datasets.load_dataset("parquet", data_files=files, split="train")
    rows = _rows(env["ref"])
    assert len(ds) == len(rows)
    np.testing.assert_array_equal(np.array(ds[0]["codes"]), rows[0].codes)


def test_bad_files_skipped_and_listed_nothing_lost(env):
    index = json.loads((env["ref"] / "index.json").read_text())
    skipped = json.loads((env["ref"] / "skipped.json").read_text())
    assert sorted(Path(s["path"]).relative_to(env["corpus"]).as_posix() for s in skipped) == sorted(
        BAD
    )
    assert all(s["reason"] for s in skipped)
    assert index["rows"] == len(GOOD) and index["rows"] + index["skipped"] == index["items"]


def test_buckets_sort_by_length_and_bound_padding():
    lengths = {0: 50, 1: 10, 2: 30, 3: 10, 4: 200}
    got = buckets(lengths, 60)
    assert got == [[1, 3], [2], [0], [4]]  # a third item of 30 would pad to 90 > 60
    assert [i for b in got for i in b] == sorted(lengths, key=lambda i: (lengths[i], i))
    assert all(len(b) * max(lengths[i] for i in b) <= 60 or len(b) == 1 for b in got)


def test_resume_after_stopping_gives_the_same_bytes(env, tmp_path):
    out = tmp_path / "run"
    args = ([str(env["corpus"])], out)
    kw = {"shard_items": 3, "batch_seconds": 0.5, "log": quiet}
    first = tokenize(env["codec"], *args, stop_after=1, **kw)
    assert first.shards_written == 1 and first.index is None
    assert not (out / "index.json").exists()
    # a kill while writing shard 1 left its temporary file behind
    (out / ".tokens-000001.parquet.tmp").write_bytes(b"half a shard")
    second = tokenize(env["codec"], *args, **kw)
    assert second.shards_resumed == 1 and second.shards_written == 3  # 10 items: 4 shards
    ref = _files(env["ref"])
    got = {k: v for k, v in _files(out).items() if not k.endswith(".tmp")}
    assert got == ref


KILLER = """
import os, signal, sys
import torch
torch.set_num_threads(1)
from telugu_codec.model.codec import Codec
from telugu_codec.tokens.tokenize import tokenize
calls = 0
def log(line):  # SIGKILL this process at its N-th progress line: mid-shard or between shards
    global calls
    calls += 1
    if calls == int(sys.argv[4]):
        os.kill(os.getpid(), signal.SIGKILL)
codec = Codec.load(sys.argv[3]).remove_weight_norm()
tokenize(codec, [sys.argv[1]], sys.argv[2], shard_items=3, batch_seconds=0.5, log=log)
"""


@pytest.mark.parametrize("at", [2, 4])
def test_resume_after_a_real_kill(env, tmp_path, at):
    """A process SIGKILLed mid-run resumes to the bytes of an uninterrupted run."""
    out = tmp_path / "killed"
    cmd = [sys.executable, "-c", KILLER, str(env["corpus"]), str(out), str(env["ckpt"])]
    pyenv = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    r = subprocess.run(cmd + [str(at)], env=pyenv, capture_output=True)
    assert r.returncode == -signal.SIGKILL
    assert not (out / "index.json").exists()
    tokenize(env["codec"], [str(env["corpus"])], out, shard_items=3, batch_seconds=0.5, log=quiet)
    got = {k: v for k, v in _files(out).items() if not k.endswith(".tmp")}
    assert got == _files(env["ref"])


def test_ranks_write_disjoint_shards_and_one_index(env, tmp_path):
    out = tmp_path / "ranks"
    kw = {"shard_items": 3, "batch_seconds": 0.5, "log": quiet, "world_size": 2}
    r1 = tokenize(env["codec"], [str(env["corpus"])], out, rank=1, **kw)
    assert r1.index is None and sorted(p.name for p in out.glob("tokens-*")) == [
        "tokens-000001.parquet",
        "tokens-000003.parquet",
    ]
    r0 = tokenize(env["codec"], [str(env["corpus"])], out, rank=0, **kw)
    assert r0.shards_written == 2 and r0.index is not None
    ref = _files(env["ref"])
    assert {k: v for k, v in _files(out).items()} == ref
    assert merge(out, log=quiet) == json.loads((env["ref"] / "index.json").read_text())


def test_another_codec_or_other_settings_refused(env, tmp_path):
    other = load(tiny_codec_file(tmp_path / "other.safetensors", seed=1))
    assert other.model_hash != env["codec"].model_hash
    with pytest.raises(CodecError, match="tokens of codec .* pick another --out"):
        tokenize(other, [str(env["corpus"])], env["ref"], shard_items=3, log=quiet)
    with pytest.raises(CodecError, match="other settings .*n_q"):
        tokenize(env["codec"], [str(env["corpus"])], env["ref"], n_q=2, shard_items=3, log=quiet)
    # shards without a plan (copied elsewhere) are still recognised by their metadata
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "tokens-000000.parquet").write_bytes(
        (env["ref"] / "tokens-000000.parquet").read_bytes()
    )
    with pytest.raises(CodecError, match="tokens of codec"):
        tokenize(other, [str(env["corpus"])], bare, shard_items=3, log=quiet)


def test_webdataset_shards_hold_the_same_tokens(env, tmp_path):
    out = tmp_path / "wds"
    tokenize(env["codec"], [str(env["corpus"])], out, fmt="wds", shard_items=3, log=quiet)
    assert read_meta(out / "tokens-000000.tar").codec_hash == env["codec"].model_hash
    a, b = _rows(out), _rows(env["ref"])
    assert [r.path for r in a] == [r.path for r in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.codes, y.codes)
        assert x.duration == pytest.approx(y.duration, rel=1e-6)


def test_tar_and_parquet_sources(env, tmp_path):
    """Prepared shards (tar and Parquet) are tokenized like the folder they came from."""
    good = tmp_path / "good"
    for rel in GOOD:
        (good / rel).parent.mkdir(parents=True, exist_ok=True)
        (good / rel).write_bytes((env["corpus"] / rel).read_bytes())
    n = prepare(good, tmp_path / "tar", "tar", "4", 16000, log=quiet)["files"]
    prepare(good, tmp_path / "pq", "parquet", "4", 16000, log=quiet)  # skips a too-short file
    kw = {"shard_items": 4, "log": quiet}
    tokenize(env["codec"], [str(tmp_path / "tar")], tmp_path / "t1", **kw)
    tokenize(env["codec"], [str(tmp_path / "pq")], tmp_path / "t2", **kw)
    a, b = _rows(tmp_path / "t1"), _rows(tmp_path / "t2")
    assert len(a) == len(b) == n >= len(GOOD) - 1
    assert a[0].path.startswith("train-000000.tar#") and "#" in b[0].path
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.codes, y.codes)


def test_pitch_model_stores_its_pitch_channel(env, tmp_path):
    codec = load(tiny_codec_file(tmp_path / "sf.safetensors", pitch=True))
    one = env["corpus"] / "a/s2.wav"
    tokenize(codec, [str(one)], tmp_path / "p", log=quiet)
    meta, rows = read_shard(tmp_path / "p/tokens-000000.parquet")
    enc = codec.encode(load_audio(one, 16000).wav, 16000)
    assert meta.pitch and rows[0].pitch.dtype == np.uint8
    np.testing.assert_array_equal(rows[0].pitch, enc.pitch)
    np.testing.assert_array_equal(rows[0].codes, enc.codes)
