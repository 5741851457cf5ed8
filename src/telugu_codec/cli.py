"""`telugu-codec` command line: parses arguments and calls library functions, nothing more.

User errors (`CodecError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from .errors import CodecError

Handler = Callable[[argparse.Namespace], int]
_COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler]] = {}


def command(name: str, help_text: str, configure: Callable[[argparse.ArgumentParser], None]):
    """Register `fn(args)` as sub-command `name`; `configure(parser)` adds its arguments."""

    def deco(fn: Handler) -> Handler:
        _COMMANDS[name] = (configure, fn)
        fn.help_text = help_text  # type: ignore[attr-defined]
        return fn

    return deco


def _notice(msg: str) -> None:
    print(msg if msg.startswith("warning: ") else f"note: {msg}", file=sys.stderr)


def _check_output(path: Path, force: bool) -> None:
    if str(path) == "-":  # stdout
        return
    if path.exists() and not force:
        raise CodecError(f"{path} already exists; pass --force to overwrite it")


# ------------------------------------------------------------------------------------ init
def _init_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="default", help="preset name or YAML file")
    p.add_argument("--out", required=True, help="checkpoint file (.safetensors) or folder")
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. model.encoder.channels=32")


@command("init", "write a randomly initialised codec checkpoint", _init_args)
def cmd_init(args: argparse.Namespace) -> int:
    from .config import load_config
    from .model.codec import build_codec

    cfg = load_config(args.config, args.overrides)
    out = Path(args.out)
    target = out if out.suffix == ".safetensors" else out / "codec.safetensors"
    _check_output(target, args.force)
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
    p.add_argument(
        "input", help="audio file (wav, flac, ogg, ...; any rate, any channels); - = stdin"
    )
    p.add_argument("output", help="output .tcc file; - = stdout")
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
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
    from .model.codec import Codec
    from .stream_io import encode_file

    out = Path(args.output)
    _check_output(out, args.force)
    codec = Codec.load(args.checkpoint).remove_weight_norm()
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
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    p.add_argument(
        "--chunk-ms",
        type=float,
        help="push codes through the streaming decoder in chunks of this many ms (e.g. 20)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="overwrite an existing output and decode even if the model hash differs",
    )


@command("decode", "turn a .tcc bitstream back into audio", _decode_args)
def cmd_decode(args: argparse.Namespace) -> int:
    from .model.codec import Codec
    from .stream_io import decode_file

    out = Path(args.output)
    _check_output(out, args.force)
    codec = Codec.load(args.checkpoint).remove_weight_norm()
    r = decode_file(codec, args.input, args.output, args.chunk_ms, force=args.force, notice=_notice)
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
    from .model.codec import Codec
    from .model.export import export_onnx

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

        from .bitstream import header_dict, read_tcc

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            enc = read_tcc(path)
        for w in caught:
            _notice(f"warning: {w.message}")
        print(json.dumps(header_dict(enc, path.stat().st_size), indent=2))
        return 0
    from .model.codec import Codec

    print(json.dumps(Codec.load(path).metadata(), indent=2))
    return 0


# ------------------------------------------------------------------------------------ main
def build_parser() -> argparse.ArgumentParser:
    _load_optional_commands()
    parser = argparse.ArgumentParser(
        prog="telugu-codec", description="Train and run neural speech codecs."
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"telugu-codec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (configure, fn) in _COMMANDS.items():
        p = sub.add_parser(name, help=fn.help_text, description=fn.help_text)  # type: ignore
        configure(p)
        p.set_defaults(_handler=fn)
    return parser


def _load_optional_commands() -> None:
    """Sub-commands defined in other modules register themselves on import."""
    import importlib

    for mod in (
        "telugu_codec.train.commands",
        "telugu_codec.evaluate",
        "telugu_codec.demo",
        "telugu_codec.compare",
    ):
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._handler(args) or 0)
    except CodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
