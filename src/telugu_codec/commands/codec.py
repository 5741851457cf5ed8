"""`telugu-codec init / encode / decode / info`: a codec checkpoint and `.tcc` files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CodecError
from . import command


def _notice(msg: str) -> None:
    print(f"note: {msg}", file=sys.stderr)


def _check_output(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise CodecError(f"{path} already exists; pass --force to overwrite it")


# ------------------------------------------------------------------------------------ init
def _init_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="preset name or YAML file (default: default)")
    p.add_argument("--out", required=True, help="checkpoint file (.safetensors) or folder")
    p.add_argument(
        "--from",
        dest="source",
        metavar="CKPT_OR_RUN",
        help="take the weights of this codec file, checkpoint or run (a codec-only file: no "
        "discriminators or optimizer state); with --config, into that config's model",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.encoder.channels=32")


@command("init", "write a codec file: randomly initialised, or from a checkpoint", _init_args)
def cmd_init(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..model.codec import build_codec

    out = Path(args.out)
    target = out if out.suffix == ".safetensors" else out / "codec.safetensors"
    _check_output(target, args.force)
    if args.source:
        from ..train.finetune import codec_from, source_config

        if args.config is not None:
            cfg = load_config(args.config, args.overrides)
        else:  # the checkpoint's own model, changed by the overrides if any
            cfg = source_config(args.source, args.overrides) if args.overrides else None
        codec = codec_from(args.source, cfg)
        cfg = codec.config
    else:
        cfg = load_config(args.config or "default", args.overrides)
        codec = build_codec(cfg)
    path = codec.save(out)
    print(
        f"wrote {path} ({cfg.name}: {codec.num_parameters() / 1e6:.2f} M parameters, "
        f"{codec.frame_rate:g} frames/s, up to {codec.bitrate(codec.max_n_q) / 1000:g} kbps, "
        f"hash {codec.model_hash})"
    )
    return 0


# ------------------------------------------------------------------------------------ encode
def _encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help="audio file (wav, flac, ogg, ...; any rate, any channels)")
    p.add_argument("output", help="output .tcc file")
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bitrate", type=float, help="target bitrate in kbps (e.g. 1.5, 3, 6)")
    g.add_argument("--n-q", type=int, help="number of codebooks")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


@command("encode", "compress an audio file into a .tcc bitstream", _encode_args)
def cmd_encode(args: argparse.Namespace) -> int:
    from ..audio import load_audio
    from ..bitstream import write_tcc
    from ..model.codec import Codec

    out = Path(args.output)
    _check_output(out, args.force)
    codec = Codec.load(args.checkpoint).remove_weight_norm()
    n_q = codec.n_q_for_bitrate(args.bitrate) if args.bitrate is not None else args.n_q
    audio = load_audio(args.input, codec.sample_rate)
    for note in audio.notices:
        _notice(note)
    enc = codec.encode(audio.wav, audio.sample_rate, n_q=n_q)
    size = write_tcc(out, enc)
    seconds = enc.length / enc.sample_rate
    print(
        f"{out}: {seconds:.2f} s, {enc.n_q} codebooks, nominal {enc.nominal_bitrate / 1000:.2f} "
        f"kbps, {size} bytes ({size * 8 / seconds / 1000:.2f} kbps with header)"
    )
    return 0


# ------------------------------------------------------------------------------------ decode
def _decode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help=".tcc file")
    p.add_argument("output", help="output audio file (.wav or .flac)")
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing output and decode even if the model hash differs",
    )


@command("decode", "turn a .tcc bitstream back into audio", _decode_args)
def cmd_decode(args: argparse.Namespace) -> int:
    from ..audio import write_audio
    from ..bitstream import read_tcc
    from ..errors import BitstreamError
    from ..model.codec import Codec

    out = Path(args.output)
    _check_output(out, args.force)
    enc = read_tcc(args.input)
    codec = Codec.load(args.checkpoint)
    if enc.model_hash != codec.model_hash:
        msg = (
            f"{args.input} was encoded by model {enc.model_hash} but the checkpoint is "
            f"{codec.model_hash}"
        )
        if not args.force:
            raise BitstreamError(msg + "; use the matching checkpoint or pass --force")
        _notice(msg + " (decoding anyway: --force)")
    wav = codec.remove_weight_norm().decode(enc)
    write_audio(out, wav.numpy(), enc.sample_rate)
    print(f"{out}: {enc.length / enc.sample_rate:.2f} s at {enc.sample_rate} Hz")
    return 0


# ------------------------------------------------------------------------------------ info
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a .tcc file or a checkpoint")


@command("info", "print the header of a .tcc file or the metadata of a checkpoint", _info_args)
def cmd_info(args: argparse.Namespace) -> int:
    import json

    path = Path(args.path)
    if path.suffix == ".tcc":
        from ..bitstream import header_dict, read_tcc

        print(json.dumps(header_dict(read_tcc(path)), indent=2))
        return 0
    from ..model.codec import Codec

    print(json.dumps(Codec.load(path).metadata(), indent=2))
    return 0
