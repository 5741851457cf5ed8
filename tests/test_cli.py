"""End-to-end CLI: real files in tmp_path, one-line errors, no tracebacks."""

from __future__ import annotations

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
    # 3 codebooks of 64 codes at 50 frames/s = 900 bit/s
    size = (tmp_path / "a.tcc").stat().st_size
    assert abs((size - 200) * 8 / 1.5 - 900) < 300


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
    ],
)
def test_user_errors_are_one_line(tmp_path, ckpt, args, match):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "bad.tcc").write_bytes(b"hello world, not a bitstream")
    sf.write(tmp_path / "ok.wav", speechlike(0.3), 16000)
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
