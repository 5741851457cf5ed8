"""Does explicit pitch pay? The decoders of a `compare --size own` study, scored on both voices.

Issue 21, item 4: `tiny-istft` (today's demo), the source-filter decoder with the pitch channel
(`tiny-sf`) and the same with the pitch zeroed (`tiny-sf+model.pitch.zero=true`), trained at
the same time on the same data (one thread each), then scored on the espeak held-out sentences
(data/demo-te/val) and the real speaker's (Festival NSK) held-out sentences of the two-voice
corpus, with `pesq_split`. Prints and writes one Markdown file: the validation curves (PESQ-WB
and mel distance against minutes and steps), the cost per step, and per voice the systems at
<= 3 kbps with Opus 6k and Codec2 3200 beside them.

Usage (from the repository root; the study itself is the `compare` command):

    .venv/bin/telugu-codec compare --size own --jobs 4 --threads 1 --minutes 70 \\
        --max-steps 2000 --presets "tiny-istft,tiny-sf,tiny-sf+model.pitch.zero=true" \\
        --data data/demo-te/train --val-data data/demo-te/val --out runs/pitch-study
    .venv/bin/python benchmarks/bench_pitch_codec.py runs/pitch-study \\
        --out benchmarks/results_pitch_codec.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from demo_curve import curve

from telugu_codec.data.synth_corpus import TWO_VOICE_DIR
from telugu_codec.demo import DEFAULT_DATA, HELD_OUT_FILES, voice_manifest
from telugu_codec.evaluation.evaluate import evaluate
from telugu_codec.train.logging import read_metrics

KEYS = ("pesq_wb", "stoi", "mel_distance", "pesq_split_magnitude", "pesq_split_phase")


def seconds_per_step(run: Path) -> float:
    """Median wall seconds per training step over the run's logged intervals."""
    records = [r for r in read_metrics(run) if r.get("kind") == "train" and "wall_seconds" in r]
    pts = [(r["step"], r["wall_seconds"]) for r in records]
    rates = sorted((b[1] - a[1]) / (b[0] - a[0]) for a, b in zip(pts, pts[1:]) if b[0] > a[0])
    return rates[len(rates) // 2] if rates else float("nan")


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("study", type=Path, help="a `compare --size own` output folder")
    p.add_argument("--corpus", type=Path, default=TWO_VOICE_DIR, help="the two-voice corpus")
    p.add_argument("--max-files", type=int, default=HELD_OUT_FILES)
    p.add_argument("--out", type=Path, help="write the Markdown here too")
    args = p.parse_args()
    runs = sorted(d for d in args.study.iterdir() if (d / "metrics.jsonl").exists())
    sets = {"espeak": DEFAULT_DATA / "val"}
    real = voice_manifest(
        args.corpus, "festival", args.study / "heldout-festival.tsv", args.max_files
    )
    if real is not None:
        sets["festival"] = real
    lines = [f"Study: `{args.study}`; held-out sets: {', '.join(sets)}", ""]
    lines += ["### Validation curves (espeak val, 12 files)", ""]
    lines += [
        "| run | s/step | step | minutes | PESQ-WB | mel distance |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        for c in curve(run):
            lines.append(
                f"| {run.name} | {seconds_per_step(run):.2f} | {c['step']} | {c['minutes']:.1f} | "
                f"{_fmt(c['pesq'])} | {_fmt(c['mel_distance'])} |"
            )
    for name, data in sets.items():
        lines += ["", f"### {name} held-out sentences", ""]
        lines += [
            "| system | kbps | PESQ-WB | STOI | mel distance | PESQ mag. hybrid "
            "| PESQ phase hybrid |",
            "|---|---|---|---|---|---|---|",
        ]
        baselines_done = False
        for run in runs:
            ckpt = run / "checkpoints" / "best"
            report = evaluate(
                ckpt if ckpt.exists() else run,
                data,
                args.study / f"eval-{name}" / run.name,
                bitrates=[1.5, 3.0],
                baselines=() if baselines_done else ("opus", "codec2"),
                max_files=args.max_files,
                metrics=("default", "pesq_split"),
                force=True,
                progress=False,
            )
            for s in report.summaries:
                if s.family != "codec" and (baselines_done or s.system not in REFS):
                    continue
                label = f"{run.name} {s.system}" if s.family == "codec" else s.system
                vals = [s.metrics[k].mean if k in s.metrics else None for k in KEYS]
                lines.append(
                    f"| {label} | {s.nominal_kbps:.2f} | " + " | ".join(map(_fmt, vals)) + " |"
                )
            baselines_done = True
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


REFS = ("opus-6k", "codec2-3200", "codec2-1600")

if __name__ == "__main__":
    main()
