"""The package layout: imports go downward, nothing imports the CLI, importing does no work.

Layers, top to bottom (docs/architecture.md):

    cli -> commands -> demo, compare -> train, evaluation, listening, tokens -> model, data,
        losses, metrics -> nn, spectral, audio, bitstream, checkpoint, config, errors

`evaluation.run_report` reads a run's metrics.jsonl, whose name `train.logging` owns: that one
sideways import is allowed; `train` never imports `evaluation`.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import telugu_codec

PKG_DIR = Path(telugu_codec.__file__).resolve().parent
ROOT = "telugu_codec"

# what each group of modules must not import (by module-name prefix)
LOWER = ("nn", "model", "data", "losses", "metrics", "spectral", "audio", "bitstream")
LOWER += ("checkpoint", "config", "errors")
ABOVE_LOWER = ("train", "evaluation", "listening", "tokens", "commands", "cli", "demo")
ABOVE_LOWER += ("compare", "__main__")
FORBIDDEN = {
    **{low: ABOVE_LOWER for low in LOWER},
    "nn": ABOVE_LOWER + ("model", "data", "losses"),
    "train": ("evaluation", "commands", "cli", "demo", "compare", "__main__"),
    "evaluation": ("listening", "commands", "cli", "demo", "compare", "__main__"),
    "listening": ("train", "commands", "cli", "demo", "compare", "__main__"),
    "tokens": ("train", "evaluation", "commands", "cli", "demo", "compare", "__main__"),
    "demo": ("commands", "cli", "__main__"),
    "compare": ("commands", "cli", "__main__"),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PKG_DIR).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join([ROOT, *parts])


def _is_module(name: str) -> bool:
    rel = Path(*name.split(".")[1:]) if "." in name else Path()
    return (PKG_DIR / rel).with_suffix(".py").is_file() or (PKG_DIR / rel / "__init__.py").is_file()


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """The telugu_codec modules that `path` imports (absolute names)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == ROOT}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != ROOT:
                continue
            subs = [f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")]
            found |= set(subs) if subs and len(subs) == len(node.names) else {target, *subs}
    found.discard(name)
    return found


def _graph(top_level_only: bool) -> dict[str, set[str]]:
    return {
        _module_name(p): _imports(p, top_level_only)
        for p in sorted(PKG_DIR.rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def _group(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def _in(module: str, prefixes: tuple[str, ...]) -> bool:
    return _group(module) in prefixes


def test_the_graph_sees_the_packages():
    graph = _graph(top_level_only=False)
    assert f"{ROOT}.train.trainer" in graph and f"{ROOT}.data.build" in graph
    assert f"{ROOT}.model.codec" in graph[f"{ROOT}.train.trainer"]
    assert f"{ROOT}.data" in graph[f"{ROOT}.train.trainer"]


def test_nothing_imports_the_cli():
    graph = _graph(top_level_only=False)
    allowed = {f"{ROOT}.__main__"}
    offenders = sorted(m for m, deps in graph.items() if f"{ROOT}.cli" in deps and m not in allowed)
    assert offenders == []


def test_commands_are_imported_only_by_the_cli():
    graph = _graph(top_level_only=False)
    offenders = sorted(
        m
        for m, deps in graph.items()
        if any(_in(d, ("commands",)) for d in deps)
        and m != f"{ROOT}.cli"
        and not _in(m, ("commands",))
    )
    assert offenders == []


@pytest.mark.parametrize("group", sorted(FORBIDDEN))
def test_imports_go_downward(group):
    graph = _graph(top_level_only=False)
    offenders = sorted(
        f"{m} imports {d}"
        for m, deps in graph.items()
        if _group(m) == group
        for d in deps
        if _in(d, FORBIDDEN[group])
    )
    assert offenders == []


def test_no_import_cycles():
    graph = _graph(top_level_only=True)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(m: str, path: list[str]) -> None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                cycle = path[path.index(d) :] + [d] if d in path else [m, d]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if d in graph and state.get(d) is None:
                visit(d, path + [d])
        state[m] = 2

    for m in sorted(graph):
        if state.get(m) is None:
            visit(m, [m])


_PROBE = r"""
import json, logging, os, pkgutil, sys, importlib

before_handlers = list(logging.getLogger().handlers)
import telugu_codec
light = {"torch": "torch" in sys.modules}
from telugu_codec.cli import build_parser
build_parser()
light["torch_after_cli"] = "torch" in sys.modules

import torch
built = []
original = torch.nn.Module.__init__
def counting(self, *args, **kwargs):
    built.append(type(self).__name__)
    original(self, *args, **kwargs)
torch.nn.Module.__init__ = counting

names = []
for info in pkgutil.walk_packages(telugu_codec.__path__, "telugu_codec."):
    if info.name.endswith("__main__"):
        continue  # running the CLI is its job
    importlib.import_module(info.name)
    names.append(info.name)
print(json.dumps({
    **light,
    "modules": names,
    "modules_built": built,
    "matplotlib": "matplotlib" in sys.modules,
    "logging_changed": logging.getLogger().handlers != before_handlers,
    "files": sorted(os.listdir(".")),
}))
"""


def test_importing_the_package_does_no_work(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not out["torch"], "import telugu_codec must stay lazy"
    assert not out["torch_after_cli"], "telugu-codec --help must not import torch"
    assert {f"{ROOT}.train.trainer", f"{ROOT}.evaluation.evaluate"} <= set(out["modules"])
    assert out["modules_built"] == []  # no model, loss or discriminator built at import
    assert not out["matplotlib"]  # plotting libraries load when a plot is drawn
    assert not out["logging_changed"]
    assert out["files"] == []  # nothing written
