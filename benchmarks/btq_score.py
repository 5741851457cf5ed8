"""Scoring for benchmarks/bench_train_quality.py: both sides' decodes against the references.

Everything after the two trainings: DAC's decodes (in its interpreter, through
`btq_dac_worker`), our evaluation through the bitstream, the same metrics on both, run.json
and the report.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from btq_dac_worker import dac_command, speed_bench
from btq_report import METRIC_NAMES, write_results

KBPS_CAPS = (3.0, 1.5)  # besides the full codebook count, the largest count within each
SUMMARY_RE = re.compile(r"^(\w+) at step (\d+): ([\d.]+) min", re.MULTILINE)


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
        dac_command(args.dac_python, "--dac-decode", out / "dac" / "decode.json"),
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
    bts = speed_bench()
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
