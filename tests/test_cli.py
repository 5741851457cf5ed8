"""End-to-end CLI: real files in tmp_path, one-line errors, no tracebacks."""

from __future__ import annotations

import struct
import subprocess
import sys

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


def test_hash_mismatch_names_both_and_force_overrides(tmp_path, ckpt, capsys):
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
    assert (
        main(
            [
                "decode",
                str(tmp_path / "a.tcc"),
                str(tmp_path / "o.wav"),
                "--checkpoint",
                str(other),
                "--force",
            ]
        )
        == 0
    )


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
    ],
)
def test_user_errors_are_one_line(tmp_path, ckpt, args, match):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "bad.tcc").write_bytes(b"hello world, not a bitstream")
    sf.write(tmp_path / "ok.wav", speechlike(0.3), 16000)
    (tmp_path / "rate1.wav").write_bytes(wav_bytes(np.zeros(2000, np.int16), rate=1))
    _bad_bitstreams(tmp_path, ckpt)
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
