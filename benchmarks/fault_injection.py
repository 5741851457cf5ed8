"""Fault injection: kill a tiny training run at random moments and check every resume.

Usage:
    python benchmarks/fault_injection.py [--kills 20] [--chains 4] [--seed 0]
        [--out /tmp/fault_injection] [--results benchmarks/results_fault_injection.md]

A reference run trains a tiny codec uninterrupted, through several guard rollbacks (the
discriminator-overpowering check is set so that it fires every few steps, and every rollback
goes back to the last healthy validation with halved learning rates). Then `--chains` runs of
the same config are each killed `--kills / --chains` times and resumed with ``--resume``; each
kill is one of

- ``sigkill-random``: SIGKILL at a random moment (start-up, a step, a validation, a write);
- ``sigkill-checkpoint``: SIGKILL while a checkpoint is being written (a ``.tmp_step_*``
  folder exists);
- ``sigkill-rollback``: SIGKILL right after a rollback is logged in metrics.jsonl;
- ``sigterm-random``: SIGTERM (preemption) at a random moment: the trainer must save and exit.

After every kill it checks that no checkpoint is corrupt (every one loads and verifies), which
checkpoint a resume must take (the newest by (rollbacks, step)) and that the resumed run took
it (the ``resume`` event in metrics.jsonl, followed by the redone rollback when the checkpoint
carried one), and counts the steps lost. At the end of each chain the final checkpoint's codec,
discriminator and optimizer tensors must equal the reference run's bit for bit (CPU, one
thread, fixed seed: the run is deterministic, so "where determinism allows" is everywhere).
Prints a summary and writes a Markdown results file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from telugu_codec.checkpoint import load_tensors
from telugu_codec.errors import CheckpointError
from telugu_codec.train.checkpoints import latest_checkpoint, list_checkpoints, read_state

ROOT = Path(__file__).resolve().parent.parent
MAX_STEPS = 30
OVERRIDES = [
    # a codec of a few thousand parameters, a small MPD
    "model.encoder.channels=4",
    "model.decoder.channels=4",
    "model.latent_dim=16",
    "model.quantizer.codebook_size=64",
    "model.quantizer.n_q=4",
    "model.quantizer.kmeans_iters=2",
    # k-means init and dead-code re-seeding stay on (their buffers are checkpointed in
    # quantizer.safetensors); `--no-quantizer-upkeep` turns them off
    "discriminator.kinds=[mpd]",
    "discriminator.mpd.periods=[2,3]",
    "discriminator.mpd.channels=4",
    "discriminator.mpd.max_channels=16",
    "loss.mel_loss.n_ffts=[64,256]",
    "loss.mel_loss.n_mels=[16,32]",
    "data.segment_seconds=0.25",
    "data.batch_size=2",
    "data.val_max_files=2",
    "data.val_max_seconds=0.5",
    "train.g_optim.lr=1e-3",
    "train.d_optim.lr=1e-3",
    "train.log_every=1",
    "train.val_every=3",
    "train.ckpt_every=2",
    "train.keep_last=2",
    "train.d_warmup_steps=4",
    # the guard: only "D overpowers G" fires, 5 steps after D starts and after each rollback
    "train.guard.min_d_loss=1000",
    "train.guard.d_loss_patience=5",
    "train.guard.max_rollbacks=100",
    "train.guard.lr_factor=0.8",  # keep learning after many rollbacks
    "train.guard.min_amplitude=0",
    "train.guard.max_amplitude=1000",
    "train.guard.patience=0",
    "train.guard.min_codebook_usage=0",
    "train.guard.min_perplexity=0",
    "train.guard.max_code_churn=1",
]
QUANTIZER_UPKEEP = True  # k-means init and dead-code replacement (--no-quantizer-upkeep: off)
UPKEEP_OFF = ("model.quantizer.kmeans_init=false", "model.quantizer.dead_code_window=0")
KINDS = ("sigkill-random", "sigkill-checkpoint", "sigkill-rollback", "sigterm-random")
COMPARED = ("codec.safetensors", "discriminator.safetensors", "optimizers.safetensors")


@dataclass
class Kill:
    chain: int
    kind: str
    fired: bool = False  # False when the run ended before the trigger
    seconds: float = 0.0  # after the process started
    mid_write: bool = False  # a .tmp_step_* folder existed at the kill
    exit_code: int | None = None
    expected: str | None = None  # the checkpoint a resume must take
    pending_rollback: bool = False
    resumed_step: int | None = None
    expected_step: int | None = None
    lost_steps: int = 0
    corrupt: list[str] = field(default_factory=list)
    ok: bool = True
    note: str = ""


def make_data(folder: Path, n: int = 8) -> None:
    """Short voiced, formant-like tones: enough structure for the losses to move."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        t = np.arange(16000) / 16000
        f0 = 110 + 20 * i
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 8))
        x = x * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / f"u{i}.wav", (0.2 * x / np.abs(x).max()).astype(np.float32), 16000)


def command(data: Path, out: Path, resume: bool) -> list[str]:
    overrides = OVERRIDES + ([] if QUANTIZER_UPKEEP else list(UPKEEP_OFF))
    return [
        sys.executable,
        "-m",
        "telugu_codec",
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-steps",
        str(MAX_STEPS),
        "--threads",
        "1",
        "--device",
        "cpu",
        "--no-progress",
        *(["--resume"] if resume else []),
        *overrides,
    ]


def records(run: Path) -> list[dict]:
    out = []
    path = run / "metrics.jsonl"
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                pass
    return out


def corrupt_checkpoints(run: Path) -> list[str]:
    """Complete checkpoints (with a state.json) that do not load and verify."""
    bad = []
    for ckpt in list_checkpoints(run):
        try:
            read_state(ckpt)
            for name in (*COMPARED, "rng.safetensors"):
                load_tensors(ckpt / name)
        except CheckpointError as e:
            bad.append(f"{ckpt.name}: {e}")
    return bad


def _writes(ckpt_dir: Path) -> set[tuple[str, int]]:
    """Checkpoint writes in progress (temporary folders), by name and inode."""
    out = set()
    for p in ckpt_dir.glob(".tmp_step_*") if ckpt_dir.is_dir() else []:
        try:
            out.add((p.name, p.stat().st_ino))
        except OSError:
            pass
    return out


def run_until(proc: subprocess.Popen, run: Path, kind: str, delay: float) -> Kill | None:
    """Wait for the trigger of `kind`, then signal; None if the process ended first."""
    start = time.time()
    rollbacks = sum(r.get("event") == "rollback" for r in records(run))
    ckpt_dir = run / "checkpoints"
    stale = _writes(ckpt_dir)  # left by an earlier kill: not this process writing
    while proc.poll() is None:
        now = time.time() - start
        if kind.endswith("random"):
            fire = now >= delay
        elif kind == "sigkill-checkpoint":
            fire = bool(_writes(ckpt_dir) - stale)
        else:
            fire = sum(r.get("event") == "rollback" for r in records(run)) > rollbacks
        if fire:
            mid_write = bool(_writes(ckpt_dir) - stale)
            proc.send_signal(signal.SIGTERM if kind.startswith("sigterm") else signal.SIGKILL)
            return Kill(chain=-1, kind=kind, fired=True, seconds=now, mid_write=mid_write)
        time.sleep(0.001 if not kind.endswith("random") else 0.01)
    return None


def resumed_from(log: str) -> int | None:
    """The step a resumed process continued from (its "resuming from" line, or the rollback it
    redid right after); None if it was killed before it got that far."""
    lines = log.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"resuming from step_\d+ \(step (\d+)\)", line)
        if m:
            nxt = lines[i + 1] if i + 1 < len(lines) else ""
            r = re.match(r"guard: rolled back to step_(\d+)", nxt)
            return int(r.group(1)) if r else int(m.group(1))
    return None


def expected_resume(run: Path) -> tuple[str | None, int | None, bool]:
    """(checkpoint a resume must take, the step it must continue from, pending rollback)."""
    ckpt = latest_checkpoint(run)
    if ckpt is None:
        return None, 0, False
    state = read_state(ckpt)
    if state.get("pending") == "rollback":
        return ckpt.name, read_state(run / "checkpoints" / state["last_healthy"])["step"], True
    return ckpt.name, state["step"], False


def start(data: Path, run: Path, resume: bool, log: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # a killed process keeps what it printed
    return subprocess.Popen(
        command(data, run, resume),
        stdout=open(log, "w"),  # noqa: SIM115 (the child owns it)
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


def reference_run(data: Path, out: Path) -> tuple[float, dict]:
    t0 = time.time()
    proc = subprocess.run(command(data, out, False), capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"reference run failed:\n{proc.stderr[-3000:]}")
    recs = records(out)
    return time.time() - t0, {
        "steps_logged": sum(r.get("kind") == "train" for r in recs),
        "rollbacks": sum(r.get("event") == "rollback" for r in recs),
        "final": latest_checkpoint(out).name,
    }


def same_weights(a: Path, b: Path) -> tuple[bool, str]:
    for name in COMPARED:
        ta, _ = load_tensors(a / name)
        tb, _ = load_tensors(b / name)
        if ta.keys() != tb.keys():
            return False, f"{name}: different tensors"
        for k in ta:
            if not torch.equal(ta[k], tb[k]):
                return False, f"{name}:{k} differs"
    return True, ""


def chain(index: int, kinds: list[str], data: Path, out: Path, rng: random.Random):
    """One run killed once per entry of `kinds`, resumed after each kill, then run to the end.
    If it ends before a trigger, the kinds not used are left for the next chain.

    Returns:
        (run folder, kills fired, kinds not used, final run's exit status 0, its last error
        line, resumes).
    """
    run = out / f"chain{index}"
    shutil.rmtree(run, ignore_errors=True)
    logs = out / f"chain{index}-logs"
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir()
    kills: list[Kill] = []
    resume, resumes, previous = False, 0, None
    for n, kind in enumerate([*kinds, None]):
        log = logs / f"p{n}.out"
        proc = start(data, run, resume, log)
        resumes += int(resume)
        # random moments: start-up (about 8 s here), steps, validations, writes
        kill = run_until(proc, run, kind, rng.uniform(1.0, 25.0)) if kind else None
        proc.wait()
        text = log.read_text()
        if previous is not None:  # did this process resume where the last kill said it must?
            previous.resumed_step = resumed_from(text)
            got, want = previous.resumed_step, previous.expected_step
            if got is not None and got != want:
                previous.ok, previous.note = False, f"resumed at step {got}, expected {want}"
        if kind is None or kill is None:
            final_ok = proc.returncode == 0
            note = "" if final_ok else text.strip().splitlines()[-1]
            return run, kills, kinds[len(kills) :], final_ok, note, resumes
        kill.chain, kill.exit_code = index, proc.returncode
        if kind.startswith("sigterm") and "Traceback" in text:
            kill.ok, kill.note = False, "SIGTERM gave a traceback"
        last = [r for r in records(run) if isinstance(r.get("step"), int)]
        kill.corrupt = corrupt_checkpoints(run)
        if kill.corrupt:
            kill.ok, kill.note = False, "corrupt checkpoint: " + kill.corrupt[0]
        kill.expected, kill.expected_step, kill.pending_rollback = expected_resume(run)
        kill.lost_steps = (last[-1]["step"] if last else 0) - kill.expected_step
        kills.append(kill)
        previous = kill if kill.expected is not None else None
        resume = kill.expected is not None or (run / "config.yaml").exists()
    raise AssertionError("unreachable")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="/tmp/fault_injection")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results_fault_injection.md"))
    p.add_argument(
        "--no-quantizer-upkeep",
        action="store_true",
        help="turn k-means init and dead-code replacement off (on by default)",
    )
    args = p.parse_args()
    global QUANTIZER_UPKEEP
    QUANTIZER_UPKEEP = not args.no_quantizer_upkeep
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = out / "data"
    make_data(data)
    rng = random.Random(args.seed)
    t_start = time.time()
    ref_dir = out / "reference"
    shutil.rmtree(ref_dir, ignore_errors=True)
    ref_s, ref = reference_run(data, ref_dir)
    print(
        f"reference: {ref['steps_logged']} steps logged, {ref['rollbacks']} rollbacks, "
        f"{ref_s:.0f} s"
    )
    per_chain = -(-args.kills // args.chains)
    plan = [KINDS[i % len(KINDS)] for i in range(args.kills)]
    rng.shuffle(plan)
    all_kills, finals, resumes = [], [], 0
    c = 0
    while plan and c < 3 * args.chains:  # a chain that ends early leaves its kills to the next
        kinds, plan = plan[:per_chain], plan[per_chain:]
        run, kills, unused, final_ok, note, r = chain(c, kinds, data, out, rng)
        plan = unused + plan
        resumes += r
        equal, why = same_weights(ref_dir / "checkpoints" / ref["final"], latest_checkpoint(run))
        finals.append((c, final_ok, equal, why or note))
        all_kills += kills
        for k in kills:
            print(
                f"chain {c} {k.kind:<18} fired={k.fired} t={k.seconds:5.1f}s "
                f"mid_write={k.mid_write} "
                f"exit={k.exit_code} expected={k.expected} pending={k.pending_rollback} "
                f"resumed={k.resumed_step}/{k.expected_step} lost={k.lost_steps} ok={k.ok} {k.note}"
            )
        print(f"chain {c}: final ok={final_ok}, weights equal to the reference: {equal} {why}")
        c += 1
    wall = time.time() - t_start
    write_results(args, all_kills, finals, resumes, ref, ref_s, wall)


def write_results(args, kills, finals, resumes, ref, ref_s, wall) -> None:
    fired = [k for k in kills if k.fired]
    lines = [
        "# Fault injection: kills, resumes, corrupt checkpoints, lost steps (issue 14)",
        "",
        f"Command: `.venv/bin/python benchmarks/fault_injection.py --kills {args.kills} "
        f"--chains {args.chains} --seed {args.seed}"
        + ("" if QUANTIZER_UPKEEP else " --no-quantizer-upkeep")
        + "`",
        "",
        f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, python "
        f"{platform.python_version()}, torch {torch.__version__}; load average at the end "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}. Wall time {wall / 60:.1f} min.",
        "",
        f"Reference run: {MAX_STEPS} steps (`--max-steps {MAX_STEPS}`), {ref['rollbacks']} guard "
        f"rollbacks, {ref['steps_logged']} steps executed in all, {ref_s:.0f} s. Quantizer: "
        + (
            "k-means init and dead-code replacement on (their buffers in every checkpoint)."
            if QUANTIZER_UPKEEP
            else "k-means init and dead-code replacement off (`--no-quantizer-upkeep`)."
        ),
        "",
        "| count | value |",
        "|---|---|",
        f"| kills fired | {len(fired)} of {args.kills} planned, over {len(finals)} runs |",
    ]
    for kind in KINDS:
        n = sum(k.kind == kind for k in fired)
        lines.append(f"| - {kind} | {n} |")
    lines += [
        f"| kills that landed while a checkpoint was being written | "
        f"{sum(k.mid_write for k in fired)} |",
        f"| SIGTERMs that came during start-up (before the handler: plain exit, no step to "
        f"save) | {sum(k.kind.startswith('sigterm') and k.exit_code != 0 for k in fired)} |",
        f"| SIGTERMs that saved and exited with status 0 | "
        f"{sum(k.kind.startswith('sigterm') and k.exit_code == 0 for k in fired)} |",
        f"| kills whose newest checkpoint carried a pending rollback | "
        f"{sum(k.pending_rollback for k in fired)} |",
        f"| resumes | {resumes} |",
        f"| resumes from the wrong step | {sum(not k.ok and 'resumed' in k.note for k in fired)} |",
        f"| corrupt checkpoints found after a kill | {sum(len(k.corrupt) for k in fired)} |",
        f"| steps lost, SIGKILL (total / max per kill) | "
        f"{sum(k.lost_steps for k in fired if k.kind.startswith('sigkill'))} / "
        f"{max([k.lost_steps for k in fired if k.kind.startswith('sigkill')] or [0])} |",
        f"| steps lost, SIGTERM (total) | "
        f"{sum(k.lost_steps for k in fired if k.kind.startswith('sigterm'))} |",
        f"| chains whose final weights equal the reference bit for bit | "
        f"{sum(f[2] for f in finals)} of {len(finals)} |",
        "",
        "Per kill:",
        "",
        "| chain | kind | at s | mid-write | exit | resume must take | pending rollback | "
        "resumed / expected step | lost steps | ok |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for k in kills:
        lines.append(
            f"| {k.chain} | {k.kind} | {k.seconds:.1f} | {k.mid_write} | {k.exit_code} | "
            f"{k.expected} | {k.pending_rollback} | {k.resumed_step} / {k.expected_step} | "
            f"{k.lost_steps} | {'yes' if k.ok else 'NO: ' + k.note} |"
        )
    Path(args.results).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
