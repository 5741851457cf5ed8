"""Quality per CPU-minute: our preset against DAC's reference training code, same run.

Two trainings run at the same time, each a process with one torch thread, so that both see
the same machine load:

- ours: ``telugu-codec train --config PRESET --data data/demo-te/train --val-data
  data/demo-te/val --threads 1 --minutes M --no-progress`` (the preset's own recipe and
  schedule; the trainer's time budget counts wall-clock training time, validations included);
- DAC: `dac.model.DAC` + `dac.model.Discriminator` at the sizes `bench_train_speed.dac_spec`
  derives from the preset, trained by `bench_train_speed.dac_recipe` (the step, losses, loss
  weights, optimizers and schedules of DAC's scripts/train.py) in DAC's own interpreter, for
  the same M minutes of wall-clock training time. Its batches come from DAC's own data code:
  audiotools' `AudioLoader` / `AudioDataset` over the same training folder (random excerpts,
  re-drawn below -40 LUFS as AudioDataset does), at our preset's segment length and batch
  size, then DAC's base.yml transforms (VolumeNorm to -16 LUFS, RescaleAudio, ShiftPhase), as
  train.py applies them under no_grad before each step. Ours normalises its crops to -16 dBFS
  RMS instead (`data.normalize_db`).

Then DAC's last weights decode every file of the evaluation folder through DAC's own
`compress` / `decompress` (loudness to -16 LUFS and back; one window per file), at its full
codebook count and at the largest counts within 3 and 1.5 kbps (codes cut to that count before
`decompress`: DAC's `compress` keeps every codebook's code whatever `n_quantizers` says). Ours
is scored by `telugu_codec.evaluation.evaluate.evaluate` (through the real bitstream) from the
run's last checkpoint and, where the run picked one, its best (chosen on data/demo-te/val,
the evaluation folder itself, so that row is not a clean test); DAC's wavs are scored by the
same `telugu_codec.metrics` functions against the same references. The margins pair the files.

The report gives, per process, the wall-clock training time, steps and CPU seconds (getrusage
of each process tree; DAC's training loop also counts its own `time.process_time`), and every
minute the load average and the CPU seconds taken by ours, DAC's and every other process.

This script starts both trainings and watches the load; `btq_dac_worker` is DAC's side (run
in its interpreter through this script's ``--dac-train`` / ``--dac-decode``), `btq_score`
decodes and scores both sides, and `btq_report` renders the Markdown.

Usage (from the repository root; DAC's environment: ``python3 -m venv .venv-dac &&
.venv-dac/bin/pip install torch==2.9.1 'torchaudio==2.9.*' descript-audio-codec``):

    .venv/bin/python benchmarks/bench_train_quality.py                      # 10 min, tiny-sf
    .venv/bin/python benchmarks/bench_train_quality.py --minutes 0.5 --max-files 2 \\
        --results /tmp/smoke.md                                             # a smoke test
    .venv/bin/python benchmarks/bench_train_quality.py --wait-for cmp/b/    # start when quiet
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
if str(HERE) not in sys.path:  # loaded by path (the tests) rather than run as a script
    sys.path.insert(0, str(HERE))

from btq_dac_worker import COMMANDS, dac_command, speed_bench  # noqa: E402
from btq_report import write_results  # noqa: E402
from btq_score import score  # noqa: E402


def proc_times(clock_ticks: float) -> dict[int, tuple[int, float, str]]:
    """Every process's (ppid, CPU seconds so far, command line) from /proc; {} elsewhere."""
    out: dict[int, tuple[int, float, str]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return out
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
        ppid, utime, stime = int(fields[1]), int(fields[11]), int(fields[12])
        name = cmd.strip() or stat[stat.index("(") + 1 : stat.rindex(")")]
        out[int(d.name)] = (ppid, (utime + stime) / clock_ticks, name)
    return out


def descendants(roots: Sequence[int], table: dict[int, tuple[int, float, str]]) -> set[int]:
    """`roots` and every process below them in `table` (pid -> (ppid, ...))."""
    found = {r for r in roots if r in table}
    changed = True
    while changed:
        changed = False
        for pid, (ppid, *_rest) in table.items():
            if ppid in found and pid not in found:
                found.add(pid)
                changed = True
    return found


def ancestors(pid: int, table: dict[int, tuple[int, float, str]]) -> set[int]:
    """`pid` and its parents up to init."""
    out = set()
    while pid in table and pid not in out:
        out.add(pid)
        pid = table[pid][0]
    return out


class LoadSampler:
    """Once a minute: load averages and the CPU seconds each side and the rest of the machine
    took since the last sample (from /proc)."""

    def __init__(self, sides: dict[str, int]):
        self.sides = sides  # name -> root pid
        self.ticks = float(os.sysconf("SC_CLK_TCK"))
        self.last = proc_times(self.ticks)
        self.t0 = self.t_last = time.time()
        self.samples: list[dict] = []

    def sample(self) -> dict:
        now, table = time.time(), proc_times(self.ticks)
        groups = {name: descendants([pid], table) for name, pid in self.sides.items()}
        used = dict.fromkeys([*self.sides, "driver", "other"], 0.0)
        others: dict[str, float] = {}
        for pid, (_, cpu, cmd) in table.items():
            delta = cpu - self.last.get(pid, (0, 0.0, ""))[1]
            if delta <= 0:
                continue
            side = next((n for n, g in groups.items() if pid in g), None)
            if side is None and pid == os.getpid():
                side = "driver"
            if side is None:
                others[cmd[:90]] = others.get(cmd[:90], 0.0) + delta
                side = "other"
            used[side] += delta
        top = sorted(others.items(), key=lambda kv: -kv[1])[:3]
        rec = {
            "minute": (now - self.t0) / 60,
            "load": list(os.getloadavg()),
            "cpu_s": used,
            "interval_s": now - self.t_last,
            "top_other": [(c, round(s, 1)) for c, s in top],
        }
        self.last, self.t_last = table, now
        self.samples.append(rec)
        return rec


def _matching(pattern: str) -> list[str]:
    """Command lines of the processes matching `pattern` (pgrep -f), minus this one's own
    ancestors (whose command lines may hold the pattern)."""
    r = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True)
    table = proc_times(100.0)
    mine = ancestors(os.getpid(), table)
    pids = [int(p) for p in r.stdout.split() if int(p) not in mine]
    return [table[p][2][:120] for p in pids if p in table]


def wait_for_quiet(pattern: str, max_minutes: float, every_s: float = 60.0) -> dict:
    """Poll every minute until nothing matches `pattern`, for at most `max_minutes`."""
    t0 = time.time()
    found = _matching(pattern)
    while found and time.time() - t0 < max_minutes * 60:
        print(f"waiting: {len(found)} process(es) match {pattern!r}", flush=True)
        time.sleep(every_s)
        found = _matching(pattern)
    return {
        "pattern": pattern,
        "waited_min": (time.time() - t0) / 60,
        "still_running": found,
    }


def _wait4(pid: int) -> tuple[int, float] | None:
    """(exit code, CPU seconds of the process tree) if `pid` ended, else None."""
    got, status, usage = os.wait4(pid, os.WNOHANG)
    if got == 0:
        return None
    return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime


def train_both(args, cfg, model: dict, disc: dict, out: Path) -> dict:
    """Start both trainings, sample the load every minute, reap them with their CPU times."""
    threads_env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    ours_cmd = [
        sys.executable,
        "-m",
        "telugu_codec",
        "train",
        "--config",
        args.preset,
        "--data",
        args.data,
        "--val-data",
        args.val_data,
        "--out",
        str(out / "ours"),
        "--threads",
        "1",
        "--minutes",
        f"{args.minutes:g}",
        "--no-progress",
        *args.set,
    ]
    spec = {
        "model": model,
        "discriminator": disc,
        "train_dir": str(ROOT / args.data),
        "batch_size": cfg.data.batch_size,
        "segment_seconds": cfg.data.segment_seconds,
        "seconds": args.minutes * 60,
        "seed": 0,
        "out": str(out / "dac"),
    }
    (out / "dac").mkdir(parents=True)
    (out / "dac" / "spec.json").write_text(json.dumps(spec, indent=1))
    dac_cmd = dac_command(args.dac_python, "--dac-train", out / "dac" / "spec.json")
    logs = {"ours": (out / "ours.log").open("w"), "dac": (out / "dac.log").open("w")}
    start = time.time()
    procs = {
        name: subprocess.Popen(
            cmd, stdout=logs[name], stderr=subprocess.STDOUT, env=threads_env, cwd=ROOT
        )
        for name, cmd in (("ours", ours_cmd), ("dac", dac_cmd))
    }
    sampler = LoadSampler({n: p.pid for n, p in procs.items()})
    ended: dict[str, dict] = {}
    next_sample = start + args.sample_every
    while len(ended) < len(procs):
        time.sleep(1.0)
        for name, p in procs.items():
            if name not in ended and (r := _wait4(p.pid)) is not None:
                p.returncode = r[0]  # reaped here: Popen must not wait for it again
                ended[name] = {"rc": r[0], "cpu_s": r[1], "wall_s": time.time() - start}
                print(f"{name} ended: {ended[name]}", flush=True)
        if time.time() >= next_sample and len(ended) < len(procs):
            rec = sampler.sample()
            print(
                f"minute {rec['minute']:.1f}: load {rec['load'][0]:.2f}, CPU-s "
                + ", ".join(f"{k} {v:.0f}" for k, v in rec["cpu_s"].items()),
                flush=True,
            )
            next_sample += args.sample_every
    for f in logs.values():
        f.close()
    return {"ours_cmd": ours_cmd, "ended": ended, "samples": sampler.samples}


def _git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    return r.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in COMMANDS:  # DAC's interpreter, started by `dac_command`
        COMMANDS[argv[0]](argv[1])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="tiny-sf")
    p.add_argument("--minutes", type=float, default=10.0, help="training time, each side")
    p.add_argument("--max-files", type=int, default=None, help="evaluate the first N files")
    p.add_argument("--data", default="data/demo-te/train")
    p.add_argument("--val-data", default="data/demo-te/val")
    p.add_argument("--dac-python", default=str(ROOT / ".venv-dac/bin/python"))
    p.add_argument("--out", default="/tmp/bench_train_quality", help="runs, wavs, reports")
    p.add_argument("--results", default=str(HERE / "results_train_quality.md"))
    p.add_argument("--set", action="append", default=[], help="override for our preset")
    p.add_argument("--sample-every", type=float, default=60.0, help="seconds between samples")
    p.add_argument("--wait-for", default="", help="pgrep -f pattern to wait for first")
    p.add_argument("--wait-minutes", type=float, default=70.0)
    p.add_argument("--score-only", action="store_true", help="score the trainings already in --out")
    p.add_argument("--render", metavar="RUN_JSON", help="only rewrite --results from a run.json")
    args = p.parse_args(argv)
    if args.render:
        print(write_results(Path(args.results), json.loads(Path(args.render).read_text())))
        return 0
    if args.score_only:
        score(args)
        return 0

    from telugu_codec.config import load_config

    out = Path(args.out)
    if out.exists() and any(out.iterdir()):
        raise SystemExit(f"{out} is not empty; give another --out or remove it")
    out.mkdir(parents=True, exist_ok=True)
    python = (
        os.path.relpath(sys.executable, ROOT) if sys.executable.startswith(str(ROOT)) else "python"
    )
    command = f"{python} benchmarks/bench_train_quality.py " + " ".join(argv)
    wait = wait_for_quiet(args.wait_for, args.wait_minutes) if args.wait_for else None
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    cfg = load_config(args.preset, list(args.set))
    model, disc, _ = speed_bench().dac_spec(cfg)
    print(f"DAC model {json.dumps(model)}; discriminator {json.dumps(disc)}", flush=True)
    train = train_both(args, cfg, model, disc, out)
    trained = {
        "started": started,
        "commit": _git_commit(),
        "command": command,
        "wait": wait,
        "train": train,
    }
    (out / "train.json").write_text(json.dumps(trained, indent=1))
    if any(v["rc"] != 0 for v in train["ended"].values()):
        raise SystemExit(f"a training failed: {train['ended']}; see {out}/*.log")
    # a fresh interpreter: the package may have changed on disk while the trainings ran
    rest = [a for a in argv if a != "--score-only"] + ["--score-only"]
    return subprocess.run([sys.executable, str(Path(__file__).resolve()), *rest]).returncode


if __name__ == "__main__":
    sys.exit(main())
