"""GPU check: training throughput, bf16 sanity, quality after minutes of training, inference speed.

One command for a lent GPU session (issue 17), with a hard internal time limit; every section
writes its results as soon as it ends, so a run cut short still leaves numbers:

    python benchmarks/gpu_check.py OUT_DIR [--limit-min 8] [--train-min 3.5]
    python benchmarks/gpu_check.py OUT_DIR --dry-run      # the same path on a CPU, in seconds

Sections (in this order, each skipped when the time left is too short):
1. machine: card, driver, torch / CUDA versions, free memory;
2. throughput: training steps/s, audio-seconds/s and peak memory for `default`, `dac` and
   `seed` at a per-GPU batch of `--batch` x `--segment` s, in fp32 (TF32 on) and bf16, with and
   without torch.compile (compile time reported), fused AdamW; the discriminators on from step 0
   so every step is a full GAN step;
3. quality: `--preset` trained on data/demo-te for `--train-min` minutes in bf16, evaluated on
   demo-te/val at 1.5 / 3 / 6 kbps (PESQ-WB, STOI, mel distance, amplitude);
4. bf16 sanity: no non-finite step in that run, amplitude ratio in [0.5, 2] at its last
   validation, and the quantizer's codes of a fixed batch under bf16 autocast equal to the fp32
   search;
5. inference: encode + decode speed of the trained codec at batch 1 and 64 (x real time).

Output: OUT_DIR/gpu_check.json and OUT_DIR/gpu_check.md.

On the device machine (its python3 has torch, numpy, pyyaml, safetensors, tqdm, matplotlib,
tensorboard but not soundfile, soxr, pesq, pystoi): download those as wheels here with
`benchmarks/gpu_wheels.sh` (Python 3.12 manylinux wheels into .whl/, git-ignored through
.git/info/exclude) and start the run with
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl &&
    PYTHONPATH=/tmp/site:src PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py $OUT
carrying `.whl`. PESQ / STOI columns are left empty where those packages are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))

DATA = ROOT / "data" / "demo-te"

# (preset, precision, compile) measured in this order; the first rows matter most
THROUGHPUT_PLAN = (
    ("default", "bf16", False),
    ("default", "fp32", False),
    ("default", "bf16", True),
    ("dac", "bf16", False),
    ("seed", "bf16", False),
    ("dac", "fp32", False),
    ("seed", "fp32", False),
    ("dac", "bf16", True),
    ("seed", "bf16", True),
)
# tiny sizes for --dry-run: the same code path on a CPU in seconds
DRY = [
    "model.encoder.channels=4",
    "model.decoder.channels=4",
    "model.latent_dim=16",
    "model.quantizer.codebook_size=64",
    "model.quantizer.init_vectors=0.5",
    "discriminator.kinds=[mpd]",
    "discriminator.mpd.periods=[2]",
    "discriminator.mpd.channels=4",
    "discriminator.mpd.max_channels=8",
    "discriminator.msd.width=0.05",
    "loss.mel_loss.n_ffts=[64,256]",
    "loss.mel_loss.n_mels=[16,32]",
    "data.val_max_files=2",
    "data.val_max_seconds=1.0",
]


class Deadline:
    """The run's hard time limit."""

    def __init__(self, minutes: float):
        self.end = time.time() + minutes * 60

    def left(self) -> float:
        return self.end - time.time()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine_info(device: torch.device) -> dict:
    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "device": str(device),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        free, total = torch.cuda.mem_get_info(device)
        info.update(
            card=props.name,
            multiprocessors=props.multi_processor_count,
            memory_gib=round(total / 2**30, 1),
            free_gib=round(free / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
        )
        if shutil.which("nvidia-smi"):
            out = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version,name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
            )
            info["driver"] = out.stdout.strip()
    return info


def _trainer(run_dir: Path, preset: str, overrides: list[str], device: torch.device, **kw):
    from telugu_codec.config import load_config
    from telugu_codec.train.trainer import Trainer

    cfg = load_config(preset, overrides)
    return Trainer(
        cfg,
        run_dir,
        DATA / "train",
        val_data=DATA / "val",
        device=device,
        progress=False,
        tensorboard=False,
        log=lambda _m: None,
        **kw,
    )


def throughput(
    preset: str,
    precision: str,
    compiled: bool,
    device: torch.device,
    work: Path,
    base: list[str],
    seconds: float,
    max_steps: int,
) -> dict:
    """Time full GAN steps (D then G) of `preset`; compile time is the first steps' extra."""
    overrides = base + [
        f"train.precision={precision}",
        f"train.compile={str(compiled).lower()}",
        "train.d_warmup_steps=0",
        "train.val_every=1000000",
        "train.ckpt_every=1000000",
        "model.quantizer.kmeans_init=false",  # no k-means warm-up: every step quantizes
    ]
    t = _trainer(work / f"{preset}-{precision}-{int(compiled)}", preset, overrides, device)
    batches = t.feed.batches()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for _ in range(3):  # warm-up (and compilation)
        t.train_step([next(batches).to(device)])
    sync(device)
    warm = time.perf_counter() - t0
    steps, t1 = 0, time.perf_counter()
    while steps < max_steps and time.perf_counter() - t1 < seconds:
        logs = t.train_step([next(batches).to(device)])
        steps += 1
    sync(device)
    elapsed = time.perf_counter() - t1
    sps = steps / elapsed
    gb, seg = t.telemetry.global_batch()
    row = {
        "preset": preset,
        "precision": precision,
        "compile": compiled,
        "batch": f"{gb} x {seg:g} s",
        "steps_per_s": sps,
        "audio_s_per_s": sps * gb * seg,
        "warmup_s": warm,
        "compile_s": max(0.0, warm - 3 / sps) if compiled else None,
        "timed_steps": steps,
        "finite": bool(logs.get("finite", 1.0)),
        "codec_M": t.codec.num_parameters() / 1e6,
        "disc_M": sum(p.numel() for p in t.disc.parameters()) / 1e6 if t.disc else 0.0,
    }
    if device.type == "cuda":
        row["peak_mem_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    del t, batches
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def quality(
    preset: str, device: torch.device, work: Path, base: list[str], minutes: float, dry: bool
) -> tuple[dict, Path]:
    """Train `preset` for `minutes` (bf16 on CUDA) and evaluate it at 1.5 / 3 / 6 kbps."""
    from telugu_codec.evaluation.evaluate import evaluate
    from telugu_codec.train.logging import read_metrics

    run = work / f"quality-{preset}"
    t = _trainer(
        run,
        preset,
        base + ["train.val_every=200", "train.ckpt_every=200"],
        device,
        time_budget_s=minutes * 60,
    )
    result = t.train(10**9)
    ckpt = sorted((run / "checkpoints").glob("step_*"))[-1]
    codec = t.codec
    rates = [k for k in (1.5, 3.0, 6.0) if k * 1000 <= codec.bitrate(codec.max_n_q) + 1e-6]
    if dry:
        rates = [codec.bitrate(1) / 1000]
    report = evaluate(
        ckpt,
        DATA / "val",
        work / "quality-eval",
        bitrates=rates,
        baselines=(),
        metrics=["pesq_wb", "stoi", "mel_distance", "amplitude_ratio"],
        max_files=2 if dry else None,
        force=True,
        progress=False,
        notice=lambda m: None,
    )
    rows = [
        {"system": s.system, "kbps": s.nominal_kbps} | {k: v.mean for k, v in s.metrics.items()}
        for s in report.summaries
    ]
    records = read_metrics(run)
    vals = [r for r in records if r.get("kind") == "val"]
    return {
        "preset": preset,
        "steps": result.step,
        "train_minutes": result.wall_seconds / 60,
        "audio_hours": result.audio_hours,
        "nonfinite_steps": t.state.nonfinite_total,
        "last_amplitude": vals[-1].get("val/amplitude_ratio") if vals else None,
        "last_health": vals[-1].get("health") if vals else None,
        "eval": rows,
    }, ckpt


@torch.no_grad()
def bf16_codes_match(ckpt: Path, device: torch.device) -> dict:
    """Codes of a fixed batch: quantizer under bf16 autocast vs the fp32 search."""
    import soundfile as sf

    from telugu_codec.model.codec import Codec

    codec = Codec.load(ckpt, device=device)
    files = sorted((DATA / "val").glob("*.flac"))[:4]
    n = 16000 * 2
    xs = []
    for f in files:
        w, _ = sf.read(f, dtype="float32")
        xs.append(torch.nn.functional.pad(torch.from_numpy(w[:n]), (0, max(0, n - len(w)))))
    x = torch.stack(xs)[:, None].to(device)
    x, _ = codec._normalize(x)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        z = codec.encoder(codec._pad(x))
        auto = codec.quantizer(z.float()).codes
    ref = codec.quantizer.encode(z.float())
    return {"codes": int(ref.numel()), "equal": bool(torch.equal(auto, ref))}


@torch.no_grad()
def inference(ckpt: Path, device: torch.device, seconds: float, batches: tuple[int, ...]) -> list:
    from telugu_codec.model.codec import Codec

    codec = Codec.load(ckpt, device=device).remove_weight_norm()
    rows = []
    for b in batches:
        x = torch.randn(b, 1, int(seconds * codec.sample_rate), device=device) * 0.1
        for _ in range(2):
            codes, gain = codec.encode_codes(x)
            codec.decode_codes(codes, x.shape[-1], gain)
        sync(device)
        t0, reps = time.perf_counter(), 5
        for _ in range(reps):
            codes, gain = codec.encode_codes(x)
            codec.decode_codes(codes, x.shape[-1], gain)
        sync(device)
        per = (time.perf_counter() - t0) / reps
        rows.append({"batch": b, "seconds_each": seconds, "x_real_time": b * seconds / per})
    return rows


def markdown(res: dict) -> str:
    m = res.get("machine", {})
    lines = [
        f"# GPU check ({m.get('card', m.get('device'))})",
        "",
        f"torch {m.get('torch')}, CUDA {m.get('cuda')}, driver {m.get('driver', 'n/a')}, "
        f"{m.get('memory_gib', 'n/a')} GiB ({m.get('free_gib', 'n/a')} free), "
        f"{m.get('cpus')} CPUs. Command: `{res.get('command')}`; {res.get('wall_minutes', 0):.1f} "
        "min in all.",
        "",
        "## Training throughput (full GAN steps)",
        "",
        "| preset | precision | compile | batch | steps/s | audio s/s | peak GiB | warm-up s |",
        "|---|---|---|---|---:|---:|---:|---:|",
    ]
    for r in res.get("throughput", []):
        lines.append(
            f"| {r['preset']} | {r['precision']} | {'yes' if r['compile'] else 'no'} | "
            f"{r['batch']} | {r['steps_per_s']:.2f} | {r['audio_s_per_s']:.1f} | "
            f"{r.get('peak_mem_gib', float('nan')):.1f} | {r['warmup_s']:.1f} |"
        )
    q = res.get("quality")
    if q:
        lines += [
            "",
            f"## Quality after {q['train_minutes']:.1f} min of `{q['preset']}` ({q['steps']} "
            f"steps, {q['audio_hours']:.2f} h of audio)",
            "",
            "| system | kbps | PESQ-WB | STOI | mel distance | amplitude |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in q["eval"]:
            lines.append(
                f"| {r['system']} | {r['kbps']:g} | {_f(r.get('pesq_wb'))} | "
                f"{_f(r.get('stoi'), 3)} | {_f(r.get('mel_distance'), 3)} | "
                f"{_f(r.get('amplitude_ratio'))} |"
            )
    b = res.get("bf16")
    if b:
        lines += ["", "## bf16 sanity", "", "```", json.dumps(b, indent=1), "```"]
    inf = res.get("inference")
    if inf:
        lines += [
            "",
            "## Inference (encode + decode)",
            "",
            "| batch | x real time |",
            "|---:|---:|",
        ]
        lines += [f"| {r['batch']} | {r['x_real_time']:.0f} |" for r in inf]
    if res.get("skipped"):
        lines += ["", "Skipped for lack of time: " + ", ".join(res["skipped"])]
    return "\n".join(lines) + "\n"


def _f(v, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out", help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU, in seconds")
    p.add_argument("--limit-min", type=float, default=8.0, help="hard time limit (minutes)")
    p.add_argument("--train-min", type=float, default=3.5, help="quality training (minutes)")
    p.add_argument("--preset", default="default", help="preset of the quality run")
    p.add_argument("--batch", type=int, default=16, help="per-GPU batch for throughput")
    p.add_argument("--segment", type=float, default=1.0, help="seconds per item")
    args = p.parse_args(argv)

    t_start = time.time()
    deadline = Deadline(args.limit_min)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    base = [f"data.batch_size={args.batch}", f"data.segment_seconds={args.segment}"]
    plan = THROUGHPUT_PLAN
    window, max_steps, train_min = 10.0, 10**9, args.train_min
    if args.dry_run:
        base = DRY + ["data.batch_size=2", "data.segment_seconds=0.25"]
        plan = (("default", "fp32", False), ("dac", "fp32", False), ("seed", "bf16", False))
        window, max_steps, train_min = 1.0, 2, 0.05
    res: dict = {
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": machine_info(device),
        "throughput": [],
        "skipped": [],
    }

    def save() -> None:
        res["wall_minutes"] = (time.time() - t_start) / 60
        (out / "gpu_check.json").write_text(json.dumps(res, indent=2, default=str))
        (out / "gpu_check.md").write_text(markdown(res))

    print(json.dumps(res["machine"], indent=1), flush=True)
    save()
    work = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    reserve = train_min * 60 + 90  # the quality run and what follows it
    for preset, precision, compiled in plan:
        need = window + (90 if compiled else 20)
        if deadline.left() - reserve < need:
            res["skipped"].append(f"throughput {preset}/{precision}/compile={compiled}")
            continue
        try:
            row = throughput(preset, precision, compiled, device, work, base, window, max_steps)
        except Exception as e:  # one failing row (e.g. a compile error) must not end the run
            row = {"preset": preset, "precision": precision, "compile": compiled, "error": str(e)}
            res["throughput"].append(row)
            save()
            continue
        res["throughput"].append(row)
        print(json.dumps(row), flush=True)
        save()
    ckpt = None
    if deadline.left() > train_min * 60 + 45:
        res["quality"], ckpt = quality(args.preset, device, work, base, train_min, args.dry_run)
        print(json.dumps(res["quality"]), flush=True)
        save()
    else:
        res["skipped"].append("quality")
    if ckpt is not None and deadline.left() > 20:
        res["bf16"] = bf16_codes_match(ckpt, device) | {
            "nonfinite_steps": res["quality"]["nonfinite_steps"],
            "last_amplitude": res["quality"]["last_amplitude"],
            "amplitude_in_range": res["quality"]["last_amplitude"] is not None
            and 0.5 <= res["quality"]["last_amplitude"] <= 2.0,
        }
        save()
    if ckpt is not None and deadline.left() > 20:
        batches = (1, 2) if args.dry_run else (1, 64)
        res["inference"] = inference(ckpt, device, 1.0 if args.dry_run else 10.0, batches)
        save()
    shutil.rmtree(work, ignore_errors=True)
    save()
    print(markdown(res), flush=True)
    return res


if __name__ == "__main__":
    main()
