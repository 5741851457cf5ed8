"""Low frame rates and distillation (issue 25): 50 Hz vs 12.5 Hz, with and without phonetic
distillation into codebook 1, at equal CPU-minutes; then the token measures LM builders use.

Four runs, one at a time, each `telugu-codec train ... --threads 1` for `--steps` steps (the
cosine schedule ending there; or `--minutes M` of wall clock) under `nice -n 5` on the Festival
NSK corpus (phone segments in its manifest, built first when missing: `data/te-nsk`, about
1.5 h, 1 minute to render):

- `sf50`: tiny-sf (50 Hz, plain RVQ);
- `sf50-distill`: tiny-sf + model.quantizer.split_first + loss.distill (phones);
- `hz12`: tiny-12hz (12.5 Hz, plain RVQ);
- `hz12-distill`: tiny-12hz + split_first + loss.distill.

The wall and CPU seconds of each training process are recorded: on a shared machine equal
steps are a fairer budget than equal wall minutes, and the CPU seconds say what each cost.
Each run is then scored (evaluation/tokens.py): the codebook-1 id -> phone probe fitted on
`--probe-files` training files and scored on the held-out files, codebook usage and entropy
on the held-out files, and PESQ-WB / STOI on `--quality-files` held-out files at two
bitrates per frame rate (50 Hz: 1 and 3 codebooks = 0.9 / 1.9 kbps; 12.5 Hz: 4 and 8 = 0.6 /
1.1 kbps; the pitch channel counted). Runs already finished in `--out` are scored, not retrained.

    nice -n 5 .venv/bin/python benchmarks/bench_lowrate.py --steps 300 --out runs/lowrate \\
        --json benchmarks/results_lowrate.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import soundfile as sf
import torch

from telugu_codec.config import TeacherConfig
from telugu_codec.data.corpora import list_audio_files
from telugu_codec.data.synth_corpus import REPO_ROOT, ensure_corpus
from telugu_codec.data.teachers import load_teacher
from telugu_codec.evaluation.tokens import evaluate_tokens
from telugu_codec.model.codec import Codec

DISTILL = ["model.quantizer.split_first=true", "loss.teacher.kind=phones"]
RUNS = {
    "hz12": ("tiny-12hz", [], (4, 8)),
    "hz12-distill": ("tiny-12hz", DISTILL, (4, 8)),
    "sf50": ("tiny-sf", [], (1, 3)),
    "sf50-distill": ("tiny-sf", DISTILL, (1, 3)),
    # reference, scored only: the shipped tiny-sf model (8700 steps on both voices; its
    # held-out sentences are te-nsk's), an undistilled 50 Hz codebook 1 that is well trained
    "te-small": ("", [], (1, 3)),
}
COMMON = ["train.val_pesq=false", "data.val_max_files=8", "train.guard.action=warn"]


def train(
    name: str, corpus: Path, out: Path, budget: list[str], weight: float, seed: int = 0
) -> tuple[float, float]:
    """Train run `name` into out/<name>[-s<seed>] unless it finished.

    Returns:
        (wall seconds, CPU seconds of the training process); zeros for a run kept as it was.
    """
    run = out / run_name(name, seed)
    if (run / "checkpoints" / "best" / "codec.safetensors").exists():
        print(f"{name}: trained already, scoring it", flush=True)
        return 0.0, 0.0
    preset, extra, _ = RUNS[name]
    if extra:
        extra = extra + [f"loss.distill={weight}", f"loss.teacher.path={corpus / 'manifest.tsv'}"]
    cmd = ["nice", "-n", "5", sys.executable, "-m", "telugu_codec", "train", "--config", preset]
    cmd += ["--data", str(corpus / "train"), "--val-data", str(corpus / "val"), "--out", str(run)]
    options = [b for b in budget if "=" not in b]
    overrides = [b for b in budget if "=" in b]
    cmd += [*options, "--threads", "1", "--no-progress", *COMMON, *overrides, *extra]
    cmd += [f"train.seed={seed}"]
    print(" ".join(cmd), flush=True)
    t0, c0 = time.time(), _child_cpu()
    subprocess.run(cmd, check=True, env=os.environ | {"OMP_NUM_THREADS": "1"})
    return time.time() - t0, _child_cpu() - c0


def run_name(name: str, seed: int) -> str:
    """Run folder and results key: the run's name, with -s<seed> for seeds other than 0."""
    return f"{name}-s{seed}" if seed else name


def _child_cpu() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def steps_of(run: Path) -> int:
    steps = 0
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if rec.get("kind") == "train":
            steps = max(steps, int(rec["step"]))
    return steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", type=Path, default=REPO_ROOT / "data" / "te-nsk")
    p.add_argument("--out", type=Path, default=Path("runs/lowrate"))
    p.add_argument("--minutes", type=float, help="training minutes per run (wall clock)")
    p.add_argument("--steps", type=int, default=300, help="training steps per run (no --minutes)")
    p.add_argument("--distill", type=float, default=3.0, help="loss.distill of the distilled runs")
    p.add_argument("--runs", default=",".join(RUNS), help="comma-separated subset of the runs")
    p.add_argument("--seed", type=int, default=0, help="train.seed of the runs (0: as before)")
    p.add_argument("--merge", action="store_true", help="add to the --json file's results")
    p.add_argument("--probe-files", type=int, default=300, help="training files the probe fits")
    p.add_argument("--quality-files", type=int, default=30, help="held-out files for PESQ/STOI")
    p.add_argument("--json", type=Path, help="write the results here")
    p.add_argument("--top-only", action="store_true", help="score each run at its top n_q only")
    args = p.parse_args()
    torch.set_num_threads(1)
    corpus = ensure_corpus(args.corpus, voices=["festival"], workers=1)
    train_files = sorted(str(i.path) for i in list_audio_files(corpus / "train"))
    test_files = sorted(str(i.path) for i in list_audio_files(corpus / "val"))
    probe_train = train_files[:: max(1, len(train_files) // args.probe_files)][: args.probe_files]
    results = json.loads(args.json.read_text()) if args.merge and args.json.exists() else {}
    for name in args.runs.split(","):
        budget = ["--minutes", str(args.minutes)] if args.minutes else []
        budget = budget or [
            "--max-steps",
            str(args.steps),
            f"train.max_steps={args.steps}",
            f"train.val_every={args.steps}",  # one validation, at the end (the saved "best")
        ]
        if RUNS[name][0]:
            wall, cpu = train(name, corpus, args.out, budget, args.distill, args.seed)
            codec = Codec.load(args.out / run_name(name, args.seed))
        else:
            wall, cpu, codec = 0.0, 0.0, Codec.load(name)
        files = probe_train + test_files
        durations = [sf.info(f).duration for f in files]
        teacher = load_teacher(
            TeacherConfig(kind="phones", path=str(corpus / "manifest.tsv"), dim=64),
            files, durations, log=lambda m: None,
        )  # fmt: skip
        rows = []
        for n_q in RUNS[name][2][-1:] if args.top_only else RUNS[name][2]:
            t0 = time.time()
            rep = evaluate_tokens(codec, teacher, probe_train, test_files, n_q,
                                  args.quality_files, log=lambda m: None)  # fmt: skip
            rows.append(asdict(rep))
            print(
                f"{name} n_q={n_q} {rep.bitrate / 1000:.2f} kbps: phone probe "
                f"{100 * rep.probe.accuracy:.1f} % (chance {100 * rep.probe.chance:.1f} %), "
                f"cb1 usage {100 * rep.codebooks[0].usage:.1f} % entropy "
                f"{rep.codebooks[0].entropy_bits:.2f} bits, PESQ-WB {rep.pesq_wb:.3f} "
                f"STOI {rep.stoi:.3f} ({time.time() - t0:.0f} s)",
                flush=True,
            )
        results[run_name(name, args.seed)] = {
            "steps": steps_of(args.out / run_name(name, args.seed)) if RUNS[name][0] else None,
            "train_wall_s": wall,
            "train_cpu_s": cpu,
            "budget": " ".join(budget),
            "rows": rows,
        }
        if args.json:
            args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
