"""`telugu-codec models`: the pretrained codecs this install ships (`pretrained`)."""

from __future__ import annotations

import argparse

from . import command


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--verify", action="store_true", help="also check every file's SHA-256 (a few ms each)"
    )


@command("models", "list the pretrained codecs shipped with telugu-codec", _models_args)
def cmd_models(args: argparse.Namespace) -> int:
    from ..pretrained import DEFAULT_MODEL, models_dir, registry, resolve

    models = registry()
    if not models:
        print(f"no pretrained models in this install ({models_dir()})")
        return 0
    print(f"{'name':<17} {'params':>7} {'frames/s':>8} {'kbps (1..n codebooks)':<34} latency")
    for name, m in models.items():
        kbps = " ".join(f"{k:g}" for k in m.kbps)
        latency = f"{m.latency_ms:g} ms" if m.latency_ms is not None else "file (non-causal)"
        star = "*" if name == DEFAULT_MODEL else " "
        print(
            f"{name + star:<17} {m.parameters / 1e6:6.2f}M {m.frame_rate:>8g} {kbps:<34} {latency}"
        )
        print(f"  {m.description}")
        if args.verify:
            print(f"  verified: {resolve(name)}")
    print(f"* the default of encode/decode. Files in {models_dir()}; model cards: docs/models.md")
    return 0
