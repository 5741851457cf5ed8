"""`telugu-codec demo`: train, guard and evaluate a Telugu codec end to end on a CPU.

What `make demo` runs. It
0. first scores the shipped pretrained `te-small` (`pretrained`) on the held-out sentences next
   to Opus and Codec2 (`preview_pretrained`, about a minute): what the codec does before any
   training;
1. trains the `tiny-sf` preset on the two-voice corpus to the preset's step budget, from
   scratch or, with `init_from="te-small"`, fine-tuning the shipped model
   (`train.max_steps`, sized for about 12 minutes on 2 CPU cores, so the result does not depend
   on how busy the machine is; `--minutes` is an optional cap that says when it cut the run
   short), with a progress bar, time estimate, validation, health lines and the collapse guard;
2. evaluates the best checkpoint on the held-out sentences at its bitrates against Opus and
   Codec2, prints the comparison table and a one-line verdict against the demo's target;
3. encodes and decodes one held-out sentence through a real `.tcc` file and prints its numbers
   next to Opus;
4. leaves a run folder with the checkpoint, the reports and the audio, and says where.

A second run finds the first: it resumes an unfinished training run, reuses a finished one, and
says how to start afresh (`--fresh`).
"""

from __future__ import annotations

import csv
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import CodecError

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO_ROOT / "data" / "demo-te"
TRAIN_SHARE = 0.8  # of --minutes; the rest is evaluation
# the demo's target (README): at <= 3 kbps, PESQ-WB >= 2.0 and above both of these on PESQ-WB
# and STOI
TARGET_PESQ, TARGET_KBPS = 2.0, 3.0
REFERENCES = ("opus-6k", "codec2-3200")
# on the real speaker's held-out sentences: above Codec2 3200 on both (Opus 6k is reported beside)
REAL_REFERENCES = ("codec2-3200",)
AMPLITUDE = (0.9, 1.1)  # the output/input RMS every validation should stay within
TWO_VOICE_DATA = REPO_ROOT / "data" / "te-2voice"  # made on the first demo (not bundled)
HELD_OUT_FILES = 30  # of the real speaker's held-out sentences, spread over the list
DEMO_PRESET = "tiny-sf"
PREVIEW_FILES = 10  # held-out files per set that the pretrained preview scores


@dataclass
class DemoResult:
    out_dir: Path
    run_dir: Path
    checkpoint: Path
    report_dir: Path
    training_report: Path
    sample: dict


def _split_dirs(data: Path) -> tuple[Path, Path]:
    train, val = data / "train", data / "val"
    if not (train.is_dir() and val.is_dir()):
        raise CodecError(
            f"{data} must hold train/ and val/ folders (the bundled corpus is data/demo-te; "
            "regenerate it with scripts/make_demo_corpus.py)"
        )
    return train, val


def _round_trip(checkpoint: Path, wav_path: Path, out_dir: Path, n_q: int) -> dict:
    """Encode one file to a real .tcc, decode it, and score it next to Opus 6 kbps."""
    from . import metrics as M
    from .audio import load_audio, write_audio
    from .bitstream import read_tcc, write_tcc
    from .evaluation.baselines import opus
    from .model.codec import Codec

    codec = Codec.load(checkpoint).remove_weight_norm()
    audio = load_audio(wav_path, codec.sample_rate)
    enc = codec.encode(audio.wav, audio.sample_rate, n_q=n_q)
    tcc = out_dir / "sample.tcc"
    size = write_tcc(tcc, enc)
    decoded = codec.decode(read_tcc(tcc)).numpy()
    write_audio(out_dir / "sample_original.wav", audio.wav, codec.sample_rate)
    write_audio(out_dir / "sample_decoded.wav", decoded, codec.sample_rate)
    seconds = len(audio.wav) / codec.sample_rate
    row = {
        "file": str(wav_path),
        "seconds": seconds,
        "tcc_bytes": size,
        "kbps": size * 8 / seconds / 1000,
        "nominal_kbps": enc.nominal_bitrate / 1000,
    }
    rows = {"telugu-codec": (decoded, row["kbps"])}
    try:
        res = opus(audio.wav, codec.sample_rate, 6.0)
        opus_wav = res.audio
        rows["opus 6k"] = (opus_wav, res.bitrate_bps / 1000)
        write_audio(out_dir / "sample_opus6k.wav", opus_wav, codec.sample_rate)
    except CodecError as e:
        row["opus_error"] = str(e)
    table = {}
    for name, (wav, kbps) in rows.items():
        table[name] = {
            "kbps": kbps,
            "snr": M.snr(wav, audio.wav),
            "amplitude_ratio": M.amplitude_ratio(wav, audio.wav),
            "pesq_wb": M.pesq_wb(wav, audio.wav, codec.sample_rate),
            "stoi": M.stoi(wav, audio.wav, codec.sample_rate),
        }
    row["systems"] = table
    return row


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def comparison_table(report) -> list[str]:
    """The evaluation summary as aligned text rows: system, kbps, PESQ-WB, STOI, mel, amplitude."""
    rows = [f"  {'system':<14} {'kbps':>6} {'PESQ-WB':>8} {'STOI':>6} {'mel dist':>9} {'amp':>5}"]
    for s in report.summaries:
        m = s.metrics

        def mean(key: str, m=m) -> float | None:
            return m[key].mean if key in m else None

        rows.append(
            f"  {s.system:<14} {_fmt(s.kbps.mean):>6} {_fmt(mean('pesq_wb')):>8} "
            f"{_fmt(mean('stoi')):>6} {_fmt(mean('mel_distance')):>9} "
            f"{_fmt(mean('amplitude_ratio')):>5}"
        )
    return rows


def _target_rows(report) -> list:
    """The codec's rows at the target's bitrate or below (<= TARGET_KBPS)."""
    return [
        s for s in report.summaries if s.family == "codec" and s.nominal_kbps <= TARGET_KBPS + 1e-9
    ]


def verdict(
    report,
    target_pesq: float | None = TARGET_PESQ,
    references: tuple[str, ...] = REFERENCES,
) -> str:
    """One line: does the codec at <= 3 kbps reach PESQ-WB `target_pesq` (None: no floor) and
    beat each of `references` on PESQ-WB and STOI (the demo's target), and by how much or how
    little."""
    by_name = {s.system: s for s in report.summaries}

    def score(s, key: str) -> float | None:
        return s.metrics[key].mean if key in s.metrics else None

    ours = [s for s in _target_rows(report) if score(s, "pesq_wb")]
    if not ours:
        return "verdict: no codec row at <= 3 kbps was measured"
    best = max(ours, key=lambda s: score(s, "pesq_wb"))
    pesq, stoi = score(best, "pesq_wb"), score(best, "stoi")
    refs = [by_name[r] for r in references if r in by_name]
    beaten, lost = [], []
    for r in refs:
        rp, rs = score(r, "pesq_wb"), score(r, "stoi")
        ok = rp is not None and rs is not None and pesq > rp and (stoi or 0) > rs
        (beaten if ok else lost).append(f"{r.system} ({_fmt(rp)} / {_fmt(rs)})")
    head = f"{best.system}: PESQ-WB {pesq:.2f}, STOI {_fmt(stoi)}"
    low = target_pesq is not None and pesq < target_pesq
    if not low and not lost and refs:
        return (
            f"verdict: target met. {head} at {best.nominal_kbps:g} kbps beats "
            f"{' and '.join(beaten)} (PESQ-WB / STOI)"
        )
    missing = []
    if low:
        missing.append(f"PESQ-WB below {target_pesq}")
    if lost:
        missing.append(f"not above {' and '.join(lost)} on both PESQ-WB and STOI")
    if not refs:
        missing.append("no Opus/Codec2 baseline could run")
    return f"verdict: target not met. {head}; {'; '.join(missing)}"


def bottleneck(report) -> str | None:
    """One line on what limits the best codec row at <= 3 kbps: its STFT magnitudes or its
    phase (`metrics.pesq_split`), or None when that was not measured."""
    keys = ("pesq_wb", "pesq_split_magnitude", "pesq_split_phase")
    rows = [s for s in _target_rows(report) if all(k in s.metrics for k in keys)]
    if not rows:
        return None
    best = max(rows, key=lambda s: s.metrics["pesq_wb"].mean or 0.0)
    mag = best.metrics["pesq_split_magnitude"].mean
    phase = best.metrics["pesq_split_phase"].mean
    if mag is None or phase is None:
        return None
    part = "its STFT magnitudes" if mag < phase else "its phase"
    return (
        f"what limits it: {part} (PESQ-WB {mag:.2f} with the codec's magnitudes and the "
        f"input's phase, {phase:.2f} with the input's magnitudes and the codec's phase, "
        f"{best.metrics['pesq_wb'].mean:.2f} as decoded)"
    )


@dataclass
class HeldOut:
    """One held-out set the demo scores: its name, files (folder or manifest) and target."""

    name: str
    data: Path
    target_pesq: float | None
    references: tuple[str, ...]


def voice_manifest(corpus: Path, voice: str, out: Path, max_files: int) -> Path | None:
    """A manifest of at most `max_files` of the corpus's `val` files in `voice`, spread evenly
    over the sentences (None when the corpus has none)."""
    manifest = corpus / "manifest.tsv"
    if not manifest.exists():
        return None
    with manifest.open(encoding="utf-8", newline="") as f:
        rows = [
            r
            for r in csv.DictReader(f, delimiter="\t")
            if r.get("split") == "val" and r.get("voice") == voice
        ]
    if not rows:
        return None
    step = max(1, len(rows) // max_files)
    rows = rows[::step][:max_files]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        f.write("path\tduration\tspeaker\n")
        for r in rows:
            f.write(f"{(corpus / r['path']).resolve()}\t{r['duration']}\t{r['speaker']}\n")
    return out


def _corpus(data: str | Path | None, out: Path, log) -> tuple[Path, Path, list[HeldOut]]:
    """(training folder, validation folder, held-out sets) for `data`; None = the two-voice
    corpus (generated on first use), with the bundled espeak-only corpus as the fallback."""
    if data is not None:
        train, val = _split_dirs(Path(data))
        return train, val, [HeldOut(Path(data).name, val, TARGET_PESQ, REFERENCES)]
    from .data.synth_corpus import ensure_corpus

    espeak_val = DEFAULT_DATA / "val"
    espeak = HeldOut("espeak", espeak_val, TARGET_PESQ, REFERENCES)
    try:
        corpus = ensure_corpus(TWO_VOICE_DATA, log=log)
    except CodecError as e:  # espeak-ng missing, or a sentence it cannot render
        log(f"note: {e}; training on the bundled espeak-only corpus {DEFAULT_DATA}")
        train, val = _split_dirs(DEFAULT_DATA)
        return train, val, [espeak]
    train, _ = _split_dirs(corpus)
    sets = [espeak]
    real = voice_manifest(corpus, "festival", out / "heldout-festival.tsv", HELD_OUT_FILES)
    if real is not None:
        sets.append(HeldOut("festival", real, None, REAL_REFERENCES))
    else:
        log(f"note: {corpus} has no Festival voice (festival not installed): espeak only")
    return train, espeak_val, sets


def run_demo(
    out: str | Path = "runs/demo",
    data: str | Path | None = None,
    minutes: float | None = None,
    config: str = DEMO_PRESET,
    max_steps: int | None = None,
    fresh: bool = False,
    max_eval_files: int | None = None,
    overrides: list[str] | None = None,
    progress: bool = True,
    init_from: str | None = None,
    pretrained: bool = True,
    log=print,
) -> DemoResult:
    """The whole demo; see the module docstring. Returns where everything went.

    Args:
        data: a corpus with train/ and val/ (scored on val/ alone); None: the two-voice corpus,
            made on first use, scored on the espeak and the Festival voice's held-out sentences.
        minutes: optional cap on the whole demo (training gets 80 % of it); None trains to the
            step budget.
        max_steps: the step budget (default: the preset's `train.max_steps`).
        init_from: fine-tune from this codec (a shipped name such as ``te-small``, a file or a
            run) instead of training from scratch.
        pretrained: score the shipped `te-small` first (`preview_pretrained`).
    """
    from .config import load_config
    from .evaluation.evaluate import evaluate
    from .evaluation.run_report import report_run
    from .train.checkpoints import latest_checkpoint
    from .train.trainer import Trainer

    out = Path(out)
    run_dir = out / "train"
    if fresh and out.exists():
        shutil.rmtree(out)
    t0 = time.time()
    n = min(PREVIEW_FILES, max_eval_files or PREVIEW_FILES)
    if pretrained:  # on the bundled (or given) held-out set, before the corpus is rendered
        first = HeldOut("espeak", DEFAULT_DATA / "val", TARGET_PESQ, REFERENCES)
        if data:
            first = HeldOut(Path(data).name, Path(data) / "val", TARGET_PESQ, REFERENCES)
        preview_pretrained([first], out / "pretrained", log, n)
    train_dir, val_dir, held_out = _corpus(data, out, log)
    if pretrained and len(held_out) > 1:
        preview_pretrained(held_out[1:], out / "pretrained", log, n)
    if init_from:
        overrides = [*(overrides or []), f"train.init_from={init_from}"]
    budget_s = None if minutes is None else minutes * 60 * TRAIN_SHARE
    status_file = out / "demo.json"
    finished = status_file.exists() and json.loads(status_file.read_text()).get("trained")
    if finished:
        log(
            f"reusing the finished training run in {run_dir} (pass --fresh to train again "
            "from scratch)"
        )
    else:
        resume = latest_checkpoint(run_dir) is not None
        if resume:
            log(f"resuming the unfinished run in {run_dir} (pass --fresh to start over)")
        cfg = load_config(config, overrides)
        steps = max_steps if max_steps is not None else cfg.train.max_steps
        log(
            f"demo: training `{cfg.name}` for {steps} steps (the demo's step budget) on "
            f"{train_dir}" + (f", at most {budget_s / 60:.1f} min (--minutes)" if budget_s else "")
        )
        trainer = Trainer(
            cfg,
            run_dir,
            train_dir,
            val_data=val_dir,
            resume=resume,
            time_budget_s=budget_s,
            progress=progress,
            log=log,
        )
        result = trainer.train(steps)
        log(
            f"training: {result.reason} at step {result.step} after "
            f"{result.wall_seconds / 60:.1f} min ({result.audio_hours * 60:.1f} min of audio)"
        )
        if result.reason == "time_budget" and result.step < steps:
            log(
                f"note: --minutes stopped training at step {result.step} of {steps}; the "
                "result below is worse than the demo gives with its full step budget"
            )
        if result.reason in ("guard", "nonfinite"):
            log("warning: the collapse guard stopped training; evaluating the last healthy model")
        out.mkdir(parents=True, exist_ok=True)
        status_file.write_text(
            json.dumps(
                {
                    "trained": result.reason != "interrupted",
                    "steps": result.step,
                    "step_budget": steps,
                    "train_minutes": result.wall_seconds / 60,
                    "reason": result.reason,
                }
            )
        )
    checkpoint = run_dir / "checkpoints" / "best"
    if not checkpoint.exists():
        checkpoint = latest_checkpoint(run_dir)
    training_report = report_run(run_dir)
    amplitude = _validation_amplitudes(run_dir)

    from .model.codec import Codec

    codec = Codec.load(checkpoint)
    bitrates = [k for k in (1.5, 3.0, 6.0) if _can_do(codec, k)]
    verdicts, reports = [], {}
    for i, h in enumerate(held_out):
        report_dir = out / "report" if i == 0 else out / f"report-{h.name}"
        report = evaluate(
            checkpoint,
            h.data,
            report_dir,
            bitrates=bitrates,
            baselines=("opus", "codec2"),
            max_files=max_eval_files,
            metrics=("default", "pesq_split"),
            force=True,
            progress=progress,
            notice=lambda m: log(f"note: {m}"),
        )
        reports[h.name] = report
        log("")
        log(f"held-out sentences, {h.name} ({report.files_evaluated} files, means):")
        for row in comparison_table(report):
            log(row)
        line = f"{h.name}: " + verdict(report, h.target_pesq, h.references)
        log(line)
        verdicts.append(line)
        limit = bottleneck(report)
        if limit:
            log(f"{h.name}: {limit}")
            verdicts.append(f"{h.name}: {limit}")
    if amplitude:
        lo, hi = min(amplitude), max(amplitude)
        ok = "within" if AMPLITUDE[0] <= lo and hi <= AMPLITUDE[1] else "NOT within"
        line = (
            f"amplitude ratio at the {len(amplitude)} validations: {lo:.2f}-{hi:.2f} "
            f"({ok} the target {AMPLITUDE[0]}-{AMPLITUDE[1]})"
        )
        log(line)
        verdicts.append(line)
    (out / "verdict.txt").write_text("\n".join(verdicts) + "\n")
    sample_file = sorted(p for p in val_dir.iterdir() if p.suffix in (".flac", ".wav"))[0]
    n_q = codec.n_q_for_bitrate(bitrates[len(bitrates) // 2])
    sample = _round_trip(checkpoint, sample_file, out, n_q)
    (out / "sample.json").write_text(json.dumps(sample, indent=2, default=str))
    log("")
    log(
        f"one held-out sentence ({sample_file.name}, {sample['seconds']:.1f} s) through a real "
        f".tcc file ({sample['tcc_bytes']} bytes):"
    )
    log(f"  {'system':<14} {'kbps':>6} {'SNR dB':>7} {'amp':>5} {'PESQ':>5} {'STOI':>5}")
    for name, m in sample["systems"].items():
        log(
            f"  {name:<14} {m['kbps']:6.2f} {_fmt(m['snr']):>7} {_fmt(m['amplitude_ratio']):>5} "
            f"{_fmt(m['pesq_wb']):>5} {_fmt(m['stoi']):>5}"
        )
    log("")
    first = reports[held_out[0].name]
    log(f"evaluation table: {first.paths.get('markdown', out / 'report' / 'report.md')}")
    log(f"listening report: {first.paths.get('html', out / 'report' / 'report.html')}")
    log(f"training report:  {training_report}")
    log(f"checkpoint:       {checkpoint}")
    log(f"audio:            {out}/sample_original.wav, sample_decoded.wav, sample_opus6k.wav")
    log(f"demo finished in {(time.time() - t0) / 60:.1f} min; everything is in {out}/")
    return DemoResult(out, run_dir, Path(checkpoint), out / "report", training_report, sample)


def preview_pretrained(
    held_out: list[HeldOut], out: Path, log, max_files: int = PREVIEW_FILES
) -> list[str]:
    """Score the shipped default model (`pretrained.DEFAULT_MODEL`) on the first `max_files`
    files of each held-out set next to Opus and Codec2; its verdict lines (none when this
    install ships no model, which is said)."""
    from .evaluation.evaluate import evaluate
    from .pretrained import DEFAULT_MODEL, registry

    if DEFAULT_MODEL not in registry():
        log(f"note: this install ships no pretrained {DEFAULT_MODEL}; skipping its preview")
        return []
    lines = []
    for h in held_out:
        t0 = time.time()
        report = evaluate(
            DEFAULT_MODEL,
            h.data,
            out / f"report-{h.name}",
            bitrates=[1.5, 3.0],
            baselines=("opus", "codec2"),
            max_files=max_files,
            force=True,
            progress=False,
            notice=lambda m: log(f"note: {m}"),
        )
        log("")
        log(
            f"the pretrained {DEFAULT_MODEL}, before any training: {h.name} held-out sentences "
            f"({report.files_evaluated} files, means, {time.time() - t0:.0f} s):"
        )
        for row in comparison_table(report):
            log(row)
        line = f"{DEFAULT_MODEL} on {h.name}: " + verdict(report, h.target_pesq, h.references)
        log(line)
        lines.append(line)
    (out / "verdict.txt").write_text("\n".join(lines) + "\n")
    return lines


def _can_do(codec, kbps: float) -> bool:
    """The codec has a whole number of codebooks at `kbps` or below (its side channel counted)."""
    try:
        codec.n_q_for_bitrate(kbps)
    except CodecError:
        return False
    return True


def _validation_amplitudes(run_dir: Path) -> list[float]:
    """The amplitude ratio (output / input RMS) of every validation in the run's metrics."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    values = []
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        if r.get("kind") == "val" and "val/amplitude_ratio" in r:
            values.append(float(r["val/amplitude_ratio"]))
    return values
