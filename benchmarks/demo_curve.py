"""The demo's learning curve: validation PESQ-WB and mel distance against training minutes.

Usage:
    python benchmarks/demo_curve.py [runs/demo/train] [--png docs/demo-curve.png]

Reads RUN/metrics.jsonl (validations carry `val/pesq` when `train.val_pesq` is on, as in the
demo's preset) and prints one Markdown row per validation: step, minutes of training, PESQ-WB,
mel distance, amplitude ratio; with --png it also draws PESQ-WB and mel distance vs minutes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def curve(run_dir: Path) -> list[dict]:
    train, rows = {}, []
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("kind") == "train" and "wall_seconds" in r:
            train[r["step"]] = r["wall_seconds"]
        elif r.get("kind") == "val":
            rows.append(r)
    out = []
    for r in rows:
        before = [s for s in train if s <= r["step"]]
        seconds = train[max(before)] if before else 0.0
        out.append(
            {
                "step": r["step"],
                "minutes": seconds / 60,
                "pesq": r.get("val/pesq"),
                "mel_distance": r.get("val/mel_distance"),
                "amplitude": r.get("val/amplitude_ratio"),
            }
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", nargs="?", default="runs/demo/train")
    p.add_argument("--png")
    args = p.parse_args()
    rows = curve(Path(args.run))
    print("| step | minutes | PESQ-WB (val) | mel distance | amplitude |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        pesq = "n/a" if r["pesq"] is None else f"{r['pesq']:.2f}"
        print(
            f"| {r['step']} | {r['minutes']:.1f} | {pesq} | {r['mel_distance']:.3f} | "
            f"{r['amplitude']:.2f} |"
        )
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 3.5))
        xs = [r["minutes"] for r in rows]
        ax.plot(xs, [r["pesq"] for r in rows], "o-", label="PESQ-WB (validation)")
        ax.set_xlabel("training minutes (2 CPU cores)")
        ax.set_ylabel("PESQ-WB")
        ax2 = ax.twinx()
        ax2.plot(xs, [r["mel_distance"] for r in rows], "s--", color="tab:orange")
        ax2.set_ylabel("mel distance", color="tab:orange")
        ax.axhline(2.0, color="grey", lw=0.8, ls=":")
        ax.set_title("make demo: quality vs training time")
        fig.tight_layout()
        fig.savefig(args.png, dpi=100)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
