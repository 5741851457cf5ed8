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
    print(f"note: {msg}", file=sys.stderr)


def _check_output(path: Path, force: bool) -> None:
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
    p.add_argument("input", help="audio file (wav, flac, ogg, ...; any rate, any channels)")
    p.add_argument("output", help="output .tcc file")
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--bitrate", type=float, help="target bitrate in kbps (e.g. 1.5, 3, 6)")
    g.add_argument("--n-q", type=int, help="number of codebooks")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


@command("encode", "compress an audio file into a .tcc bitstream", _encode_args)
def cmd_encode(args: argparse.Namespace) -> int:
    from .audio import load_audio
    from .bitstream import write_tcc
    from .model.codec import Codec

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
    from .audio import write_audio
    from .bitstream import read_tcc
    from .errors import BitstreamError
    from .model.codec import Codec

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
        from .bitstream import header_dict, read_tcc

        print(json.dumps(header_dict(read_tcc(path)), indent=2))
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
