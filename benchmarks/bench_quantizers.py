"""The three quantizer kinds (EMA RVQ, DAC factorised, FSQ) trained with the `tiny` recipe.

Usage:
    python benchmarks/bench_quantizers.py --kind ema --out runs/bench_quantizers [--minutes 10]
    python benchmarks/bench_quantizers.py --report runs/bench_quantizers \
        [--write benchmarks/results_quantizers.md]

Each `--kind` run trains `tiny` with `model.quantizer.kind=KIND` on data/demo-te/train for the
same budget (`--minutes` of wall-clock, or `--steps`), on `--threads` threads, with the cosine
schedule ending with the budget, then evaluates the final weights on data/demo-te/val at every
bitrate the model serves (n_q = 1..6: 0.5 .. 3 kbps): mel distance, PESQ-WB, STOI. From the
run's metrics.jsonl it takes codebook usage and perplexity at the last validation and the
codes re-seeded per step after the k-means warm-up. `--report` turns the JSON files into a
Markdown table. Run the kinds one after another on an otherwise idle machine, or all at once
with one thread each, and say which in the results.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "demo-te"


def _records(run_dir: Path) -> list[dict]:
    out = []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def run_kind(kind: str, out: Path, minutes: float | None, steps: int | None, threads: int) -> dict:
    from telugu_codec.config import load_config
    from telugu_codec.evaluation.evaluate import evaluate
    from telugu_codec.train.trainer import Trainer

    torch.set_num_threads(threads)
    run_dir = out / kind
    max_steps = steps if steps is not None else 10**6
    cfg = load_config(
        "tiny",
        [
            f"model.quantizer.kind={kind}",
            "train.guard.action=warn",  # observe, do not repair
            f"train.max_steps={max_steps}",
        ],
    )
    t0 = time.time()
    trainer = Trainer(
        cfg,
        run_dir,
        DATA / "train",
        val_data=DATA / "val",
        time_budget_s=None if minutes is None else minutes * 60,
        progress=False,
        tensorboard=False,
    )
    result = trainer.train(max_steps)
    train_s = time.time() - t0
    ckpt = sorted((run_dir / "checkpoints").glob("step_*"))[-1]
    codec_n_q = cfg.model.quantizer.n_q
    per_q = 50 * 10 / 1000  # kbps per codebook at 50 Hz x 10 bits
    bitrates = [round(per_q * n, 3) for n in range(1, codec_n_q + 1)]
    report = evaluate(
        ckpt,
        DATA / "val",
        out / f"{kind}_eval",
        bitrates=bitrates,
        baselines=(),
        metrics=["pesq_wb", "stoi", "mel_distance", "amplitude_ratio"],
        force=True,
        progress=False,
        notice=lambda m: None,
    )
    rows = []
    for s in report.summaries:
        metrics = {k: v.mean for k, v in s.metrics.items()}
        rows.append({"system": s.system, "kbps": s.nominal_kbps, **metrics})
    recs = _records(run_dir)
    train_recs = [r for r in recs if r.get("kind") == "train"]
    vals = [r for r in recs if r.get("kind") == "val"]
    last = vals[-1] if vals else {}
    n_q = codec_n_q
    replaced = {
        q: [r[f"quantizer/replaced/q{q}"] for r in train_recs if f"quantizer/replaced/q{q}" in r]
        for q in range(n_q)
    }
    res = {
        "kind": kind,
        "steps": result.step,
        "train_minutes": result.wall_seconds / 60,
        "wall_minutes_incl_setup": train_s / 60,
        "seconds_per_step": result.wall_seconds / max(1, result.step),
        "threads": threads,
        "load_average": os.getloadavg(),
        "eval": rows,
        "usage": [last.get(f"val/usage/q{q}") for q in range(n_q)],
        "perplexity": [last.get(f"val/perplexity/q{q}") for q in range(n_q)],
        "distinct": [last.get(f"val/distinct/q{q}") for q in range(n_q)],
        "replaced_per_step_mean": [float(np.mean(v)) if v else None for v in replaced.values()],
        "replaced_per_step_last_500": [
            float(np.mean(v[-50:])) if v else None for v in replaced.values()
        ],
        "health": last.get("health"),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }
    (out / f"{kind}.json").write_text(json.dumps(res, indent=2, default=str))
    return res


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def report(out: Path) -> str:
    kinds = ("ema", "factorized", "fsq")
    results = [
        json.loads((out / f"{k}.json").read_text()) for k in kinds if (out / f"{k}.json").exists()
    ]
    lines = [
        "| kind | steps | s/step | kbps | mel distance | PESQ-WB | STOI |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for row in sorted(r["eval"], key=lambda x: x["kbps"] or 0):
            lines.append(
                f"| {r['kind']} | {r['steps']} | {r['seconds_per_step']:.2f} | "
                f"{_fmt(row['kbps'], 2)} | {_fmt(row.get('mel_distance'))} | "
                f"{_fmt(row.get('pesq_wb'), 2)} | {_fmt(row.get('stoi'), 3)} |"
            )
    lines += [
        "",
        "| kind | codebook | usage | perplexity | distinct | replaced/step (mean, last 500) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for q, (u, p, d, rm, rl) in enumerate(
            zip(
                r["usage"],
                r["perplexity"],
                r["distinct"],
                r["replaced_per_step_mean"],
                r["replaced_per_step_last_500"],
            )
        ):
            lines.append(
                f"| {r['kind']} | q{q} | {_fmt(u, 2)} | {_fmt(p, 1)} | {_fmt(d, 2)} | "
                f"{_fmt(rm, 1)}, {_fmt(rl, 1)} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kind", choices=("ema", "factorized", "fsq"))
    p.add_argument("--out", default=str(ROOT / "runs" / "bench_quantizers"))
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--steps", type=int, help="a step budget instead of --minutes")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", metavar="OUT", help="summarise the runs in OUT")
    p.add_argument("--write", help="also write the summary to this Markdown file")
    args = p.parse_args()
    if args.report:
        text = report(Path(args.report))
        print(text)
        if args.write:
            Path(args.write).write_text(text)
        return
    if not args.kind:
        p.error("--kind or --report is required")
    res = run_kind(
        args.kind,
        Path(args.out),
        None if args.steps else args.minutes,
        args.steps,
        args.threads,
    )
    print(json.dumps(res, indent=2, default=str))


if __name__ == "__main__":
    main()
