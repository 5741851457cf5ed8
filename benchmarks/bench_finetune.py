"""What fine-tuning from `te-small` is worth on a voice it has not heard.

    python benchmarks/bench_finetune.py [--minutes 10] [--sentences 440]

1. Renders a voice that is in neither corpus te-small learnt from: espeak-ng's Telugu with the
   Klatt glottal source (`te+klatt3`, the corpus used the formant variants m1-m7, f1-f5, and
   Festival's NSK diphones), `--sentences` sentences of the corpus list; every 10th sentence
   is held out, as in the corpus (those sentences te-small never heard in any voice).
2. Trains `tiny-sf` on it twice, side by side with one thread each (the same load on both):
   from scratch, and from te-small (`--init-from te-small`), each for `--minutes` of training
   time, with the same recipe (no GAN in so short a run: `d_warmup_steps` beyond the end).
3. Evaluates te-small as shipped, both runs' last checkpoints, Opus and Codec2 on the held-out
   files at 1.5 and 3 kbps, and the paired difference fine-tuned - scratch per file.

Results: `benchmarks/results_finetune.json`, and the "Fine-tuning from te-small" section of
`docs/models.md` (between its markers).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from telugu_codec.evaluation.report import replace_marked

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results_finetune.json"
CARD = ROOT / "docs" / "models.md"
START, END = "<!-- finetune:start -->", "<!-- finetune:end -->"
VOICE = "klatt3"
SR = 16000


def render(out: Path, n: int, seed: int = 0) -> tuple[Path, Path]:
    """The unseen voice's train/ and val/ folders (made once)."""
    from telugu_codec.audio import resample
    from telugu_codec.data.synth_corpus import SENTENCE_FILES, read_sentences
    from telugu_codec.data.synth_render import PITCH, SPEED_WPM, VAL_EVERY, edge_span
    from telugu_codec.data.synth_voices import espeak_render

    train, val = out / "train", out / "val"
    done = out / "done.json"
    if done.exists():
        return train, val
    train.mkdir(parents=True, exist_ok=True)
    val.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i, text in enumerate(read_sentences(*SENTENCE_FILES)[:n]):
        speed = int(rng.integers(SPEED_WPM[0], SPEED_WPM[1] + 1))
        pitch = int(rng.integers(PITCH[0], PITCH[1] + 1))
        s = espeak_render(text, VOICE, speed, pitch)
        a, b = edge_span(s.wav, s.sample_rate)
        wav = resample(s.wav[a:b], s.sample_rate, SR)
        wav = wav * (10 ** (-3 / 20) / max(float(np.abs(wav).max()), 1e-9))
        folder = val if i % VAL_EVERY == VAL_EVERY - 1 else train
        sf.write(folder / f"klatt_{i:04d}.flac", wav.astype(np.float32), SR)
    done.write_text(json.dumps({"voice": f"te+{VOICE}", "sentences": n, "seed": seed}))
    return train, val


def train_both(train: Path, val: Path, work: Path, minutes: float) -> dict[str, Path]:
    """Scratch and fine-tuned runs side by side (one thread each); their run folders."""
    common = [
        "--config", "tiny-sf", "--data", str(train), "--val-data", str(val),
        "--minutes", str(minutes), "--threads", "1", "--no-progress",
        "train.max_steps=100000", "train.d_warmup_steps=100000", "train.val_every=500",
        "train.val_pesq=false",
    ]  # fmt: skip
    runs = {"scratch": work / "scratch", "te-small": work / "from-te-small"}
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    procs = {}
    for name, run in runs.items():
        if (run / "done").exists():
            continue
        extra = ["--init-from", "te-small"] if name == "te-small" else []
        cmd = [sys.executable, "-m", "telugu_codec", "train", *common, "--out", str(run), *extra]
        log = open(work / f"{run.name}.log", "w")
        procs[name] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env), run)
    for name, (p, run) in procs.items():
        if p.wait() != 0:
            raise SystemExit(f"{name} training failed: see {work / (run.name + '.log')}")
        (run / "done").write_text("")
    return runs


def _steps(run: Path) -> int:
    from telugu_codec.train.checkpoints import latest_checkpoint

    ckpt = latest_checkpoint(run)
    return int(json.loads((ckpt / "state.json").read_text())["step"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sentences", type=int, default=440)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-finetune")
    ap.add_argument("--load", default="", help="what else ran on the machine, for the record")
    args = ap.parse_args()

    from telugu_codec.evaluation.evaluate import evaluate
    from telugu_codec.train.checkpoints import latest_checkpoint

    t0 = time.time()
    train, val = render(args.work / "voice", args.sentences)
    n_train, n_val = len(list(train.glob("*.flac"))), len(list(val.glob("*.flac")))
    print(f"voice te+{VOICE}: {n_train} train, {n_val} held-out files ({time.time() - t0:.0f} s)")
    runs = train_both(train, val, args.work, args.minutes)
    systems = {"te-small (as shipped)": "te-small"}
    systems |= {f"{k} + {args.minutes:g} min": latest_checkpoint(r) for k, r in runs.items()}
    rows, per_file = {}, {}
    for i, (label, ckpt) in enumerate(systems.items()):
        report = evaluate(
            ckpt, val, args.work / f"eval-{i}", bitrates=[1.5, 3.0],
            baselines=("opus", "codec2") if i == 0 else (), force=True, progress=False,
        )  # fmt: skip
        for s in report.summaries:
            name = f"{label} {s.system}" if s.family == "codec" else s.system
            rows[name] = {
                "kbps": s.kbps.mean,
                "pesq_wb": s.metrics["pesq_wb"].mean,
                "stoi": s.metrics["stoi"].mean,
            }
        for r in report.per_file:
            if r.family == "codec":
                per_file.setdefault((label, r.system), {})[r.file] = r.metrics.get("pesq_wb")
    paired = {}
    for system in ("codec-1.4k", "codec-2.9k"):
        ft = per_file.get((f"te-small + {args.minutes:g} min", system), {})
        sc = per_file.get((f"scratch + {args.minutes:g} min", system), {})
        common = [f for f in ft if f in sc and ft[f] is not None and sc[f] is not None]
        d = np.array([ft[f] - sc[f] for f in common])
        if len(d) > 1:
            half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
            paired[system] = {"mean": float(d.mean()), "ci95": float(half), "n": len(d),
                              "wins": int((d > 0).sum())}  # fmt: skip
    results = {
        "voice": f"espeak-ng te+{VOICE}",
        "held_out_files": len(list(val.glob("*.flac"))),
        "minutes": args.minutes,
        "steps": {k: _steps(r) for k, r in runs.items()},
        "systems": rows,
        "paired_pesq_finetuned_minus_scratch": paired,
        "target": ">= +0.3 PESQ-WB after 10 minutes",
        "machine": f"{os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "load": args.load or "nothing else recorded",
        "command": f"python benchmarks/bench_finetune.py --minutes {args.minutes:g}",
    }
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_card(results)
    print(json.dumps(paired, indent=2))


def card_section(r: dict) -> str:
    lines = [
        START,
        "",
        f"`{r['command']}` ({r['machine']}, {r['date']}; while it ran: {r['load']}): a voice "
        f"te-small never heard ({r['voice']}, Klatt glottal source), {r['held_out_files']} "
        f"held-out sentences; {r['minutes']:g} minutes of training from scratch "
        f"({r['steps']['scratch']} steps) and from te-small ({r['steps']['te-small']} steps), "
        "side by side, one thread each.",
        "",
        "| system | kbps | PESQ-WB | STOI |",
        "|---|---:|---:|---:|",
    ]
    for name, row in r["systems"].items():
        lines.append(f"| {name} | {row['kbps']:.2f} | {row['pesq_wb']:.2f} | {row['stoi']:.2f} |")
    lines += ["", "Fine-tuned minus scratch, PESQ-WB per file (95 % interval):", ""]
    for system, p in r["paired_pesq_finetuned_minus_scratch"].items():
        lines.append(
            f"- {system}: {p['mean']:+.2f} ± {p['ci95']:.2f} ({p['wins']} of {p['n']} files "
            f"better); target {r['target']}: {'met' if p['mean'] >= 0.3 else 'NOT met'}"
        )
    lines += ["", END]
    return "\n".join(lines)


def write_card(results: dict, card: Path = CARD) -> None:
    """Re-render the card's fine-tuning section (`card_section`)."""
    replace_marked(card, {"finetune": card_section(results)})


if __name__ == "__main__":
    main()
