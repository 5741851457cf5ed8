"""Training step time and host syncs per step, two versions of the code side by side.

Each run is a subprocess that trains the `tiny-istft` preset (the GAN from step 0, 1 thread)
on the bundled corpus (data/demo-te) with ``train.log_every=L`` and measures the loop between
its metrics.jsonl training records (the first record's window, the warm-up, is dropped):

- seconds per step as process CPU time (with one thread, the work the step does: it holds on a
  shared, loaded machine) and as wall-clock time;
- host syncs per step: calls of `Tensor.item`, `tolist`, `__bool__`, `__float__` and `__int__`
  (each one waits for the device on a GPU; on the CPU they mark where it would), by the line in
  telugu_codec that made them. torch.optim's reads of Adam's step counters are left out (CPU
  tensors on a GPU too, so no sync).

The versions are source trees given by their ``src`` folder (PYTHONPATH switching); the runs
alternate between them (A B, B A, ...), one after the other or, with ``--parallel``, all at
once (then only the CPU time per step compares).

    git archive 9f0a004 src | tar -x -C /tmp/base
    python benchmarks/bench_step.py --before /tmp/base/src --after src --rounds 5 --steps 40

Prints a Markdown table (medians) for BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo-te"
OVERRIDES = [
    "train.d_warmup_steps=0",  # the GAN step: what most of a run's steps are
    "train.val_every=100000",
    "train.ckpt_every=100000",
    "train.val_pesq=false",
    "data.val_max_files=1",
]
READS = ("item", "tolist", "__bool__", "__float__", "__int__")
OPTIM_STEP = "torch.optim step counters (CPU tensors: not a sync)"


def _patch_reads(counter: Counter, where: bool) -> None:
    """Count the host reads of tensor values (by call site in telugu_codec with `where`)."""
    import torch

    def wrap(name: str):
        real = getattr(torch.Tensor, name)

        def counted(self, *a, **kw):
            key = name
            caller = sys._getframe(1).f_code.co_filename
            if f"torch{os.sep}optim" in caller:
                # Adam's step counters: CPU tensors even on a GPU (not capturable), no sync
                counter[OPTIM_STEP] += 1
                return real(self, *a, **kw)
            if where:
                f = sys._getframe(1)
                while f is not None and "telugu_codec" not in f.f_code.co_filename:
                    f = f.f_back
                if f is not None:
                    path = f.f_code.co_filename.split("telugu_codec/")[-1]
                    key = f"{path}:{f.f_lineno} {name}"
            counter[key] += 1
            return real(self, *a, **kw)

        setattr(torch.Tensor, name, counted)

    for name in READS:
        wrap(name)


def worker(steps: int, log_every: int, count: bool) -> dict:
    """One run in this process (the version on PYTHONPATH); returns its windows."""
    import torch

    torch.set_num_threads(1)
    from telugu_codec.config import load_config
    from telugu_codec.train import logging as tlog
    from telugu_codec.train.trainer import Trainer

    counter: Counter = Counter()
    marks: list[tuple[float, Counter]] = []
    real_write = tlog.MetricsLog.write

    def write(self, kind, step, **values):
        if kind == "train":
            marks.append((time.perf_counter(), time.process_time(), Counter(counter)))
        return real_write(self, kind, step, **values)

    tlog.MetricsLog.write = write
    if count:
        _patch_reads(counter, where=True)
    cfg = load_config("tiny-istft", OVERRIDES + [f"train.log_every={log_every}"])
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(
            cfg,
            Path(tmp) / "run",
            DEMO / "train",
            val_data=DEMO / "val",
            progress=False,
            tensorboard=False,
            log=lambda _m: None,
        )
        t.train(steps)
    windows = []
    for (t0, p0, c0), (t1, p1, c1) in zip(marks, marks[1:]):
        syncs = c1 - c0
        windows.append(
            {
                "s_per_step": (t1 - t0) / log_every,
                "cpu_s_per_step": (p1 - p0) / log_every,
                "syncs_per_step": sum(v for k, v in syncs.items() if k != OPTIM_STEP) / log_every,
                "where": {k: v / log_every for k, v in syncs.items()},
            }
        )
    return {"windows": windows[1:] if len(windows) > 1 else windows}


def _run(src: str, steps: int, log_every: int, count: bool) -> dict:
    env = dict(os.environ, PYTHONPATH=str(Path(src).resolve()), OMP_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", "--steps", str(steps)]
    cmd += ["--log-every", str(log_every)] + (["--count"] if count else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"worker failed ({src}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--before", default="/tmp/base/src", help="the old version's src folder")
    ap.add_argument("--after", default=str(ROOT / "src"), help="the new version's src folder")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--parallel", action="store_true", help="start every run at once")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--count", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.steps, args.log_every, args.count)))
        return
    versions = {"before": args.before, "after": args.after}
    cpu: dict[str, list[float]] = {k: [] for k in versions}
    wall: dict[str, list[float]] = {k: [] for k in versions}
    syncs: dict[str, list[float]] = {k: [] for k in versions}
    where: dict[str, dict] = {}
    # A B, B A, A B ...: every run counts its host reads too (a few microseconds per read)
    order = [n for r in range(args.rounds) for n in (list(versions)[:: 1 if r % 2 == 0 else -1])]
    if args.parallel:  # all at once: CPU time per step stays comparable, wall time does not
        with ThreadPoolExecutor(len(order)) as pool:
            outs = list(
                pool.map(lambda n: _run(versions[n], args.steps, args.log_every, True), order)
            )
    else:
        outs = [_run(versions[n], args.steps, args.log_every, True) for n in order]
    for name, out in zip(order, outs):
        cpu[name].append(statistics.median(w["cpu_s_per_step"] for w in out["windows"]))
        wall[name].append(statistics.median(w["s_per_step"] for w in out["windows"]))
        syncs[name].append(statistics.median(w["syncs_per_step"] for w in out["windows"]))
        where[name] = out["windows"][-1]["where"]
        print(
            f"{name}: {cpu[name][-1]:.3f} CPU s/step, {wall[name][-1]:.3f} s/step, "
            f"{syncs[name][-1]:g} syncs/step",
            file=sys.stderr,
            flush=True,
        )
    syncs = {k: statistics.median(v) for k, v in syncs.items()}
    print(
        f"| version | CPU s/step (median of {args.rounds} runs) | wall s/step (median) | "
        "CPU s/step, each run | host syncs / step |"
    )
    print("|---|---|---|---|---|")
    for name in versions:
        runs = ", ".join(f"{v:.3f}" for v in cpu[name])
        print(
            f"| {name} | {statistics.median(cpu[name]):.3f} | {statistics.median(wall[name]):.3f} "
            f"| {runs} | {syncs[name]:.1f} |"
        )
    for name in versions:
        print(f"\nhost reads per step, {name} (a window of {args.log_every} steps, by call site):")
        for k, v in sorted(where[name].items(), key=lambda kv: -kv[1]):
            print(f"- {v:g} {k}")


if __name__ == "__main__":
    main()
