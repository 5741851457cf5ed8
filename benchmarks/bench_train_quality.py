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
import math
import os
import platform
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
METRIC_NAMES = ("pesq_wb", "stoi", "mel_distance")
KBPS_CAPS = (3.0, 1.5)  # besides the full codebook count, the largest count within each
SUMMARY_RE = re.compile(r"^(\w+) at step (\d+): ([\d.]+) min", re.MULTILINE)


def _speed_bench():
    """benchmarks/bench_train_speed.py: `dac_spec`, `dac_recipe`, `DAC_LAMBDAS`."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench_train_speed

    return bench_train_speed


# ============================================================================================
# pure helpers
# ============================================================================================


def codebook_choices(
    bitrate_bps: Callable[[int], float], max_n_q: int, caps_kbps: Sequence[float] = KBPS_CAPS
) -> list[tuple[str, int]]:
    """(label, codebook count): "full" -> `max_n_q`, then "<= C kbps" -> the largest count
    whose bitrate is within C, for each cap C that one codebook fits.

    Args:
        bitrate_bps: bits/s of a stream with n codebooks (side channels included).
        max_n_q: the model's codebook count.
        caps_kbps: bitrate caps in kbps.
    """
    out = [("full", max_n_q)]
    for cap in caps_kbps:
        fit = [n for n in range(1, max_n_q + 1) if bitrate_bps(n) <= cap * 1000 + 1e-6]
        if fit:
            out.append((f"<= {cap:g} kbps", max(fit)))
    return out


def distinct_counts(choices: Sequence[tuple[str, int]]) -> list[int]:
    """The distinct codebook counts of `codebook_choices`, largest first."""
    return sorted({n for _, n in choices}, reverse=True)


def dac_bitrate_bps(n_q: int, codebook_size: int, sample_rate: int, hop: int) -> float:
    """Payload bits/s of DAC's codes: n_q codes of log2(K) bits per frame of `hop` samples."""
    return n_q * math.log2(codebook_size) * sample_rate / hop


def parse_train_summary(text: str) -> dict | None:
    """The last ``REASON at step N: M min`` line `telugu-codec train` prints, as a dict."""
    found = SUMMARY_RE.findall(text)
    if not found:
        return None
    reason, step, minutes = found[-1]
    return {"reason": reason, "steps": int(step), "minutes": float(minutes)}


def paired_differences(
    ours: dict[str, float | None], theirs: dict[str, float | None]
) -> list[float]:
    """ours[f] - theirs[f] for every file f scored on both sides (None: unavailable)."""
    return [
        ours[f] - theirs[f]
        for f in sorted(ours)
        if ours[f] is not None and theirs.get(f) is not None
    ]


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


# ============================================================================================
# DAC side: runs inside DAC's own interpreter; imports nothing from telugu_codec
# ============================================================================================


def _patch_audiotools_info() -> None:
    """audiotools 0.7.2 reads file lengths with `torchaudio.info`, which torchaudio 2.9 no
    longer has (nor the fallback `torchaudio.backend`); read them with soundfile instead."""
    import soundfile
    from audiotools.core import util

    def info(audio_path: str) -> util.Info:
        i = soundfile.info(str(audio_path))
        return util.Info(sample_rate=i.samplerate, num_frames=i.frames)

    util.info = info


def dac_train(spec_path: str) -> None:
    """Train DAC's recipe for `spec["seconds"]` of wall-clock time; save the generator.

    Writes ``train.jsonl`` (one line per step: wall and CPU seconds, the loss terms),
    ``generator.pt`` (state dict) and ``result.json`` into ``spec["out"]``.

    Args:
        spec_path: JSON with `model`, `discriminator` (DAC kwargs), `train_dir`, `batch_size`,
            `segment_seconds`, `seconds`, `seed`, `out`.
    """
    import importlib.metadata as md

    import torch

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    torch.set_num_threads(1)
    torch.manual_seed(spec["seed"])
    generator, discriminator, train_loop = _speed_bench().dac_recipe(spec)
    from audiotools.core import util
    from audiotools.data import transforms
    from audiotools.data.datasets import AudioDataset, AudioLoader

    _patch_audiotools_info()
    util.seed(spec["seed"])
    sr = spec["model"]["sample_rate"]
    # conf/base.yml: postprocess VolumeNorm(db=const -16), RescaleAudio, ShiftPhase; the
    # preprocess and augment stages are Identity (augment_prob 0)
    transform = transforms.Compose(
        transforms.VolumeNorm(db=("const", -16)), transforms.RescaleAudio(), transforms.ShiftPhase()
    )
    loader = AudioLoader(sources=[spec["train_dir"]], shuffle=True)
    dataset = AudioDataset(
        loader,
        sr,
        n_examples=10_000_000,
        duration=spec["segment_seconds"],
        transform=transform,
        without_replacement=True,
    )
    batches = torch.utils.data.DataLoader(
        dataset, batch_size=spec["batch_size"], num_workers=0, collate_fn=dataset.collate
    )
    log = (out / "train.jsonl").open("w")
    wall0, cpu0 = time.time(), time.process_time()
    steps, losses, data_s = 0, {}, 0.0
    it = iter(batches)
    while time.time() - wall0 < spec["seconds"]:
        t = time.time()
        batch = next(it)
        with torch.no_grad():
            signal = dataset.transform(batch["signal"].clone(), **batch["transform_args"])
        data_s += time.time() - t
        losses = train_loop(signal.audio_data)  # (B, 1, T)
        steps += 1
        rec = {"step": steps, "wall": time.time() - wall0, "cpu": time.process_time() - cpu0}
        rec["data_wall"] = data_s
        log.write(json.dumps(rec | losses) + "\n")
        log.flush()
    wall, cpu = time.time() - wall0, time.process_time() - cpu0
    log.close()
    torch.save(generator.state_dict(), out / "generator.pt")
    result = {
        "steps": steps,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "data_wall_s": data_s,
        "last_losses": losses,
        "g_params": sum(p.numel() for p in generator.parameters()),
        "d_params": sum(p.numel() for p in discriminator.parameters()),
        "train_files": len(loader.audio_lists[0]),
        "torch": torch.__version__,
        "dac": md.version("descript-audio-codec"),
        "audiotools": md.version("descript-audiotools"),
        "threads": torch.get_num_threads(),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))


def dac_decode(spec_path: str) -> None:
    """Decode `spec["files"]` with the trained generator at each of `spec["n_qs"]`.

    DAC's own inference path: `compress` (loudness to -16 LUFS, one window per file) with the
    codes cut to n_q, then `decompress` (loudness back to the input's). Writes float32 wavs to
    ``spec["out"]/wavs/nq{N}/{index:03d}.wav``.
    """
    import soundfile as sf
    import torch
    from audiotools import AudioSignal
    from dac.model import DAC

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    out = Path(spec["out"])
    generator = DAC(**spec["model"])
    generator.load_state_dict(torch.load(out / "generator.pt", weights_only=True))
    generator.eval()
    for n_q in spec["n_qs"]:
        folder = out / "wavs" / f"nq{n_q}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(spec["files"]):
            signal = AudioSignal(path)
            if signal.sample_rate != generator.sample_rate:
                signal.resample(generator.sample_rate)
            length, input_db = signal.signal_length, signal.loudness()
            # DAC's decoder returns 8 samples fewer than its (hop-padded) input at these rates
            # (bench_train_speed), and `decompress` then fails to cut the original length:
            # one hop of zeros more, and the file's own length and loudness put back after
            signal.zero_pad(0, generator.hop_length)
            dac_file = generator.compress(signal, win_duration=None, n_quantizers=n_q)
            dac_file.original_length, dac_file.input_db = length, input_db
            dac_file.codes = dac_file.codes[:, :n_q, :]  # compress returns every codebook
            y = generator.decompress(dac_file).audio_data[0, 0]  # (T,)
            sf.write(folder / f"{i:03d}.wav", y.numpy(), dac_file.sample_rate, subtype="FLOAT")


# ============================================================================================
# the driver (our environment)
# ============================================================================================


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
    dac_cmd = [args.dac_python, str(Path(__file__).resolve()), "--dac-train"]
    dac_cmd.append(str(out / "dac" / "spec.json"))
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


def score_dac(files: list[Path], wav_dir: Path, sr: int) -> dict[str, dict[str, float | None]]:
    """metric -> {file: value} for DAC's decoded wavs against the references."""
    from telugu_codec.audio import load_audio, read_audio
    from telugu_codec.metrics import compute_metrics

    out: dict[str, dict[str, float | None]] = {m: {} for m in METRIC_NAMES}
    for i, path in enumerate(files):
        ref = load_audio(path, sr).wav
        pred, rate = read_audio(wav_dir / f"{i:03d}.wav")
        assert rate == sr, f"DAC wrote {rate} Hz"
        pred = pred[:, 0]
        n = min(len(pred), len(ref))
        values = compute_metrics(pred[:n], ref[:n], sr, METRIC_NAMES)
        for m in METRIC_NAMES:
            out[m][str(path)] = values[m]
    return out


def _checkpoint_step(ckpt: Path) -> str:
    """The step of a checkpoint folder (a 'best' folder names its source checkpoint)."""
    if (ckpt / "source.json").exists():
        ckpt = ckpt.parent / json.loads((ckpt / "source.json").read_text())["checkpoint"]
    state = ckpt / "state.json"
    return str(json.loads(state.read_text())["step"]) if state.exists() else ckpt.name


def score_ours(ckpt: Path, label: str, files: list[Path], args, out: Path) -> list[dict]:
    """Rows of `evaluate` (through the .tcc bitstream) at each of `codebook_choices`."""
    from telugu_codec.evaluation.evaluate import evaluate, list_inputs
    from telugu_codec.model.codec import Codec

    codec = Codec.load(ckpt)
    choices = codebook_choices(codec.bitrate, codec.max_n_q)
    n_qs = distinct_counts(choices)
    report = evaluate(
        ckpt,
        args.val_data,
        out,
        bitrates=[codec.bitrate(n) / 1000 for n in n_qs],
        baselines=(),
        max_files=args.max_files,
        metrics=METRIC_NAMES,
        n_examples=2,
        force=True,
        progress=False,
    )
    _, base = list_inputs(args.val_data)
    key = {p.resolve().relative_to(base.resolve()).as_posix(): str(p) for p in files}
    rows = []
    for choice, n_q in choices:
        name = f"codec-{codec.bitrate(n_q) / 1000:g}k"
        mine = [r for r in report.per_file if r.system == name]
        rows.append(
            {
                "system": f"ours ({args.preset})",
                "checkpoint": f"{label} (step {_checkpoint_step(ckpt)})",
                "choice": choice,
                "n_q": n_q,
                "kbps": float(np.mean([r.kbps for r in mine])),
                "per_file": {
                    m: {key.get(r.file, r.file): r.metrics.get(m) for r in mine}
                    for m in METRIC_NAMES
                },
            }
        )
    return rows


def decode_and_score_dac(args, model: dict, files: list[Path], out: Path, steps: int) -> list:
    """DAC's decodes (in its interpreter) at each of `codebook_choices`, scored here."""
    hop = math.prod(model["encoder_rates"])
    sr = model["sample_rate"]

    def bps(n: int) -> float:
        return dac_bitrate_bps(n, model["codebook_size"], sr, hop)

    choices = codebook_choices(bps, model["n_codebooks"])
    spec = {
        "model": model,
        "out": str(out / "dac"),
        "n_qs": distinct_counts(choices),
        "files": [str(f.resolve()) for f in files],
    }
    (out / "dac" / "decode.json").write_text(json.dumps(spec, indent=1))
    subprocess.run(
        [args.dac_python, str(Path(__file__).resolve()), "--dac-decode"]
        + [str(out / "dac" / "decode.json")],
        check=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    scored = {n: score_dac(files, out / "dac" / "wavs" / f"nq{n}", sr) for n in spec["n_qs"]}
    return [
        {
            "system": "DAC",
            "checkpoint": f"last (step {steps})",
            "choice": choice,
            "n_q": n_q,
            "kbps": bps(n_q) / 1000,
            "per_file": scored[n_q],
        }
        for choice, n_q in choices
    ]


def _fmt(iv, digits: int = 3) -> str:
    if iv.mean is None:
        return "-"
    if iv.low is None:
        return f"{iv.mean:.{digits}f}"
    return f"{iv.mean:.{digits}f} ± {(iv.high - iv.low) / 2:.{digits}f}"


def _git_commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True)
    return r.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")


def headline(run: dict) -> str:
    """One line: the PESQ-WB margin at <= 3 kbps (last checkpoints) and the CPU each side got."""
    from telugu_codec.evaluation.intervals import mean_interval

    pair = next((p for p in run["pairs"] if p[0] == "<= 3 kbps, ours last"), None)
    if pair is None:
        return ""
    _, a, b = pair
    iv = mean_interval(paired_differences(a["per_file"]["pesq_wb"], b["per_file"]["pesq_wb"]))
    if iv.mean is None:
        return ""
    verdict = "no clear difference"
    if iv.low is not None and iv.low > 0:
        verdict = "ours ahead"
    elif iv.high is not None and iv.high < 0:
        verdict = "DAC ahead"
    e = run["train"]["ended"]
    ours, dac = (mean_interval(list(r["per_file"]["pesq_wb"].values())) for r in (a, b))
    return (
        f"**Result: after {run['minutes']:g} minutes each (ours {e['ours']['cpu_s'] / 60:.1f} "
        f"CPU-min, DAC {e['dac']['cpu_s'] / 60:.1f} CPU-min), PESQ-WB ours - DAC at <= 3 kbps "
        f"= {_fmt(iv)} over {iv.n} files ({verdict}): {_fmt(ours)} ({a['kbps']:.2f} kbps) "
        f"against {_fmt(dac)} ({b['kbps']:.2f} kbps).**"
    )


def write_results(path: Path, run: dict) -> str:
    """The Markdown report of one run (`run` as `main` collects it)."""
    from telugu_codec.evaluation.intervals import mean_interval

    t, o, d = run["train"], run["ours"], run["dac"]
    e = t["ended"]
    lines = [
        "# Quality per CPU-minute: ours against DAC's reference training code",
        "",
        f"Command (from the repository root), started {run['started']} at commit {run['commit']}:",
        "",
        "```",
        run["command"],
        "```",
        "",
        f"Machine: {run['machine']}. Both trainings ran at the same time, one process and one "
        "torch thread each (OMP_NUM_THREADS=1).",
        f"- ours: torch {run['ours_torch']}, telugu-codec {run['ours_version']} (`.venv`).",
        f"- DAC: torch {d['torch']}, descript-audio-codec {d['dac']}, descript-audiotools "
        f"{d['audiotools']} (`.venv-dac`, not a project dependency).",
    ]
    w = run.get("wait")
    if w:
        still = w["still_running"]
        lines.append(
            f"- Before starting, waited {w['waited_min']:.1f} min for processes matching "
            f"`{w['pattern']}` to end; "
            + (
                f"**{len(still)} still ran when the run started anyway** (limit reached)."
                if still
                else "none ran at the start."
            )
        )
    lines += ["", headline(run)] if headline(run) else []
    lines += [
        "",
        "## Load during the run",
        "",
        "Each row covers the minute before it. CPU-s: CPU seconds the process tree used in that "
        "interval (/proc); 'other' is every process that is neither side nor this driver.",
        "",
        "| minute | load 1 / 5 / 15 min | ours CPU-s | DAC CPU-s | other CPU-s | busiest others |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for s in t["samples"]:
        c = s["cpu_s"]
        top = "; ".join(f"`{cmd[:60]}` {sec:g}" for cmd, sec in s.get("top_other", []) if sec >= 1)
        load = " / ".join(f"{v:.2f}" if v is not None else "?" for v in s["load"])
        lines.append(
            f"| {s['minute']:.1f} | {load} "
            f"| {c['ours']:.0f} | {c['dac']:.0f} | {c['other']:.0f} | {top or '-'} |"
        )
    if t.get("note"):
        lines += ["", t["note"]]
    ours_steps, ours_s = o["state"]["step"], o["state"]["train_seconds"]
    lines += [
        "",
        "## Training",
        "",
        "| side | budget | training wall-clock | steps | wall s/step | process wall-clock "
        "| CPU-s (process tree) | CPU-min | G params | D params |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| ours ({run['preset']}) | {run['minutes']:g} min "
        f"| {ours_s / 60:.2f} min | {ours_steps} "
        f"| {ours_s / max(ours_steps, 1):.2f} | {e['ours']['wall_s']:.0f} s "
        f"| {e['ours']['cpu_s']:.0f} | {e['ours']['cpu_s'] / 60:.1f} "
        f"| {o['g_params'] / 1e6:.2f} M | {o['d_params'] / 1e6:.2f} M |",
        f"| DAC | {run['minutes']:g} min | {d['train_wall_s'] / 60:.2f} min | {d['steps']} "
        f"| {d['train_wall_s'] / max(d['steps'], 1):.2f} | {e['dac']['wall_s']:.0f} s "
        f"| {e['dac']['cpu_s']:.0f} (loop {d['train_cpu_s']:.0f}) | {e['dac']['cpu_s'] / 60:.1f} "
        f"| {d['g_params'] / 1e6:.2f} M | {d['d_params'] / 1e6:.2f} M |",
        "",
        f"Batch {run['batch']} x {run['segment']:g} s on both sides. Ours stopped for "
        f"'{(o['summary'] or {}).get('reason', '?')}'; its training wall-clock is the "
        "trainer's `train_seconds` at the last checkpoint. Process wall-clock and CPU-s "
        "include start-up (imports, model building, the data scan) and the final save; DAC's "
        "'loop' CPU-s is its training loop alone (time.process_time), of which "
        f"{d['data_wall_s']:.0f} s wall went to loading and transforming batches.",
        "",
        f"## Quality on {run['val_data']} ({run['n_files']} files, 16 kHz)",
        "",
        "Mean ± half-width of the 95 % t-interval over files. kbps: payload (ours: measured "
        "from the .tcc bitstream, codes + pitch channel; DAC: n_q x 10 bits x 50 frames/s).",
        "",
        "| system | checkpoint | rate | n_q | kbps | PESQ-WB | STOI | mel distance |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    merged: dict[tuple, dict] = {}  # one row per (system, checkpoint, n_q), its rate labels
    for r in run["rows"]:
        row = merged.setdefault((r["system"], r["checkpoint"], r["n_q"]), dict(r, labels=[]))
        row["labels"].append(r["choice"])
    for r in merged.values():
        ivs = [mean_interval(list(r["per_file"][m].values())) for m in METRIC_NAMES]
        lines.append(
            f"| {r['system']} | {r['checkpoint']} | {', '.join(r['labels'])} | {r['n_q']} "
            f"| {r['kbps']:.2f} | " + " | ".join(_fmt(iv) for iv in ivs) + " |"
        )
    lines += [
        "",
        "## Margin, ours - DAC (paired over the same files)",
        "",
        "Mean difference ± half-width of its 95 % t-interval; mel distance is lower-is-better, "
        "so a negative difference favours ours.",
        "",
        "| pair | ours (kbps) | DAC (kbps) | Δ PESQ-WB | Δ STOI | Δ mel distance |",
        "|---|---|---|---:|---:|---:|",
    ]
    for label, a, b in run["pairs"]:
        deltas = [
            mean_interval(paired_differences(a["per_file"][m], b["per_file"][m]))
            for m in METRIC_NAMES
        ]
        lines.append(
            f"| {label} | {a['checkpoint']} n_q {a['n_q']} ({a['kbps']:.2f}) "
            f"| n_q {b['n_q']} ({b['kbps']:.2f}) | " + " | ".join(_fmt(iv) for iv in deltas) + " |"
        )
    lines += ["", "## What was matched, and how", ""]
    lines += [f"- {n}" for n in run["notes"]]
    text = "\n".join(lines) + "\n"
    path.write_text(text)
    return text


def score(args: argparse.Namespace) -> dict:
    """Everything after the trainings, from ``args.out`` (its train.json): DAC's decodes, the
    scores of both sides, run.json and the report. Run in a fresh interpreter, so that it
    reads checkpoints with the package as it is now, not as it was when the run started."""
    import importlib.metadata as md

    import torch

    from telugu_codec.config import load_config
    from telugu_codec.evaluation.evaluate import list_inputs
    from telugu_codec.model.codec import Codec
    from telugu_codec.model.discriminators import Discriminators
    from telugu_codec.train.checkpoints import latest_checkpoint

    out = Path(args.out)
    trained = json.loads((out / "train.json").read_text())
    bts = _speed_bench()
    cfg = load_config(args.preset, list(args.set))
    model, disc, spec_notes = bts.dac_spec(cfg)
    dac = json.loads((out / "dac" / "result.json").read_text())
    summary = parse_train_summary((out / "ours.log").read_text())

    files, _ = list_inputs(args.val_data)
    files = files[: args.max_files] if args.max_files else files
    sr = model["sample_rate"]
    dac_rows = decode_and_score_dac(args, model, files, out, dac["steps"])
    ours_rows, pairs = [], []
    checkpoints = [("last", latest_checkpoint(out / "ours"))]
    best = out / "ours" / "checkpoints" / "best"
    if (best / "source.json").exists():
        source = json.loads((best / "source.json").read_text())["checkpoint"]
        if source != checkpoints[0][1].name:  # the same weights need no second evaluation
            checkpoints.append(("best", best))
    for label, ckpt in checkpoints:
        rows = score_ours(ckpt, label, files, args, out / f"eval_{label}")
        ours_rows += rows
        by_label = {r["choice"]: r for r in dac_rows}
        for r in rows:
            if r["choice"] in by_label:
                pairs.append((f"{r['choice']}, ours {label}", r, by_label[r["choice"]]))
    codec = Codec.load(checkpoints[0][1])
    state = json.loads((checkpoints[0][1] / "state.json").read_text())
    d_params = sum(p.numel() for p in Discriminators(cfg.discriminator, sr).parameters())
    notes = [
        f"DAC generator (`dac_spec`): {json.dumps(model)}. DAC's discriminator: periods "
        f"{disc['periods']}, FFT sizes {disc['fft_sizes']}, MSD rates {disc['rates']}."
        + "".join(f" Not matched: {n}." for n in spec_notes),
        "Our preset's decoder is not DAC's kind, so DAC's `decoder_dim` is the SEANet width "
        "`dac_spec` derives from our `decoder.channels`; G params are given side by side.",
        "DAC's recipe: `bench_train_speed.dac_recipe` = scripts/train.py's `train_loop` with "
        f"conf/base.yml's losses and lambdas {json.dumps(bts.DAC_LAMBDAS)}, AdamW(1e-4, "
        "betas 0.8 / 0.99) and ExponentialLR(0.999996) for G and D, clip 1e3 / 10, amp off; "
        "the reconstruction is zero-padded by 8 samples to the input length (see "
        "bench_train_speed). Its quantizer dropout is ours (0.5; base.yml has 1.0).",
        f"Ours: the `{args.preset}` preset's own recipe"
        + (
            f"; its discriminators join at step {cfg.train.d_warmup_steps} "
            f"(`train.d_warmup_steps`), after the {state['step']} steps it made, so it trained "
            "without them here, while DAC's step always runs its discriminator"
            if cfg.train.d_warmup_steps > state["step"]
            else ""
        )
        + ".",
        "DAC's data: audiotools AudioLoader + AudioDataset on the same training folder "
        f"({dac['train_files']} files), {cfg.data.batch_size} excerpts x "
        f"{cfg.data.segment_seconds:g} s per batch, loudness-normalised as DAC's train.py "
        "does (VolumeNorm -16 LUFS, RescaleAudio, ShiftPhase); in-process loading "
        "(num_workers 0), as ours does on a CPU. Ours: its own crops at -16 dBFS RMS. "
        "audiotools 0.7.2 reads file lengths with `torchaudio.info`, which torchaudio 2.9 "
        "lacks; the worker reads them with soundfile instead (the only change to its data code).",
        "Budgets: ours stops when its trainer's wall-clock training time (validations and "
        "checkpoints included) passes the budget; DAC starts no step after its loop has run "
        "the budget, so its last step may end up to one step late. Neither counts start-up.",
        "DAC decodes with its own `compress` (win_duration None: one window per file) / "
        "`decompress`; the codes are cut to n_q first, because `compress` keeps every "
        "codebook's codes whatever `n_quantizers` says. The input gets one hop (320 samples) "
        "of zeros at the end, and the file's own length and loudness are put back in the "
        "DACFile: DAC's decoder returns 8 samples fewer than its input at these rates, and "
        "`decompress` fails on that otherwise.",
        f"Scores: `telugu_codec.metrics` {', '.join(METRIC_NAMES)} against "
        "`load_audio(file, 16000)`, on float32 wavs (no 16-bit rounding on either side).",
        "Torch differs: ours runs torch "
        f"{torch.__version__}, DAC's environment torch {dac['torch']} (as specified for it).",
    ]
    if len(checkpoints) > 1:
        notes.append(
            "Our 'best' checkpoint is chosen on the evaluation folder itself (the run's "
            "--val-data), so its row is optimistic; 'last' is the like-for-like row."
        )
    run = dict(
        trained,
        machine=(
            f"{platform.processor() or platform.machine()}, nproc {os.cpu_count()}, Python "
            f"{platform.python_version()}"
        ),
        ours_torch=torch.__version__,
        ours_version=md.version("telugu-codec"),
        ours={
            "summary": summary,
            "state": state,
            "g_params": sum(p.numel() for p in codec.parameters()),
            "d_params": d_params,
        },
        dac=dac,
        preset=args.preset,
        minutes=args.minutes,
        batch=cfg.data.batch_size,
        segment=cfg.data.segment_seconds,
        val_data=args.val_data,
        n_files=len(files),
        rows=dac_rows + ours_rows,
        pairs=pairs,
        notes=notes,
    )
    (out / "run.json").write_text(json.dumps(run, indent=1, default=str))
    print(write_results(Path(args.results), run))
    return run


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--dac-train"]:
        dac_train(argv[1])
        return 0
    if argv[:1] == ["--dac-decode"]:
        dac_decode(argv[1])
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
    model, disc, _ = _speed_bench().dac_spec(cfg)
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
