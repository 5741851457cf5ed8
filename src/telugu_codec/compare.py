"""`telugu-codec compare`: the recipe study.

Trains several recipes (presets) from the same initialisation, on the same data, for the same
wall-clock budget, at one model size (the `--size` preset's model and batch), and writes one
table and one plot of amplitude ratio, SNR, SI-SDR, mel distance and PESQ against training
step, so the recipes' health and learning speed can be compared side by side.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config, load_config, to_dict
from .errors import CodecError

CURVES = (
    ("val/amplitude_ratio", "amplitude ratio (out RMS / in RMS)"),
    ("val/snr", "SNR (dB)"),
    ("val/sisdr", "SI-SDR (dB)"),
    ("val/mel_distance", "mel distance (lower is better)"),
    ("val/pesq", "PESQ-WB (MOS-LQO)"),
)


@dataclass
class RecipeResult:
    preset: str
    run_dir: Path
    steps: int
    minutes: float
    final: dict
    curve: list[dict] = field(default_factory=list)
    events: list[str] = field(default_factory=list)


def parse_recipe(spec: str) -> tuple[str, list[str]]:
    """A recipe named on the command line: ``preset`` or ``preset+key=value[+key=value...]``
    (e.g. ``tiny+loss.loudness=0``: the `tiny` recipe without its loudness term)."""
    preset, *changes = spec.split("+")
    if not preset or any("=" not in c for c in changes):
        raise CodecError(
            f"recipe '{spec}': expected a preset, optionally followed by +key=value changes "
            "(e.g. tiny+loss.loudness=0)"
        )
    return preset, changes


OWN_SIZE = "own"  # --size own: every recipe keeps its own model


def replaced_model(spec: str, size: str) -> bool:
    """Whether `size` replaces a model that recipe `spec` defines differently (a study of
    recipes then compares `size`'s architecture under each recipe, not the recipes' own)."""
    if size == OWN_SIZE:
        return False
    preset, changes = parse_recipe(spec)
    own = to_dict(load_config(preset, changes).model)
    base = to_dict(load_config(size).model)
    own.pop("tanh_output", None)
    base.pop("tanh_output", None)
    return own != base


def study_config(preset: str, size: str, overrides: list[str]) -> Config:
    """`preset`'s recipe (losses, discriminators, optimiser) on `size`'s model and batch.

    Only the recipe differs between presets: model architecture (hence the initial weights,
    seeded identically), data crops and batch come from `size`. A preset's `tanh_output`
    (a parameter-free switch) is kept because it is part of the recipe our user ran.
    `size` OWN_SIZE ("own") keeps each preset's own model, data and discriminators: a study of
    architectures (e.g. decoders) rather than of recipes.
    `preset` may carry its own changes (`parse_recipe`); `overrides` apply to every recipe.
    """
    spec = preset
    preset, changes = parse_recipe(spec)
    recipe = load_config(preset, changes)
    data = dict(to_dict(recipe))
    if size != OWN_SIZE:
        base = load_config(size)
        model = to_dict(base.model)
        model["tanh_output"] = recipe.model.tanh_output
        data["model"] = model
        data["data"] = to_dict(base.data)
        d = data["discriminator"]
        for kind in ("msd", "mpd", "stftd", "mrd"):  # discriminator widths of the size preset
            d[kind] = to_dict(getattr(base.discriminator, kind))
    data["train"]["val_pesq"] = True
    data["train"]["guard"]["action"] = "warn"  # observe the failure, do not repair it
    data["name"] = spec
    from .config import _merge, from_dict, parse_override

    for text in overrides:
        data = _merge(data, parse_override(text))
    return from_dict(data)


def run_study(
    presets: list[str],
    data: str | Path,
    out: str | Path,
    minutes: float,
    size: str = "tiny",
    val_data: str | Path | None = None,
    val_every: int | None = None,
    max_steps: int | None = None,
    overrides: list[str] | None = None,
    jobs: int = 1,
    threads: int | None = None,
    log=print,
) -> list[RecipeResult]:
    """Train each preset for `minutes` and write compare.md / compare.json / compare.png.

    Each recipe trains in its own `telugu-codec train` process (log in RUN/train.log), `jobs`
    at a time, each with `threads` torch threads (default: the cores divided among the jobs),
    so that every recipe gets the same compute.
    """
    import os
    import subprocess
    import sys

    from .config import to_yaml
    from .train.logging import read_metrics

    out = Path(out)
    if (out / "compare.json").exists():
        raise CodecError(f"{out} already holds a comparison; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    for spec in presets:  # every recipe checked before anything trains
        study_config(spec, size, list(overrides or []))
        if replaced_model(spec, size):
            log(
                f"note: {spec} trains {size}'s model, not its own (only its recipe is compared; "
                "--size own keeps each preset's model)"
            )
    pending, running, done = list(presets), [], []
    while pending or running:
        while pending and len(running) < jobs:
            preset = pending.pop(0)
            cfg = study_config(preset, size, list(overrides or []))
            if val_every is not None:
                cfg.train.val_every = cfg.train.ckpt_every = val_every
            cfg_path = out / f"{preset}.yaml"
            cfg_path.write_text(to_yaml(cfg))
            cmd = [
                sys.executable,
                "-m",
                "telugu_codec",
                "train",
                "--config",
                str(cfg_path),
                "--data",
                str(data),
                "--out",
                str(out / preset),
                "--minutes",
                str(minutes),
                "--threads",
                str(threads),
                "--no-progress",
            ]
            if val_data is not None:
                cmd += ["--val-data", str(val_data)]
            if max_steps is not None:
                cmd += ["--max-steps", str(max_steps)]
            env = dict(os.environ, OMP_NUM_THREADS=str(threads))
            (out / preset).mkdir(parents=True, exist_ok=True)
            logf = open(out / preset / "train.log", "w")
            log(f"== {preset}: training for {minutes:g} min ({threads} thread(s))")
            running.append((preset, subprocess.Popen(cmd, stdout=logf, stderr=logf, env=env), logf))
        still = []
        for preset, proc, logf in running:
            if proc.poll() is None:
                still.append((preset, proc, logf))
                continue
            logf.close()
            if proc.returncode not in (0, 2):
                tail = (out / preset / "train.log").read_text()[-500:]
                raise CodecError(f"training {preset} failed (exit {proc.returncode}): {tail}")
            done.append(preset)
            log(f"== {preset}: finished")
        running = still
        if running:
            time.sleep(1.0)
    results = []
    for preset in presets:
        records = read_metrics(out / preset)
        curve = [r for r in records if r.get("kind") == "val"]
        train = [r for r in records if r.get("kind") == "train"]
        events = [
            f"step {r['step']}: {r.get('message', '')}" for r in records if r.get("kind") == "event"
        ]
        results.append(
            RecipeResult(
                preset,
                out / preset,
                steps=max((r["step"] for r in train + curve), default=0),
                minutes=(train[-1].get("wall_seconds", 0.0) / 60) if train else 0.0,
                final=curve[-1] if curve else {},
                curve=curve,
                events=events,
            )
        )
    write_study(results, out, minutes, size, presets)
    return results


def _fmt(v) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    return f"{v:.2f}"


def write_study(
    results: list[RecipeResult], out: Path, minutes: float, size: str, presets: list[str]
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    rows = []
    header = (
        "| recipe | steps | amplitude ratio | SNR dB | SI-SDR dB | mel distance | PESQ-WB | "
        "codebook-1 usage | first amplitude < 0.5 (step) | health at end |"
    )
    rows.append(header)
    rows.append("|" + "---|" * 10)
    for r in results:
        f = r.final
        low = next((c["step"] for c in r.curve if c.get("val/amplitude_ratio", 1) < 0.5), None)
        rows.append(
            f"| {r.preset} | {r.steps} | {_fmt(f.get('val/amplitude_ratio'))} | "
            f"{_fmt(f.get('val/snr'))} | {_fmt(f.get('val/sisdr'))} | "
            f"{_fmt(f.get('val/mel_distance'))} | {_fmt(f.get('val/pesq'))} | "
            f"{_fmt(f.get('val/usage/q0'))} | {low if low is not None else 'never'} | "
            f"{f.get('health', 'n/a')} |"
        )
    md = [
        f"# Recipe study ({size} model size, {minutes:g} min per recipe)",
        "",
        "Final validation of each recipe (same initialisation, data and time budget):",
        "",
        *rows,
        "",
        "![curves](compare.png)",
        "",
    ]
    for r in results:
        if r.events:
            md.append(f"Events of `{r.preset}`: " + "; ".join(r.events[:10]))
            md.append("")
    (out / "compare.md").write_text("\n".join(md))
    (out / "compare.json").write_text(
        json.dumps(
            [
                {
                    "preset": r.preset,
                    "steps": r.steps,
                    "minutes": r.minutes,
                    "final": r.final,
                    "curve": r.curve,
                    "events": r.events,
                }
                for r in results
            ],
            indent=1,
            default=str,
        )
    )
    fig, axes = plt.subplots(len(CURVES), 1, figsize=(9, 3.0 * len(CURVES)), sharex=True)
    for ax, (key, label) in zip(axes, CURVES):
        for r in results:
            pts = [(c["step"], c[key]) for c in r.curve if isinstance(c.get(key), (int, float))]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker="o", markersize=3, label=r.preset)
        if key == "val/amplitude_ratio":
            ax.axhspan(0.9, 1.1, color="green", alpha=0.1, label="target 0.9-1.1")
            ax.axhline(0.5, color="red", linestyle="--", linewidth=1, label="guard 0.5")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    axes[-1].set_xlabel("training step")
    axes[0].set_title(f"Recipe study: validation metrics vs step ({minutes:g} min each, CPU)")
    fig.tight_layout()
    fig.savefig(out / "compare.png", dpi=100)
    plt.close(fig)
