"""CPU training throughput (issue 6): our GAN step vs DAC's reference step at matched sizes.

For each preset, one full training step (codec forward, discriminator update, generator update)
is timed after a few warm-up steps:

- ours: `telugu_codec.train.trainer.Trainer.train_step` on batches from the bundled corpus
  (`data/demo-te/train`), with ``train.d_warmup_steps=0`` so the discriminators are active;
- DAC: `dac.model.DAC` + `dac.model.Discriminator` with random weights (nothing downloaded),
  built at the sizes of our config, trained by the step of DAC's `scripts/train.py`
  (`train_loop`): GANLoss.discriminator_loss -> backward -> clip 10 -> AdamW step; then
  MultiScaleSTFTLoss, MelSpectrogramLoss, L1Loss (computed as train.py does, the first and the
  last only logged), GANLoss.generator_loss (adversarial + feature matching), commitment and
  codebook losses, weighted by DAC's `conf/base.yml` lambdas -> backward -> clip 1000 -> AdamW
  step; ExponentialLR steps on both. It runs in a separate interpreter (DAC's own virtual
  environment, never a project dependency) on the *same* batches, saved to a temporary file.

The two sides alternate, one step each (ours, DAC's, ours, ...), so that both see the same
machine load; the table gives medians over the timed steps, the log every step's time and the
1-minute load average after it. On a shared machine other jobs slow a step by 10x or more, so
run it when the load is low and read the per-step times.

Data loading and DAC's batch transforms (VolumeNorm / RescaleAudio / ShiftPhase, done under
no_grad before the step) are outside the timed region on both sides; our batches are already
loudness-normalised crops.

How DAC is matched to a config (see `dac_spec`):
- sample rate, encoder_dim = our encoder.channels, latent_dim, n_codebooks, codebook_size and
  quantizer dropout as ours; codebook_dim stays DAC's factorised 8.
- encoder_rates: DAC has no patching, so our patch factor moves into the last (lowest-rate)
  stride: patch 2 + strides (2, 4, 5, 4) -> rates (2, 4, 5, 8), the same hop of 320 (DAC's own
  16 kHz release uses these rates; seed, unpatched, has them already); decoder_rates are their
  reverse.
- decoder_dim = our decoder's widest width (its first layer), as DAC's decoder_dim is.
- discriminator: msd -> DAC's MSD at rates 1, 2, 4 (one per scale); mpd -> DAC's MPD at our
  periods; mrd -> DAC's MRD at our FFT sizes and bands. DAC's MPD and MRD widths are fixed in
  its code (32 .. 1024 and 32), so a narrowed one (tiny's) cannot be matched: the parameter
  counts are printed side by side, and the `tiny-dacd` variant runs tiny with our MPD / MRD at
  DAC's widths to compare like with like.
- DAC's decoder returns 8 samples fewer than its input at these rates (its transposed conv of
  odd stride 5 loses one sample, times 8 further up), and its losses then fail on the length
  mismatch; the worker zero-pads the reconstruction on the right to the input length before
  the losses. This is the only change to DAC's step.

Usage (from the repository root):

    .venv/bin/python benchmarks/bench_train_speed.py
    .venv/bin/python benchmarks/bench_train_speed.py --dac-python .venv-dac/bin/python \\
        --presets tiny,seed,tiny-dacd --steps 5

The DAC environment: ``python3 -m venv .venv-dac && .venv-dac/bin/pip install torch==2.9.1
'torchaudio==2.9.*' descript-audio-codec``. Without it the DAC column says why it was skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent

# per-preset overrides applied unless --no-default-overrides; seed's own batch is 16 x 1 s,
# halved to keep a step tractable on 2 cores (the DAC side gets the same batch)
DEFAULT_OVERRIDES: dict[str, list[str]] = {"seed": ["data.batch_size=8"]}

# named variants: (preset, overrides)
VARIANTS: dict[str, tuple[str, list[str]]] = {
    # tiny with our MPD / MRD at DAC's fixed widths (HiFi-GAN's 32 .. 1024 and 32 channels)
    "tiny-dacd": (
        "tiny",
        [
            "discriminator.mpd.channels=32",
            "discriminator.mpd.max_channels=1024",
            "discriminator.mrd.channels=32",
        ],
    ),
}

DEFAULT_STEPS = {"tiny": 10, "tiny-dacd": 5, "seed": 4}
DEFAULT_WARMUP = {"tiny": 3, "tiny-dacd": 2, "seed": 2}

# DAC conf/base.yml (identical in conf/final/16khz.yml)
DAC_LAMBDAS = {
    "mel/loss": 15.0,
    "adv/feat_loss": 2.0,
    "adv/gen_loss": 1.0,
    "vq/commitment_loss": 0.25,
    "vq/codebook_loss": 1.0,
}


def _load() -> float:
    return os.getloadavg()[0]


def _summary(times: list[float]) -> dict:
    return {
        "times": times,
        "mean": statistics.fmean(times),
        "median": statistics.median(times),
        "min": min(times),
    }


# ============================================================================================
# DAC side: runs inside DAC's own interpreter; imports nothing from telugu_codec
# ============================================================================================


def dac_recipe(spec: dict) -> tuple[torch.nn.Module, torch.nn.Module, Callable]:
    """DAC's generator and discriminator at `spec` sizes (random weights) with the optimizers,
    schedules, losses and step of DAC's scripts/train.py; runs inside DAC's interpreter.

    Args:
        spec: `model` and `discriminator` (DAC constructor kwargs).

    Returns:
        (generator, discriminator, train_loop); ``train_loop(x)`` runs one training step on
        x: (B, 1, T) float32 and returns the loss terms as floats.
    """
    import warnings

    warnings.filterwarnings("ignore", category=UserWarning)  # as DAC's train.py does
    warnings.filterwarnings("ignore", category=FutureWarning)
    from audiotools import AudioSignal
    from dac.model import DAC, Discriminator
    from dac.nn import loss as dac_loss

    generator = DAC(**spec["model"])
    discriminator = Discriminator(**spec["discriminator"])
    sr = spec["model"]["sample_rate"]
    # train.py: AdamW(lr 1e-4, betas (0.8, 0.99)) + ExponentialLR(0.999996) for both
    opt_g = torch.optim.AdamW(generator.parameters(), lr=1e-4, betas=(0.8, 0.99))
    opt_d = torch.optim.AdamW(discriminator.parameters(), lr=1e-4, betas=(0.8, 0.99))
    sched_g = torch.optim.lr_scheduler.ExponentialLR(opt_g, 0.999996)
    sched_d = torch.optim.lr_scheduler.ExponentialLR(opt_d, 0.999996)
    # the loss objects of train.py's `load`, configured as conf/base.yml
    waveform_loss = dac_loss.L1Loss()
    stft_loss = dac_loss.MultiScaleSTFTLoss(window_lengths=[2048, 512])
    mel_loss = dac_loss.MelSpectrogramLoss(
        n_mels=[5, 10, 20, 40, 80, 160, 320],
        window_lengths=[32, 64, 128, 256, 512, 1024, 2048],
        mel_fmin=[0.0] * 7,
        mel_fmax=[None] * 7,
        pow=1.0,
        clamp_eps=1.0e-5,
        mag_weight=0.0,
    )
    gan_loss = dac_loss.GANLoss(discriminator)

    def train_loop(x: torch.Tensor) -> dict[str, float]:
        """DAC scripts/train.py `train_loop` (amp off, one process), x: (B, 1, T)."""
        generator.train()
        discriminator.train()
        output = {}
        signal = AudioSignal(x.clone(), sr)
        out = generator(signal.audio_data, signal.sample_rate)
        audio = out["audio"]
        pad = signal.signal_length - audio.shape[-1]
        if pad > 0:  # DAC returns T - 8 samples at rates with a 5; see the module docstring
            audio = torch.nn.functional.pad(audio, (0, pad))
        recons = AudioSignal(audio, sr)
        commitment_loss = out["vq/commitment_loss"]
        codebook_loss = out["vq/codebook_loss"]

        output["adv/disc_loss"] = gan_loss.discriminator_loss(recons, signal)
        opt_d.zero_grad()
        output["adv/disc_loss"].backward()
        torch.nn.utils.clip_grad_norm_(discriminator.parameters(), 10.0)
        opt_d.step()
        sched_d.step()

        output["stft/loss"] = stft_loss(recons, signal)
        output["mel/loss"] = mel_loss(recons, signal)
        output["waveform/loss"] = waveform_loss(recons, signal)
        output["adv/gen_loss"], output["adv/feat_loss"] = gan_loss.generator_loss(recons, signal)
        output["vq/commitment_loss"] = commitment_loss
        output["vq/codebook_loss"] = codebook_loss
        output["loss"] = sum(v * output[k] for k, v in DAC_LAMBDAS.items() if k in output)

        opt_g.zero_grad()
        output["loss"].backward()
        torch.nn.utils.clip_grad_norm_(generator.parameters(), 1e3)
        opt_g.step()
        sched_g.step()
        return {k: float(v) for k, v in output.items()}

    return generator, discriminator, train_loop


def dac_worker(spec_path: str, batches_path: str) -> None:
    """Build DAC at `spec` sizes with random weights; run DAC's train_loop on command.

    Protocol (one JSON object per line): after building, writes `info` (parameter counts,
    versions); then for each ``step I`` line read from stdin runs one step on batch I and writes
    ``{"dt": seconds, "load": 1-minute load average}``; ``quit`` ends it. Everything else the
    libraries print goes to stderr.

    Args:
        spec_path: JSON with `model`, `discriminator` (DAC constructor kwargs), `threads`,
            `seed`.
        batches_path: .npy of shape (N, B, 1, T) float32.
    """
    import importlib.metadata as md

    reply = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of the libraries go to stderr, not into the protocol
    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    batches = torch.from_numpy(np.load(batches_path))
    generator, discriminator, train_loop = dac_recipe(spec)

    info = {
        "g_params": sum(p.numel() for p in generator.parameters()),
        "d_params": sum(p.numel() for p in discriminator.parameters()),
        "torch": torch.__version__,
        "dac": md.version("descript-audio-codec"),
        "audiotools": md.version("descript-audiotools"),
        "threads": torch.get_num_threads(),
    }
    reply.write(json.dumps(info) + "\n")
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        t0 = time.perf_counter()
        losses = train_loop(batches[int(cmd[1])])
        dt = time.perf_counter() - t0
        reply.write(json.dumps({"dt": dt, "load": _load(), "losses": losses}) + "\n")


class DacWorker:
    """`dac_worker` in DAC's own interpreter, driven one step at a time over a pipe."""

    def __init__(self, python: str, spec: dict, batches: np.ndarray, tmp: Path):
        (tmp / "spec.json").write_text(json.dumps(spec))
        np.save(tmp / "batches.npy", batches.astype(np.float32))
        self.stderr = open(tmp / "stderr.txt", "w+")  # noqa: SIM115 (closed in close())
        threads = str(spec["threads"])
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONWARNINGS="ignore")
        self.proc = subprocess.Popen(
            [python, __file__, "--dac-worker", str(tmp / "spec.json"), str(tmp / "batches.npy")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            text=True,
            env=env,
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait()
            self.stderr.seek(0)
            tail = (self.stderr.read().strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"DAC worker failed (exit {self.proc.returncode}): {tail}")
        return json.loads(line)

    def step(self, i: int) -> dict:
        self.proc.stdin.write(f"step {i}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait()
        self.stderr.close()


# ============================================================================================
# our side and the driver
# ============================================================================================


def resolve(name: str, use_defaults: bool, extra: list[str]):
    """A preset or variant name -> (Config, the overrides applied)."""
    from telugu_codec.config import load_config

    preset, overrides = VARIANTS.get(name, (name, []))
    overrides = list(overrides)
    if use_defaults:
        overrides += DEFAULT_OVERRIDES.get(preset, [])
    overrides += extra + ["train.d_warmup_steps=0"]
    return load_config(preset, overrides), overrides


def dac_spec(cfg) -> tuple[dict, dict, list[str]]:
    """DAC constructor kwargs matched to our config; also notes on what could not be matched."""
    m = cfg.model
    notes = []
    n = len(m.strides)
    rates = list(m.strides[:-1]) + [m.strides[-1] * m.patch_size]
    model = {
        "sample_rate": m.sample_rate,
        "encoder_dim": m.encoder.channels,
        "encoder_rates": rates,
        "latent_dim": m.latent_dim,
        "decoder_dim": min(m.decoder.channels * 2**n, m.decoder.max_channels),
        "decoder_rates": rates[::-1],
        "n_codebooks": m.quantizer.n_q,
        "codebook_size": m.quantizer.codebook_size,
        "codebook_dim": 8,
        "quantizer_dropout": m.quantizer.dropout,
    }
    dc = cfg.discriminator
    disc = {
        "rates": [],
        "periods": [],
        "fft_sizes": [],
        "sample_rate": m.sample_rate,
        "bands": [list(b) for b in dc.mrd.bands],
    }
    for kind in dc.kinds:
        if kind == "msd":
            disc["rates"] = [2**i for i in range(dc.msd.scales)]
            if dc.msd.width != 1.0:
                notes.append(f"our MSD width {dc.msd.width:g}; DAC's MSD has fixed widths")
        elif kind == "mpd":
            disc["periods"] = list(dc.mpd.periods)
            if (dc.mpd.channels, dc.mpd.max_channels) != (32, 1024):
                notes.append(
                    f"our MPD {dc.mpd.channels}..{dc.mpd.max_channels} channels; "
                    "DAC's is fixed at 32..1024"
                )
        elif kind == "mrd":
            disc["fft_sizes"] = list(dc.mrd.n_ffts)
            if dc.mrd.channels != 32:
                notes.append(f"our MRD {dc.mrd.channels} channels; DAC's is fixed at 32")
        else:
            notes.append(f"discriminator '{kind}' has no DAC counterpart; left out")
    return model, disc, notes


def run_pair(
    cfg, dac_python: str, model: dict, disc: dict, warmup: int, steps: int, threads: int
) -> tuple[dict, dict]:
    """Our Trainer's step and DAC's, alternating one step each on the same batches.

    Alternating makes both sides see the same machine load over the run (other jobs on a
    shared machine slow a step by 10x or more), so the ratio holds even when the absolute
    times drift. Returns (ours, dac); dac is {'skipped': reason} where it cannot run.
    """
    from telugu_codec.train.trainer import Trainer

    torch.set_num_threads(threads)
    lines: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        t = Trainer(
            cfg,
            Path(tmp) / "run",
            ROOT / "data/demo-te/train",
            val_data=ROOT / "data/demo-te/val",
            progress=False,
            tensorboard=False,
            log=lines.append,
        )
        it = t.feed.batches()
        batches = [next(it) for _ in range(warmup + steps)]  # (B, 1, T) each
        dac: dict = {}
        worker = None
        if not Path(dac_python).exists():
            dac = {"skipped": f"no DAC interpreter at {dac_python}"}
        else:
            spec = {"model": model, "discriminator": disc, "threads": threads, "seed": 0}
            try:
                worker = DacWorker(dac_python, spec, torch.stack(batches).numpy(), Path(tmp))
                dac.update(worker.info, times=[], loads=[])
            except RuntimeError as e:
                dac = {"skipped": str(e)}
        ours: dict = {
            "g_params": sum(p.numel() for p in t.codec.parameters()),
            "d_params": sum(p.numel() for p in t.disc.parameters()) if t.disc else 0,
            "times": [],
            "loads": [],
            "load_before": _load(),
        }
        try:
            for i, x in enumerate(batches):
                t0 = time.perf_counter()
                logs = t.train_step([x])
                dt = time.perf_counter() - t0
                t.state.step += 1  # as the loop does (adversarial terms stay on: warm-up 0)
                if i >= warmup:
                    ours["times"].append(dt)
                    ours["loads"].append(_load())
                if worker is not None:
                    try:
                        r = worker.step(i)
                    except RuntimeError as e:
                        worker, dac = None, {"skipped": str(e)}
                        continue
                    if i >= warmup:
                        dac["times"].append(r["dt"])
                        dac["loads"].append(r["load"])
                        dac["last_losses"] = r["losses"]
        finally:
            if worker is not None:
                worker.close()
        ours["last_losses"] = {k: v for k, v in logs.items() if k.startswith("loss/")}
        ours.update(_summary(ours["times"]))
        if "skipped" not in dac:
            dac.update(_summary(dac["times"]))
    return ours, dac


def _m(n: int) -> str:
    return f"{n / 1e6:.2f} M"


def table(rows: list[dict]) -> str:
    """Markdown table of the medians (s/step, steps/s, audio-seconds/s) of both sides."""
    lines = [
        "| config | batch x segment | our params G / D | DAC params G / D | our s/step "
        "| DAC s/step | ratio DAC / ours | our steps/s | DAC steps/s | our audio-s/s "
        "| DAC audio-s/s | load during |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        o, d = r["ours"], r["dac"]
        audio = r["batch"] * r["segment"]
        head = f"| {r['name']} | {r['batch']} x {r['segment']:g} s "
        head += f"| {_m(o['g_params'])} / {_m(o['d_params'])} "
        if "skipped" in d:
            lines.append(
                head + f"| DAC side skipped: {d['skipped']} | {o['median']:.2f} | - | - "
                f"| {1 / o['median']:.3f} | - | {audio / o['median']:.2f} | - "
                f"| {min(o['loads']):.1f}-{max(o['loads']):.1f} |"
            )
            continue
        loads = o["loads"] + d["loads"]
        lines.append(
            head + f"| {_m(d['g_params'])} / {_m(d['d_params'])} | {o['median']:.2f} "
            f"| {d['median']:.2f} | {d['median'] / o['median']:.1f} | {1 / o['median']:.3f} "
            f"| {1 / d['median']:.3f} | {audio / o['median']:.2f} | {audio / d['median']:.2f} "
            f"| {min(loads):.1f}-{max(loads):.1f} |"
        )
    return "\n".join(lines)


def _times(side: dict) -> str:
    return (
        f"s/step {' '.join(f'{t:.2f}' for t in side['times'])} (median {side['median']:.2f}, "
        f"mean {side['mean']:.2f}, min {side['min']:.2f}); 1-min load after each step "
        f"{' '.join(f'{v:.2f}' for v in side['loads'])}"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--dac-worker":
        dac_worker(sys.argv[2], sys.argv[3])
        return
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dac-python", default=str(ROOT / ".venv-dac/bin/python"))
    p.add_argument("--presets", default="tiny,seed", help=f"presets or {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default per preset)")
    p.add_argument("--warmup", type=int, default=None, help="untimed steps before (default 2-3)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--set", action="append", default=[], help="override for all presets")
    p.add_argument("--no-default-overrides", action="store_true", help="seed at its batch 16")
    p.add_argument("--json", default=None, help="also write every timing to this file")
    args = p.parse_args()

    import importlib.metadata as md

    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, ours: torch {torch.__version__} "
        f"(telugu-codec {md.version('telugu-codec')}), threads {args.threads}, "
        f"load average {' / '.join(f'{v:.2f}' for v in os.getloadavg())}",
        flush=True,
    )
    rows = []
    for name in [s.strip() for s in args.presets.split(",") if s.strip()]:
        cfg, overrides = resolve(name, not args.no_default_overrides, args.set)
        warmup = args.warmup if args.warmup is not None else DEFAULT_WARMUP.get(name, 2)
        steps = args.steps if args.steps is not None else DEFAULT_STEPS.get(name, 4)
        model, disc, notes = dac_spec(cfg)
        print(f"\n[{name}] overrides: {' '.join(overrides)}", flush=True)
        print(f"[{name}] DAC model: {json.dumps(model)}", flush=True)
        print(
            f"[{name}] DAC discriminator: rates {disc['rates']}, periods {disc['periods']}, "
            f"fft_sizes {disc['fft_sizes']}" + ("".join(f"; {n}" for n in notes)),
            flush=True,
        )
        ours, dac = run_pair(cfg, args.dac_python, model, disc, warmup, steps, args.threads)
        print(f"[{name}] ours, {warmup} warm-up + {steps} timed steps: {_times(ours)}", flush=True)
        if "skipped" in dac:
            print(f"[{name}] DAC side skipped: {dac['skipped']}", flush=True)
        else:
            print(
                f"[{name}] DAC (torch {dac['torch']}, descript-audio-codec {dac['dac']}, "
                f"audiotools {dac['audiotools']}, threads {dac['threads']}): {_times(dac)}",
                flush=True,
            )
            print(
                f"[{name}] ratio DAC / ours: median {dac['median'] / ours['median']:.2f}, "
                f"mean {dac['mean'] / ours['mean']:.2f}, min {dac['min'] / ours['min']:.2f}",
                flush=True,
            )
        rows.append(
            {
                "name": name,
                "batch": cfg.data.batch_size,
                "segment": cfg.data.segment_seconds,
                "overrides": overrides,
                "dac_model": model,
                "dac_discriminator": disc,
                "notes": notes,
                "ours": ours,
                "dac": dac,
            }
        )
    print(
        "\ns/step: median of the timed steps (ours and DAC's alternate, one step each); "
        "steps/s = 1 / that; audio-s/s = batch x segment / (s/step)\n"
    )
    print(table(rows))
    print(f"\nload average at the end: {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
