"""`telugu-codec tokenize / detokenize / tokens-vocab / tokens-stats`: real files, one-line
errors, and statistics that mean what they say."""

from __future__ import annotations

import json
import math
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from telugu_codec.cli import main
from telugu_codec.tokens.shards import read_row
from telugu_codec.tokens.stats import stream_stats
from telugu_codec.tokens.vocab import VocabSpec

from .tokens_helpers import GOOD, load, make_corpus, tiny_codec_file


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokcli")
    corpus = make_corpus(root / "corpus")
    ckpt = tiny_codec_file(root / "tiny.safetensors")
    out = root / "tok"
    rc = main(
        ["tokenize", str(corpus), "--out", str(out), "--checkpoint", str(ckpt),
         "--shard-items", "4", "--threads", "1"]
    )  # fmt: skip
    assert rc == 0
    return {"root": root, "corpus": corpus, "ckpt": ckpt, "out": out, "codec": load(ckpt)}


def one_line_error(capsys, rc: int, match: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err[-1].startswith("error: ") and match in err[-1], err
    assert not any("Traceback" in line for line in err)


def test_tokenize_cli_writes_index_vocab_and_skipped(run):
    index = json.loads((run["out"] / "index.json").read_text())
    assert index["rows"] == len(GOOD) and index["skipped"] == 3
    vocab = VocabSpec.load(run["out"] / "vocab.json")
    assert vocab.codec_hash == run["codec"].model_hash and vocab.n_q == run["codec"].max_n_q


def test_detokenize_a_shard_row_equals_decoding_its_codes(run, tmp_path, capsys):
    shard = run["out"] / "tokens-000000.parquet"
    rc = main(
        ["detokenize", f"{shard}#1", str(tmp_path / "a.wav"), "--checkpoint", str(run["ckpt"])]
    )
    assert rc == 0 and "clean" in capsys.readouterr().err
    _, row = read_row(shard, 1)
    y, sr = sf.read(tmp_path / "a.wav", dtype="float32")
    codec = run["codec"]
    assert sr == codec.sample_rate and len(y) == row.n_frames * codec.hop_length
    with torch.inference_mode():
        ref = codec.decode_codes(torch.as_tensor(row.codes.astype(np.int64))[None],
                                 len(y), torch.ones(1))[0, 0].numpy()  # fmt: skip
    np.testing.assert_allclose(y, np.clip(ref, -1, 1), atol=1e-6)
    # the same row as .npy and as a .pt dict decode to the same audio
    np.save(tmp_path / "c.npy", row.codes)
    torch.save({"codes": torch.as_tensor(row.codes.astype(np.int64))}, tmp_path / "c.pt")
    for f in ("c.npy", "c.pt"):
        out = tmp_path / f"{f}.wav"
        assert (
            main(["detokenize", str(tmp_path / f), str(out), "--checkpoint", str(run["ckpt"])]) == 0
        )
        np.testing.assert_array_equal(sf.read(out, dtype="float32")[0], y)


def test_detokenize_repairs_or_refuses_bad_tokens(run, tmp_path, capsys):
    codes = np.random.default_rng(0).integers(0, 64, (6, 20))  # 6 codebooks: the model has 4
    codes[0, 3] = 999
    np.save(tmp_path / "bad.npy", codes)
    args = ["detokenize", str(tmp_path / "bad.npy"), "--checkpoint", str(run["ckpt"])]
    one_line_error(capsys, main(args + [str(tmp_path / "x.wav")]), "wrong n q")
    assert not (tmp_path / "x.wav").exists()
    assert main(args + [str(tmp_path / "c.wav"), "--repair", "clamp"]) == 0
    err = capsys.readouterr().err
    assert "wrong_n_q: 2" in err and "out_of_range: 1" in err
    assert main(args + [str(tmp_path / "d.wav"), "--repair", "drop"]) == 0
    assert len(sf.read(tmp_path / "d.wav")[0]) == 19 * run["codec"].hop_length


def test_detokenize_lm_ids_with_the_vocab(run, tmp_path, capsys):
    vocab = VocabSpec.load(run["out"] / "vocab.json")
    _, row = read_row(run["out"] / "tokens-000000.parquet", 0)
    from telugu_codec.tokens.layouts import delay

    ids = delay(vocab.to_ids(row.codes), vocab.special["pad"])
    np.save(tmp_path / "ids.npy", ids)
    rc = main(["detokenize", str(tmp_path / "ids.npy"), str(tmp_path / "i.wav"),
               "--vocab", str(run["out"] / "vocab.json"), "--layout", "delay",
               "--checkpoint", str(run["ckpt"])])  # fmt: skip
    assert rc == 0
    assert len(sf.read(tmp_path / "i.wav")[0]) == row.n_frames * run["codec"].hop_length


def test_cli_errors_are_one_line(run, tmp_path, capsys):
    ck = ["--checkpoint", str(run["ckpt"])]
    wav = str(tmp_path / "o.wav")
    (tmp_path / "junk.npy").write_bytes(b"not numpy")
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"codes": object()}))
    shard = run["out"] / "tokens-000000.parquet"
    other = str(tiny_codec_file(tmp_path / "other.safetensors", seed=3))
    cases = [
        (["detokenize", str(tmp_path / "none.npy"), wav, *ck], "not found"),
        (["detokenize", str(tmp_path / "junk.npy"), wav, *ck], "cannot read"),
        (["detokenize", str(tmp_path / "evil.pt"), wav, *ck], "cannot read"),
        (["detokenize", f"{shard}#99", wav, *ck], "row 99 does not exist"),
        (["detokenize", str(shard), wav, *ck], "which row"),
        (["detokenize", f"{shard}#0", wav, "--checkpoint", other], "were made by codec"),
        (
            ["tokenize", str(run["corpus"]), "--out", str(run["out"]), "--checkpoint", other],
            "pick another --out",
        ),
        (["tokenize", "--merge", "--out", str(tmp_path / "nothing")], "holds no tokenize run"),
        (["tokenize", str(tmp_path / "missing"), "--out", str(tmp_path / "t"), *ck], "not found"),
    ]
    for argv, match in cases:
        rc = main(argv)
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2, (argv, err)
        assert err and err[-1].startswith("error: ") and match in err[-1], (argv, err)
        assert not any("Traceback" in line for line in err), (argv, err)


def test_tokens_vocab_command(run, tmp_path, capsys):
    out = tmp_path / "v.json"
    args = ["tokens-vocab", "--checkpoint", str(run["ckpt"]), "--n-q", "2", "--base", "50000"]
    assert main(args + ["--out", str(out)]) == 0
    v = VocabSpec.load(out)
    assert v.n_q == 2 and v.offsets == [50000, 50064] and v.special["pad"] == 50128


def test_tokens_stats_command(run, tmp_path, capsys):
    js = tmp_path / "s.json"
    rc = main(["tokens-stats", str(run["out"]), "--invariance", "3", "--json", str(js)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "invariance: 3/3 files identical" in text and "3/3 equal the stored codes" in text
    s = json.loads(js.read_text())
    codec = run["codec"]
    assert s["bits_per_s"] == codec.bitrate(codec.max_n_q)
    assert s["tokens_per_s"] == pytest.approx(s["frames"] * codec.max_n_q / s["seconds"])
    assert len(s["streams"]) == codec.max_n_q


def test_stream_stats_known_values():
    # two codes alternating: H = 1 bit, perplexity 2, and fully predictable from the last one
    s = stream_stats("q0", [np.array([0, 1] * 50)], 4)
    assert s.entropy == pytest.approx(1.0) and s.perplexity == pytest.approx(2.0)
    assert s.usage == 0.5 and s.bigram_entropy == pytest.approx(0.0, abs=1e-9)
    r = stream_stats("q0", [np.random.default_rng(0).integers(0, 4, 20000)], 4)
    assert r.entropy == pytest.approx(2.0, abs=0.01) and r.bigram_entropy == pytest.approx(
        2.0, abs=0.01
    )
    assert math.isclose(r.perplexity, 2**r.entropy)
