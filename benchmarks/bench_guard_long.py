"""Does the collapse guard stay quiet through long healthy runs, GAN phase included?

    python benchmarks/bench_guard_long.py run    [--out runs/guard-long] [--threads 1]
    python benchmarks/bench_guard_long.py summary RUN [RUN ...] [--load "what else ran"]

`run` trains the two runs of issue 22 one after the other (start them side by side by hand
with two shells if the machine has the cores):

- `istft`: `tiny-istft`, 6000 steps, the GAN from step 4000 (2000 steps with it);
- `seanet-snr`: `tiny` (SEANet decoder) with an SI-SDR term, 2500 steps, the GAN from step
  1500: its SNR is positive before the GAN joins, which is where the old SNR rule fired.

`summary` reads each run's metrics.jsonl and writes `benchmarks/results_guard_long.md`: every
validation (SNR, amplitude, mel distance, PESQ, codebook floors, health) and every guard event.
A false rollback is any rollback or stop in these healthy runs.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from pathlib import Path

from telugu_codec.evaluation.run_log import read_metrics_log

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results_guard_long.md"
DATA = ROOT / "data" / "demo-te"
RUNS = {
    "istft": ["--config", "tiny-istft", "--max-steps", "6000", "train.d_warmup_steps=4000"],
    "seanet-snr": [
        "--config",
        "tiny",
        "--max-steps",
        "2500",
        "train.d_warmup_steps=1500",
        "loss.sisdr=1.0",
    ],
}


def train(out: Path, threads: int) -> list[Path]:
    runs = []
    for name, args in RUNS.items():
        run = out / name
        cmd = [sys.executable, "-m", "telugu_codec", "train", "--data", str(DATA / "train")]
        cmd += ["--val-data", str(DATA / "val"), "--out", str(run), "--threads", str(threads)]
        cmd += ["--no-progress", *args]
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
        runs.append(run)
    return runs


def _f(rec: dict, key: str, fmt: str) -> str:
    v = rec.get(key)
    return format(v, fmt) if isinstance(v, (int, float)) else "-"


def _floors(rec: dict) -> str:
    perp = [v for k, v in rec.items() if k.startswith("val/perplexity/q")]
    usage = rec.get("val/usage/q0")
    if not perp:
        return "-"
    return f"{min(perp):.0f}" + (f" / {usage:.0%}" if isinstance(usage, float) else "")


def summarize(run: Path) -> tuple[list[str], int]:
    """Markdown lines for one run, and its number of rollbacks + stops by the guard."""
    log = read_metrics_log(run / "metrics.jsonl")
    config = (run / "config.yaml").read_text(encoding="utf-8")
    warm = next(
        (ln.split(":")[1].strip() for ln in config.splitlines() if "d_warmup_steps" in ln), "?"
    )
    last = max([r["step"] for r in log.train + log.val] or [0])
    acted = [e for e in log.events if e.get("event") in ("rollback", "stop")]
    pre = [r["val/snr"] for r in log.val if warm.isdigit() and r["step"] <= int(warm)]
    pre_snr = f"best SNR before the GAN {max(pre):.2f} dB; " if pre else ""
    lines = [
        f"### {run.name}",
        "",
        f"{last} steps, the GAN from step {warm}; {len(log.val)} validations; {pre_snr}"
        f"{len(log.events)} guard events, of which {len(acted)} rollbacks or stops.",
        "",
        "| step | GAN | SNR dB | amplitude | mel distance | PESQ-WB | min perplexity / q0 usage "
        "| health |",
        "|---:|:-:|---:|---:|---:|---:|---:|---|",
    ]
    for r in log.val:
        gan = "yes" if warm.isdigit() and r["step"] > int(warm) else ""
        lines.append(
            f"| {r['step']} | {gan} | {_f(r, 'val/snr', '.2f')} "
            f"| {_f(r, 'val/amplitude_ratio', '.2f')} "
            f"| {_f(r, 'val/mel_distance', '.3f')} | {_f(r, 'val/pesq', '.2f')} | {_floors(r)} "
            f"| {r.get('health', '-')} |"
        )
    for e in log.events:
        lines.append(f"\nevent at step {e['step']}: {e.get('event')}: {e.get('message', '')}")
    return lines + [""], len(acted)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=ROOT / "runs" / "guard-long")
    r.add_argument("--threads", type=int, default=1)
    s = sub.add_parser("summary")
    s.add_argument("runs", nargs="+", type=Path)
    s.add_argument("--load", default="", help="what else ran on the machine, for the record")
    args = ap.parse_args()
    runs = train(args.out, args.threads) if args.cmd == "run" else args.runs
    body, counts = [], []
    for run in runs:
        lines, acted = summarize(run)
        body += lines
        counts.append(f"{run.name} {acted}")
    false_alarms = len(counts) and sum(int(c.rsplit(" ", 1)[1]) for c in counts)
    head = [
        "# Long healthy runs and the collapse guard",
        "",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
        f"{getattr(args, 'load', '') or 'load not recorded'}.",
        f"**Rollbacks or stops per run: {', '.join(counts)}** (read the tables: one in a run "
        "whose metrics stay healthy is a false alarm; one at a real collapse is the guard "
        "working).",
        "",
    ]
    RESULTS.write_text("\n".join(head + body), encoding="utf-8")
    print(f"{RESULTS}: rollbacks or stops per run: {', '.join(counts)} ({false_alarms} in all)")


if __name__ == "__main__":
    main()
