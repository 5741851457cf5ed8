"""End-to-end CLI: real files in tmp_path, one-line errors, no tracebacks."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from telugu_codec.cli import main

from .conftest import TINY_OVERRIDES, speechlike


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    assert main(["init", "--out", str(d / "c"), *TINY_OVERRIDES]) == 0
    return d / "c"


def test_encode_decode_roundtrip(tmp_path, ckpt, capsys):
    wav = speechlike(1.5, 22050)
    sf.write(tmp_path / "in.ogg", np.stack([wav, wav], 1), 22050)  # stereo ogg at 22.05 kHz
    assert (
        main(
            [
                "encode",
                str(tmp_path / "in.ogg"),
                str(tmp_path / "a.tcc"),
                "--checkpoint",
                str(ckpt),
                "--n-q",
                "3",
            ]
        )
        == 0
    )
    err = capsys.readouterr().err
    assert "mono" in err and "resampled" in err
    assert (
        main(
            [
                "decode",
                str(tmp_path / "a.tcc"),
                str(tmp_path / "out.wav"),
                "--checkpoint",
                str(ckpt),
            ]
        )
        == 0
    )
    out, sr = sf.read(tmp_path / "out.wav")
    assert sr == 16000 and len(out) == round(1.5 * 16000)
    # 3 codebooks of 64 codes at 50 frames/s = 900 bit/s, plus a 16-byte header and about
    # 7 bytes of packet framing per second
    size = (tmp_path / "a.tcc").stat().st_size
    assert 900 * 1.5 / 8 < size <= 900 * 1.5 / 8 + 18 + 7 * 2


def test_refuses_to_overwrite_without_force(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "in.wav", speechlike(0.5), 16000)
    (tmp_path / "a.tcc").write_bytes(b"keep me")
    code = main(
        ["encode", str(tmp_path / "in.wav"), str(tmp_path / "a.tcc"), "--checkpoint", str(ckpt)]
    )
    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "a.tcc").read_bytes() == b"keep me"
    assert (
        main(
            [
                "encode",
                str(tmp_path / "in.wav"),
                str(tmp_path / "a.tcc"),
                "--checkpoint",
                str(ckpt),
                "--force",
            ]
        )
        == 0
    )


def test_hash_mismatch_names_both_and_only_its_own_flag_overrides(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "in.wav", speechlike(0.5), 16000)
    main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "a.tcc"), "--checkpoint", str(ckpt)])
    other = tmp_path / "other"
    main(["init", "--out", str(other), *TINY_OVERRIDES, "train.seed=7"])
    capsys.readouterr()
    assert (
        main(
            ["decode", str(tmp_path / "a.tcc"), str(tmp_path / "o.wav"), "--checkpoint", str(other)]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "encoded by model" in err
    assert not (tmp_path / "o.wav").exists()
    decode = ["decode", str(tmp_path / "a.tcc"), str(tmp_path / "o.wav"), "--checkpoint"]
    # --force only overwrites outputs: it no longer decodes with the wrong model
    assert main([*decode, str(other), "--force"]) == 2
    assert "--ignore-model-mismatch" in capsys.readouterr().err
    assert not (tmp_path / "o.wav").exists()
    assert main([*decode, str(other), "--ignore-model-mismatch"]) == 0


ENCODE_OK = ["encode", "{tmp}/ok.wav", "{tmp}/x.tcc", "--checkpoint", "{ckpt}"]


def _bad_inputs(tmp: Path, ckpt: Path) -> None:
    """A file and a folder in the way, a run log with a non-numeric step, a valid .tcc, and
    codec files with a scalar config, a !!python config, NaN weights and a flipped bit."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from telugu_codec.model.codec import Codec

    (tmp / "afile").write_text("a regular file")
    (tmp / "adir").mkdir()
    (tmp / "badrun").mkdir()
    (tmp / "badrun" / "metrics.jsonl").write_text('{"kind": "train", "step": "abc"}\n')
    assert (
        main(["encode", str(tmp / "ok.wav"), str(tmp / "ok.tcc"), "--checkpoint", str(ckpt)]) == 0
    )
    src = ckpt / "codec.safetensors"
    with safe_open(str(src), framework="pt") as f:
        meta = dict(f.metadata())
    tensors = load_file(str(src))
    for name, text in (
        ("scalar", "just a string"),
        ("python", "!!python/object/apply:os.system [ls]"),
    ):
        save_file(tensors, str(tmp / f"{name}.safetensors"), metadata=dict(meta, config=text))
    codec = Codec.load(ckpt)
    with torch.no_grad():
        next(codec.parameters()).view(-1)[0] = float("nan")
    codec.save(tmp / "nan.safetensors")
    data = bytearray(src.read_bytes())
    data[8 + int.from_bytes(data[:8], "little") + 101] ^= 0x04
    (tmp / "flip.safetensors").write_bytes(bytes(data))


@pytest.mark.parametrize(
    "args,match",
    [
        (["encode", "{tmp}/missing.wav", "{tmp}/x.tcc", "--checkpoint", "{ckpt}"], "not found"),
        (["encode", "{tmp}/empty.wav", "{tmp}/x.tcc", "--checkpoint", "{ckpt}"], "empty"),
        (["decode", "{tmp}/bad.tcc", "{tmp}/x.wav", "--checkpoint", "{ckpt}"], "not a .tcc"),
        (["encode", "{tmp}/ok.wav", "{tmp}/x.tcc", "--checkpoint", "{tmp}/nockpt"], "checkpoint"),
        (
            ["encode", "{tmp}/ok.wav", "{tmp}/x.tcc", "--checkpoint", "{ckpt}", "--bitrate", "99"],
            "outside",
        ),
        (["init", "--config", "nope", "--out", "{tmp}/c2"], "no preset"),
        (["encode", "{tmp}/rate1.wav", "{tmp}/x.tcc", "--checkpoint", "{ckpt}"], "1 Hz"),
        (
            ["encode", "{tmp}/ok.wav", "{tmp}/x.tcc", "--checkpoint", "{ckpt}", "--chunk-ms", "0"],
            "chunk-ms",
        ),
        (["decode", "{tmp}/flipped.tcc", "{tmp}/x.wav", "--checkpoint", "{ckpt}"], "corrupt"),
        (["decode", "{tmp}/nan_v1.tcc", "{tmp}/x.wav", "--checkpoint", "{ckpt}"], "gain"),
        (["decode", "{tmp}/long_v1.tcc", "{tmp}/x.wav", "--checkpoint", "{ckpt}"], "length"),
        # issue 14, case 8
        (ENCODE_OK + ["--bitrate", "nan"], "bitrate"),
        (ENCODE_OK + ["--bitrate", "inf"], "bitrate"),
        (["encode", "{tmp}/ok.wav", "{tmp}/adir", "--checkpoint", "{ckpt}", "--force"], "folder"),
        (["encode", "{tmp}/ok.wav", "{tmp}/afile/x.tcc", "--checkpoint", "{ckpt}"], "is a file"),
        (["decode", "{tmp}/ok.tcc", "{tmp}/afile/x.wav", "--checkpoint", "{ckpt}"], "is a file"),
        (["decode", "{tmp}/ok.tcc", "{tmp}/adir", "--checkpoint", "{ckpt}", "--force"], "folder"),
        (["init", "--out", "{tmp}/afile/c", "model.quantizer.n_q=2"], "is a file"),
        (["init", "--out", "{tmp}/c3", "train.val_every=0"], "train.val_every"),
        (["init", "--out", "{tmp}/c3", "model.quantizer.codebook_size=0"], "codebook_size"),
        (
            ["evaluate", "--checkpoint", "{ckpt}", "--data", "{tmp}/ok.wav", "--out", "{tmp}/afile"]
            + ["--baselines", "none"],
            "is a file",
        ),
        (["report", "{tmp}/badrun"], "numeric step"),
        (["info", "{tmp}/scalar.safetensors"], "config"),
        (["info", "{tmp}/python.safetensors"], "config"),
        (["decode", "{tmp}/ok.tcc", "{tmp}/y.wav", "--checkpoint", "{tmp}/nan.safetensors"], "NaN"),
        (
            ["decode", "{tmp}/ok.tcc", "{tmp}/y.wav", "--checkpoint", "{tmp}/flip.safetensors"],
            "corrupt",
        ),
    ],
)
def test_user_errors_are_one_line(tmp_path, ckpt, args, match):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "bad.tcc").write_bytes(b"hello world, not a bitstream")
    sf.write(tmp_path / "ok.wav", speechlike(0.3), 16000)
    (tmp_path / "rate1.wav").write_bytes(wav_bytes(np.zeros(2000, np.int16), rate=1))
    _bad_bitstreams(tmp_path, ckpt)
    _bad_inputs(tmp_path, ckpt)
    argv = [a.format(tmp=tmp_path, ckpt=ckpt) for a in args]
    proc = subprocess.run(
        [sys.executable, "-m", "telugu_codec", *argv], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and match in lines[0]


def test_every_subcommand_has_help():
    from telugu_codec.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name in sub.choices:
        proc = subprocess.run(
            [sys.executable, "-m", "telugu_codec", name, "--help"], capture_output=True, text=True
        )
        assert proc.returncode == 0 and "usage:" in proc.stdout, name


# ------------------------------------------------------------------------------------ streaming
def wav_bytes(pcm: np.ndarray, rate: int, claimed_frames: int | None = None) -> bytes:
    """A PCM16 mono WAV whose header may claim another rate or length than it holds."""
    data = pcm.astype("<i2").tobytes()
    n = 2 * (len(pcm) if claimed_frames is None else claimed_frames)
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    head = b"RIFF" + struct.pack("<I", 36 + n) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    return head + b"data" + struct.pack("<I", n) + data


def _bad_bitstreams(tmp_path, ckpt) -> None:
    """A v2 file with a header edit, v1 files with a NaN gain and a 10^12-sample length."""
    from telugu_codec.bitstream import to_bytes
    from telugu_codec.bitstream_v1 import to_bytes_v1
    from telugu_codec.model.codec import Codec

    codec = Codec.load(ckpt)
    enc = codec.encode(speechlike(0.5), 16000, n_q=2)
    data = bytearray(to_bytes(enc))
    data[8] ^= 0x01  # the hop-length field: the header is under the first packet's CRC
    (tmp_path / "flipped.tcc").write_bytes(bytes(data))
    enc.gain = float("nan")
    (tmp_path / "nan_v1.tcc").write_bytes(to_bytes_v1(enc))
    enc.gain, enc.length = 1.0, 10**12
    (tmp_path / "long_v1.tcc").write_bytes(to_bytes_v1(enc))


@pytest.fixture(scope="module")
def stream_ckpt(tmp_path_factory):
    d = tmp_path_factory.mktemp("sckpt")
    extra = ["model.causal=true", "model.normalization=block", "model.norm_block_frames=5"]
    assert main(["init", "--out", str(d / "c"), *TINY_OVERRIDES, *extra]) == 0
    return d / "c"


def run_cli(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "telugu_codec", *argv], input=stdin, capture_output=True
    )


def test_pipes_and_chunked_streaming_give_the_same_bitstream_and_audio(tmp_path, stream_ckpt):
    sf.write(tmp_path / "in.wav", speechlike(1.3), 16000, subtype="PCM_16")
    ck = str(stream_ckpt)
    assert (
        main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "a.tcc"), "--checkpoint", ck]) == 0
    )
    args = [str(tmp_path / "in.wav"), str(tmp_path / "b.tcc"), "--checkpoint", ck]
    assert main(["encode", *args, "--chunk-ms", "20"]) == 0
    a = (tmp_path / "a.tcc").read_bytes()
    assert (tmp_path / "b.tcc").read_bytes() == a  # 20 ms pushes: the same codes
    piped = run_cli(
        "encode", "-", "-", "--checkpoint", ck, stdin=(tmp_path / "in.wav").read_bytes()
    )
    assert piped.returncode == 0, piped.stderr
    out = run_cli("decode", "-", "-", "--checkpoint", ck, "--chunk-ms", "20", stdin=piped.stdout)
    assert out.returncode == 0, out.stderr
    (tmp_path / "pipe.wav").write_bytes(out.stdout)
    assert (
        main(["decode", str(tmp_path / "a.tcc"), str(tmp_path / "file.wav"), "--checkpoint", ck])
        == 0
    )
    x, sr = sf.read(tmp_path / "pipe.wav")
    y, _ = sf.read(tmp_path / "file.wav")
    assert sr == 16000 and x.shape == y.shape == (round(1.3 * 16000),)
    assert np.abs(x - y).max() < 1e-5


def test_cut_bitstream_decodes_to_its_last_packet_with_a_warning(tmp_path, stream_ckpt):
    sf.write(tmp_path / "in.wav", speechlike(2.5), 16000)
    ck = str(stream_ckpt)
    main(["encode", str(tmp_path / "in.wav"), str(tmp_path / "a.tcc"), "--checkpoint", ck])
    data = (tmp_path / "a.tcc").read_bytes()
    (tmp_path / "cut.tcc").write_bytes(data[: len(data) - 10])
    proc = run_cli("decode", str(tmp_path / "cut.tcc"), str(tmp_path / "o.wav"), "--checkpoint", ck)
    assert proc.returncode == 0
    err = proc.stderr.decode()
    assert "warning:" in err and "cut" in err and "Traceback" not in err
    assert sf.info(tmp_path / "o.wav").frames == 2 * 16000  # two whole 1 s packets
    info = run_cli("info", str(tmp_path / "a.tcc"))
    assert b'"bitrate"' in info.stdout and b'"overhead_bytes"' in info.stdout


def test_a_wav_claiming_hours_is_read_for_what_it_holds(tmp_path, stream_ckpt):
    pcm = (speechlike(0.5) * 30000).astype(np.int16)
    (tmp_path / "claims.wav").write_bytes(wav_bytes(pcm, 16000, claimed_frames=3600 * 16000))
    args = [str(tmp_path / "claims.wav"), str(tmp_path / "a.tcc"), "--checkpoint", str(stream_ckpt)]
    assert main(["encode", *args]) == 0
    from telugu_codec.bitstream import read_tcc

    assert read_tcc(tmp_path / "a.tcc").length == len(pcm)


def test_v1_file_still_decodes_through_the_cli(tmp_path, ckpt):
    from telugu_codec.bitstream_v1 import to_bytes_v1
    from telugu_codec.model.codec import Codec

    codec = Codec.load(ckpt)
    enc = codec.encode(speechlike(0.7), 16000, n_q=3)
    (tmp_path / "old.tcc").write_bytes(to_bytes_v1(enc))
    assert (
        main(
            [
                "decode",
                str(tmp_path / "old.tcc"),
                str(tmp_path / "o.wav"),
                "--checkpoint",
                str(ckpt),
            ]
        )
        == 0
    )
    x, _ = sf.read(tmp_path / "o.wav", dtype="float32")
    ref = np.clip(codec.decode(enc).numpy(), -1, 1)
    assert x.shape == ref.shape and np.abs(x - ref).max() < 1e-5


@pytest.fixture
def full_disk(tmp_path):
    """A 96 KiB tmpfs: writes larger than that fail with ENOSPC, as on a full disk.

    Needs permission to mount (root on Linux); skipped elsewhere (the monkeypatched tests in
    test_checkpoint.py still cover the code paths).
    """
    mnt = tmp_path / "disk"
    mnt.mkdir()
    proc = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=96k", "tmpfs", str(mnt)], capture_output=True
    )
    if proc.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _one_line_error(capsys, match: str) -> None:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0], err


def test_disk_full_in_init_and_decode_is_one_line_and_leaves_nothing(full_disk, ckpt, capsys):
    assert main(["init", "--out", str(full_disk / "c")]) == 2  # default preset: ~40 MB
    _one_line_error(capsys, "disk is full")
    assert list(full_disk.iterdir()) == []
    tmp = full_disk.parent
    sf.write(tmp / "long.wav", speechlike(4.0), 16000)
    assert (
        main(["encode", str(tmp / "long.wav"), str(tmp / "a.tcc"), "--checkpoint", str(ckpt)]) == 0
    )
    capsys.readouterr()
    assert (
        main(["decode", str(tmp / "a.tcc"), str(full_disk / "o.wav"), "--checkpoint", str(ckpt)])
        == 2
    )
    _one_line_error(capsys, "disk is full")
    assert list(full_disk.iterdir()) == []


def test_disk_full_in_init_simulated(tmp_path, monkeypatch, capsys):
    """The same without a mount: the write itself fails with ENOSPC."""
    import errno

    from telugu_codec import checkpoint

    def full(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    assert main(["init", "--out", str(tmp_path / "c"), *TINY_OVERRIDES]) == 2
    _one_line_error(capsys, "disk is full")
    assert list(tmp_path.iterdir()) == []


def test_a_wav_cut_short_is_encoded_with_a_warning(tmp_path, ckpt, capsys):
    sf.write(tmp_path / "full.wav", speechlike(1.0), 16000)
    data = (tmp_path / "full.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: len(data) // 2])
    argv = ["--checkpoint", str(ckpt)]
    assert main(["encode", str(tmp_path / "full.wav"), str(tmp_path / "a.tcc"), *argv]) == 0
    assert "cut short" not in capsys.readouterr().err
    assert main(["encode", str(tmp_path / "cut.wav"), str(tmp_path / "b.tcc"), *argv]) == 0
    err = capsys.readouterr().err
    assert "cut short" in err and "1.00 s" in err and "0.50 s" in err


# ------------------------------------------------------------------------------------ pitch
@pytest.fixture(scope="module")
def pitch_ckpt(tmp_path_factory):
    from .test_source_filter import SF

    d = tmp_path_factory.mktemp("pckpt")
    assert main(["init", "--out", str(d / "c"), *TINY_OVERRIDES, *SF]) == 0
    return d / "c"


def test_pitch_model_through_the_cli_equals_the_codec(tmp_path, pitch_ckpt):
    """encode -> .tcc (v3, pitch channel) -> decode: the same codes, pitch and audio as
    `Codec.decode(Codec.encode(x))`, whole or in 20 ms pushes, and --pitch-shift reaches it."""
    from telugu_codec.bitstream import read_tcc
    from telugu_codec.model.codec import Codec

    sf.write(tmp_path / "in.wav", speechlike(1.3), 16000, subtype="PCM_16")
    x, _ = sf.read(tmp_path / "in.wav", dtype="float32")
    codec = Codec.load(pitch_ckpt)
    enc = codec.encode(x, 16000)
    ck = ["--checkpoint", str(pitch_ckpt)]
    wav, tcc = str(tmp_path / "in.wav"), str(tmp_path / "a.tcc")
    assert main(["encode", wav, tcc, *ck]) == 0
    assert main(["encode", wav, str(tmp_path / "b.tcc"), *ck, "--chunk-ms", "20"]) == 0
    for name in ("a.tcc", "b.tcc"):
        back = read_tcc(tmp_path / name)
        assert np.array_equal(back.codes, enc.codes) and np.array_equal(back.pitch, enc.pitch)
        assert back.length == len(x) and back.nominal_bitrate == codec.bitrate(codec.max_n_q)

    def decoded(name: str, *extra: str) -> np.ndarray:
        assert main(["decode", tcc, str(tmp_path / name), *ck, *extra]) == 0
        return sf.read(tmp_path / name, dtype="float32")[0]

    ref = np.clip(codec.decode(enc).numpy(), -1, 1)
    for y in (decoded("file.wav"), decoded("chunked.wav", "--chunk-ms", "20")):
        assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-4
    up = np.clip(codec.decode(enc, pitch_shift=12).numpy(), -1, 1)
    for y in (
        decoded("up.wav", "--pitch-shift", "12"),
        decoded("up20.wav", "--pitch-shift", "12", "--chunk-ms", "20"),
    ):
        assert y.shape == up.shape and np.abs(y - up).max() < 1e-4
        assert np.abs(y - ref).max() > 100 * np.abs(y - up).max() + 1e-3  # the shift acted


def test_pitch_mismatches_and_bad_shifts_are_one_line_errors(tmp_path, ckpt, pitch_ckpt, capsys):
    from telugu_codec.bitstream_v1 import to_bytes_v1
    from telugu_codec.model.codec import Codec

    sf.write(tmp_path / "in.wav", speechlike(0.5), 16000)
    wav = str(tmp_path / "in.wav")
    assert main(["encode", wav, str(tmp_path / "p.tcc"), "--checkpoint", str(pitch_ckpt)]) == 0
    assert main(["encode", wav, str(tmp_path / "n.tcc"), "--checkpoint", str(ckpt)]) == 0
    enc = Codec.load(ckpt).encode(speechlike(0.5), 16000)
    (tmp_path / "n1.tcc").write_bytes(to_bytes_v1(enc))
    capsys.readouterr()
    other = "--ignore-model-mismatch"
    cases = [
        ("p.tcc", ckpt, [], "encoded by model"),
        ("p.tcc", ckpt, [other], "carries a pitch channel, the model has none"),
        ("n.tcc", pitch_ckpt, [other], "has no pitch channel, the model needs one"),
        ("n1.tcc", pitch_ckpt, [other], "needs a pitch channel"),
        ("p.tcc", pitch_ckpt, ["--pitch-shift", "nan"], "finite number of semitones"),
        ("p.tcc", pitch_ckpt, ["--pitch-shift", "24.5"], "beyond +-24"),
        ("n.tcc", ckpt, ["--pitch-shift", "3"], "needs a model with a pitch channel"),
    ]
    for src, model, extra, match in cases:
        out = tmp_path / "o.wav"
        argv = ["decode", str(tmp_path / src), str(out), "--checkpoint", str(model), *extra]
        assert main(argv) == 2, (src, extra)
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        if other in extra:  # the mismatch notice, then the error
            assert len(err) == 2 and err[0].startswith("note:") and "encoded by model" in err[0]
            err = err[1:]
        assert len(err) == 1 and err[0].startswith("error:") and match in err[0], err
        assert not out.exists()


def test_overrides_may_stand_between_options():
    """`train --config tiny a=1 --out X b=2`: both overrides reach the command (argparse's
    plain parse said "unrecognized arguments: b=2")."""
    from telugu_codec.cli import build_parser, parse

    args = parse(
        build_parser(),
        ["train", "--config", "tiny", "train.lr=1", "--out", "X", "data.batch_size=2"],
    )
    assert args.command == "train" and args.out == "X" and args.config == "tiny"
    assert args.overrides == ["train.lr=1", "data.batch_size=2"]
    demo = parse(build_parser(), ["demo", "a=1", "--fresh", "b=2", "--max-steps", "3"])
    assert demo.overrides == ["a=1", "b=2"] and demo.fresh and demo.max_steps == 3
