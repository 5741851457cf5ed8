"""`telugu-codec` command line: parses arguments and calls a sub-command, nothing more.

The sub-commands live in `commands/` (one module per group, registered with `@command`).
User errors (`CodecError`) print one line on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .errors import CodecError


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per registered command."""
    from . import __version__
    from .commands import all_commands

    parser = argparse.ArgumentParser(
        prog="telugu-codec", description="Train and run neural speech codecs."
    )
    parser.add_argument("--version", action="version", version=f"telugu-codec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for cmd in all_commands():
        p = sub.add_parser(cmd.name, help=cmd.help, description=cmd.help)
        cmd.configure(p)
        p.set_defaults(_handler=cmd.run)
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """`argv` parsed with the sub-command's options and positionals intermixed, so dotted
    overrides may stand anywhere (`train --config tiny a=1 --out X b=2`); argparse's plain
    parse takes a positional list only as one group after every option."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if argv and argv[0] in sub.choices:
        try:
            args = sub.choices[argv[0]].parse_intermixed_args(argv[1:])
        except TypeError:  # a sub-command whose arguments argparse cannot intermix
            return parser.parse_args(argv)
        args.command = argv[0]
        return args
    return parser.parse_args(argv)  # --help, --version, an unknown command: argparse says


def main(argv: list[str] | None = None) -> int:
    """Run one sub-command; returns the exit status (2 for a user error)."""
    parser = build_parser()
    args = parse(parser, sys.argv[1:] if argv is None else list(argv))
    try:
        return int(args._handler(args) or 0)
    except CodecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
