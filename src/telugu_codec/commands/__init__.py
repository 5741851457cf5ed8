"""The sub-commands of `telugu-codec`, and the registry that `cli.py` reads.

Each module here defines a few sub-commands with `@command(name, help, configure)`: `configure`
adds the arguments to the sub-command's parser, the decorated function turns the parsed
arguments into a call of a library function and returns the exit status. The bodies stay thin:
the work is done by library modules (`model.codec`, `train.trainer`, `evaluation`, `demo`,
`compare`), which import nothing from here or from `cli`.

To add a sub-command: write it with `@command` in one of these modules (or a new one listed in
`MODULES`); `telugu-codec --help` lists the commands in the order they are registered.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from dataclasses import dataclass

Handler = Callable[[argparse.Namespace], int]
Configure = Callable[[argparse.ArgumentParser], None]

# the modules that define sub-commands, in the order `--help` lists them
MODULES = ("codec", "models", "train", "data", "tokens", "evaluate", "listen", "demo", "compare")


@dataclass(frozen=True)
class Command:
    """One sub-command.

    Attributes:
        name: what the user types (``telugu-codec NAME``).
        help: one line, shown in ``--help`` and as the sub-command's description.
        configure: adds the sub-command's arguments to its parser.
        run: ``run(args) -> exit status``.
    """

    name: str
    help: str
    configure: Configure
    run: Handler


_REGISTRY: dict[str, Command] = {}


def command(name: str, help_text: str, configure: Configure) -> Callable[[Handler], Handler]:
    """Register `fn(args)` as sub-command `name`; `configure(parser)` adds its arguments."""

    def deco(fn: Handler) -> Handler:
        _REGISTRY[name] = Command(name, help_text, configure, fn)
        return fn

    return deco


def all_commands() -> list[Command]:
    """Every sub-command, in registration order (importing `MODULES` registers them)."""
    for module in MODULES:
        importlib.import_module(f"{__name__}.{module}")
    return list(_REGISTRY.values())
