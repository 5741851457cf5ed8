"""`telugu-codec init / encode / decode / info`: a codec checkpoint and `.tcc` files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import CodecError
from . import command


def _notice(msg: str) -> None:
    print(msg if msg.startswith("warning: ") else f"note: {msg}", file=sys.stderr)


def _check_output(path: Path, force: bool) -> None:
    """Refuse an output that exists (without --force), is a folder, or lies under a file."""
    if str(path) == "-":  # stdout
        return
    if path.is_dir():
        raise CodecError(f"{path} is a folder; give a file name for the output")
    if path.exists() and not force:
        raise CodecError(f"{path} already exists; pass --force to overwrite it")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise CodecError(f"cannot write {path}: {parent} is a file, not a folder")
            break


def _checkpoint(given: str | None, tcc: str | None) -> str:
    """`given`, or the shipped model to use without --checkpoint (said in one line): the one
    whose weights encoded the .tcc file `tcc` (decode), else `pretrained.DEFAULT_MODEL`."""
    if given is not None:
        return given
    from ..pretrained import DEFAULT_MODEL, by_model_hash, registry

    if DEFAULT_MODEL not in registry():
        raise CodecError(
            f"no --checkpoint given and this install ships no pretrained {DEFAULT_MODEL}; pass "
            "--checkpoint (a codec file, checkpoint or run folder)"
        )
    name, why = DEFAULT_MODEL, "the default"
    if tcc is not None and tcc != "-" and Path(tcc).is_file():
        import warnings

        from ..bitstream import read_tcc

        try:
            with warnings.catch_warnings():  # decode_file says them, once
                warnings.simplefilter("ignore")
                found = by_model_hash(read_tcc(tcc).model_hash)
        except CodecError:
            found = None  # decode_file reports what is wrong with the file
        if found is not None:
            name, why = found, "the shipped model that encoded it"
    _notice(f"using the pretrained {name} ({why}; --checkpoint picks another)")
    return name


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
    created = not target.parent.exists()
    try:
        path = codec.save(out)
    except CodecError:
        if created and not any(target.parent.iterdir()):
            target.parent.rmdir()  # leave nothing behind
        raise
    print(
        f"wrote {path} ({cfg.name}: {codec.num_parameters() / 1e6:.2f} M parameters, "
        f"{codec.frame_rate:g} frames/s, up to {codec.bitrate(codec.max_n_q) / 1000:g} kbps, "
        f"hash {codec.model_hash})"
    )
    return 0


# ------------------------------------------------------------------------------------ encode
def _encode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "input", help="audio file (wav, flac, ogg, ...; any rate, any channels); - = stdin"
    )
    p.add_argument("output", help="output .tcc file; - = stdout")
    p.add_argument(
        "--checkpoint",
        help="codec file, checkpoint, run folder or pretrained name (default: the shipped "
        "te-small; `telugu-codec models` lists them)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bitrate", type=float, help="target bitrate in kbps (e.g. 1.5, 3, 6)")
    g.add_argument("--n-q", type=int, help="number of codebooks")
    p.add_argument(
        "--chunk-ms",
        type=float,
        help="push audio through the streaming encoder in chunks of this many ms (e.g. 20)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


@command("encode", "compress an audio file into a .tcc bitstream", _encode_args)
def cmd_encode(args: argparse.Namespace) -> int:
    from ..model.codec import Codec
    from ..stream_io import encode_file

    out = Path(args.output)
    _check_output(out, args.force)
    codec = Codec.load(_checkpoint(args.checkpoint, None)).remove_weight_norm()
    n_q = codec.n_q_for_bitrate(args.bitrate) if args.bitrate is not None else args.n_q
    r = encode_file(codec, args.input, args.output, n_q, args.chunk_ms, notice=_notice)
    print(
        f"{args.output}: {r.seconds:.2f} s, {r.n_q} codebooks, nominal "
        f"{r.nominal_bitrate / 1000:.2f} kbps, {r.bytes} bytes ({r.bitrate / 1000:.2f} kbps "
        "as a file)",
        file=sys.stderr if args.output == "-" else sys.stdout,
    )
    return 0


# ------------------------------------------------------------------------------------ decode
def _decode_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", help=".tcc file; - = stdin")
    p.add_argument("output", help="output audio file (.wav or .flac); - = WAV on stdout")
    p.add_argument(
        "--checkpoint",
        help="codec file, checkpoint, run folder or pretrained name (default: the shipped "
        "model that encoded the file, else te-small)",
    )
    p.add_argument("--force", action="store_true", help="overwrite an existing output")
    p.add_argument(
        "--chunk-ms",
        type=float,
        help="push codes through the streaming decoder in chunks of this many ms (e.g. 20)",
    )
    p.add_argument(
        "--ignore-model-mismatch",
        action="store_true",
        help="decode even if the file was encoded by another model (the audio will be wrong)",
    )
    p.add_argument(
        "--pitch-shift",
        type=float,
        default=0.0,
        metavar="SEMITONES",
        help="move the voice's pitch by this many semitones, formants kept (-24..24; models "
        "with a pitch channel, e.g. decoder source_filter)",
    )


@command("decode", "turn a .tcc bitstream back into audio", _decode_args)
def cmd_decode(args: argparse.Namespace) -> int:
    from ..model.codec import Codec
    from ..stream_io import decode_file

    out = Path(args.output)
    _check_output(out, args.force)
    codec = Codec.load(_checkpoint(args.checkpoint, args.input)).remove_weight_norm()
    r = decode_file(
        codec,
        args.input,
        args.output,
        args.chunk_ms,
        ignore_model_mismatch=args.ignore_model_mismatch,
        notice=_notice,
        pitch_shift=args.pitch_shift,
    )
    print(
        f"{args.output}: {r.seconds:.2f} s at {r.sample_rate} Hz"
        + ("" if r.complete else " (cut stream: up to its last complete packet)"),
        file=sys.stderr if args.output == "-" else sys.stdout,
    )
    return 0


# ------------------------------------------------------------------------------------ export
def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--onnx", required=True, metavar="OUT_DIR", help="folder for the .onnx files")
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    p.add_argument("--n-q", type=int, help="codebooks in the graphs (default all)")
    p.add_argument(
        "--torchscript",
        action="store_true",
        help="use the older TorchScript exporter (faster to export) instead of torch.export",
    )


@command(
    "export",
    "export the encoder, decoder and streaming steps (causal models) as ONNX",
    _export_args,
)
def cmd_export(args: argparse.Namespace) -> int:
    from ..model.codec import Codec
    from ..model.export import export_onnx

    meta = export_onnx(
        Codec.load(args.checkpoint), args.onnx, args.n_q, dynamo=not args.torchscript
    )
    for part in meta["files"].values():
        print(f"{Path(args.onnx) / part['file']}")
    print(f"{Path(args.onnx) / 'export.json'}: rates, state shapes and the loudness gain to apply")
    return 0


# ------------------------------------------------------------------------------------ info
def _info_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="a .tcc file or a checkpoint")


@command("info", "print the header of a .tcc file or the metadata of a checkpoint", _info_args)
def cmd_info(args: argparse.Namespace) -> int:
    import json

    path = Path(args.path)
    if path.suffix == ".tcc":
        import warnings

        from ..bitstream import header_dict, read_tcc

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enc = read_tcc(path)
        for w in caught:
            _notice(f"warning: {w.message}")
        print(json.dumps(header_dict(enc, path.stat().st_size), indent=2))
        return 0
    from ..model.codec import Codec

    print(json.dumps(Codec.load(path).metadata(), indent=2))
    return 0
