"""`evaluate`: run our codec and the baselines over a set of files and write the report.

`evaluate` runs a codec checkpoint at several bitrates plus the classical baselines (Opus,
Codec2; see `baselines.py`) over a folder or manifest of audio files and writes::

    out/report.json      everything below as data (config, machine, summaries, timings)
    out/report.md        system x bitrate x metric: mean ± 95 % t-interval half-width over files
    out/report.html      the same to listen to: players per file and system, metrics, figures
    out/per_file.csv     one row per (file, system)
    out/audio/<file>/    original and decoded audio (and spectrograms) for the first few files
    out/spectrograms.png original vs every system for the first file
    out/curves.png       PESQ-WB, STOI and mel distance vs measured kbps, all systems

Bitrates are measured, never copied from the request. The codec rows go through the real
`.tcc` bytes (`to_bytes` -> `from_bytes` -> decode). The "kbps" column counts the compressed
payload of every system (the .tcc code bits, the Opus packets, the Codec2 frames), so the
systems compare on equal terms; "file kbps" adds each container's overhead (the .tcc 16-byte
header and ~7 bytes of packet framing per second, Ogg pages with OpusHead / OpusTags; Codec2 is
written headerless).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import load_audio, write_audio
from ..checkpoint import atomic_write_text, check_output_dir
from ..data import discover
from ..errors import AudioError, CodecError
from ..metrics import compute_metrics, metric_keys, resolve_metrics, unavailable_reason
from ..model.codec import Codec
from .html_report import render_html
from .intervals import mean_interval
from .plots import plot_curves, plot_spectrograms
from .report import render_markdown, to_jsonable, write_csv
from .results import EvaluationReport, FileResult, SkippedFile, SystemSummary
from .systems import Notice, System, baseline_rows, codec_systems

REPORT_FILE = "report.json"
HTML_FILE = "report.html"


def list_inputs(data: str | Path) -> tuple[list[Path], Path]:
    """Audio files of a folder, manifest, corpus layout or single file (`data.discover`).

    Args:
        data: folder, manifest (.tsv/.csv/.jsonl) or audio file.

    Returns:
        (paths in a stable order, the folder that file names are shown relative to).

    Raises:
        CodecError: if `data` does not exist or holds no audio files.
    """
    corpus = discover(data)
    return [Path(item.path) for item in corpus.items], corpus.root


def _display_name(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


def _machine_info() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }
    from .baselines import codec2_unavailable, opus_unavailable  # looked up at call time

    info["opus"] = opus_unavailable() or "ffmpeg + libopus"
    info["codec2"] = codec2_unavailable() or "c2enc / c2dec"
    return info


def evaluate(
    checkpoint: str | Path,
    data: str | Path,
    out_dir: str | Path,
    bitrates: Sequence[float] | None = None,
    baselines: Sequence[str] | str = ("opus", "codec2"),
    max_files: int | None = None,
    metrics: Sequence[str] | str | None = None,
    n_examples: int = 2,
    force: bool = False,
    progress: bool = True,
    notice: Notice | None = None,
) -> EvaluationReport:
    """Evaluate a checkpoint at several bitrates against the baselines and write the report.

    Args:
        checkpoint: codec file, checkpoint folder or run folder.
        data: folder, manifest or audio file.
        out_dir: report folder (created).
        bitrates: codec bitrates in kbps (None: whichever of 1.5 / 3 / 6 the model can do).
        baselines: baseline families ("opus", "codec2"); empty or "none" for none.
        max_files: evaluate at most this many files (the first in sorted order).
        metrics: metric names (see `metrics.METRICS`), "all", or None for the defaults.
        n_examples: write decoded audio for this many files.
        force: overwrite an existing report in `out_dir`.
        progress: show a progress bar over files on stderr.
        notice: receives one-line notices (skipped files, missing tools); default stderr.

    Returns:
        The report (also written to `out_dir`).

    Raises:
        CodecError: missing checkpoint or data, no readable audio, an existing report without
            `force`, an unknown metric or baseline, a bitrate the model cannot do.
    """
    from tqdm import tqdm

    t_start = time.perf_counter()
    out = Path(out_dir)

    def default_notice(msg: str) -> None:
        tqdm.write(f"note: {msg}", file=sys.stderr)

    say = notice or default_notice
    check_output_dir(out)  # before hours of work: a file in the way fails now
    if (out / REPORT_FILE).exists() and not force:
        raise CodecError(f"{out / REPORT_FILE} already exists; pass --force to overwrite it")
    try:
        names = resolve_metrics(metrics)
    except ValueError as e:
        raise CodecError(str(e)) from e
    if max_files is not None and max_files < 1:
        raise CodecError(f"--max-files must be at least 1, got {max_files}")
    keys = metric_keys(names)
    paths, base = list_inputs(data)
    if max_files is not None:
        paths = paths[:max_files]

    codec = Codec.load(checkpoint).remove_weight_norm()
    sr = codec.sample_rate
    systems = codec_systems(codec, bitrates)
    base_rows, skipped_systems = baseline_rows(baselines, say)
    systems += base_rows

    timings = dict.fromkeys(("load", "codec", "baselines", "metrics"), 0.0)
    per_file: list[FileResult] = []
    skipped: list[SkippedFile] = []
    failures: list[SkippedFile] = []
    unavailable: dict[str, str] = {}
    examples: list[tuple[str, np.ndarray, dict[str, np.ndarray]]] = []
    audio_seconds = 0.0
    n_ok = 0
    for path in tqdm(paths, desc="evaluate", unit="file", disable=not progress, file=sys.stderr):
        name = _display_name(path, base)
        t0 = time.perf_counter()
        try:
            audio = load_audio(path, sr)
        except AudioError as e:
            skipped.append(SkippedFile(str(path), str(e)))
            say(f"skipped {name}: {e}")
            continue
        timings["load"] += time.perf_counter() - t0
        wav = audio.wav
        seconds = wav.shape[0] / sr
        decoded: dict[str, np.ndarray] = {}
        for system in systems:
            result = _measure(system, wav, sr, names, timings)
            if isinstance(result, str):
                failures.append(SkippedFile(f"{path} ({system.name})", result))
                say(f"{system.name} failed on {name}: {result}")
                continue
            row, audio_out = result
            row.file = name
            per_file.append(row)
            decoded[system.name] = audio_out
            for k, v in row.metrics.items():
                if v is None and k not in unavailable:
                    reason = unavailable_reason(k) or unavailable_reason(k.split("_")[0])
                    unavailable[k] = reason or "measurement failed"
        n_ok += 1
        audio_seconds += seconds
        if len(examples) < max(n_examples, 1):
            examples.append((name, wav, decoded))
    if n_ok == 0:
        raise CodecError(f"none of the {len(paths)} files in {data} could be read")

    t0 = time.perf_counter()
    summaries = [_summarise(s, per_file, keys) for s in systems]
    summaries = [s for s in summaries if s is not None]
    report = EvaluationReport(
        out_dir=out,
        checkpoint=str(checkpoint),
        model_hash=codec.model_hash,
        data=str(data),
        sample_rate=sr,
        metric_keys=keys,
        summaries=summaries,
        per_file=per_file,
        files_evaluated=n_ok,
        skipped_files=skipped,
        failed_runs=failures,
        skipped_systems=skipped_systems,
        unavailable_metrics=unavailable,
        timings=timings,
        machine=_machine_info(),
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, wav, decoded in examples[:n_examples]:
        folder = out / "audio" / _safe_name(name)
        write_audio(folder / "original.wav", wav, sr)
        for system_name, y in decoded.items():
            write_audio(folder / f"{system_name}.wav", y, sr)
        report.paths[f"audio/{name}"] = folder
        report.paths[f"spectrograms/{name}"] = plot_spectrograms(
            folder / "spectrograms.png", wav, decoded, sr, title=name
        )
    name, wav, decoded = examples[0]
    if n_examples > 0:  # the first file's figure, already drawn
        shutil.copyfile(report.paths[f"spectrograms/{name}"], out / "spectrograms.png")
        report.paths["spectrograms"] = out / "spectrograms.png"
    else:
        report.paths["spectrograms"] = plot_spectrograms(
            out / "spectrograms.png", wav, decoded, sr, title=name
        )
    report.paths["curves"] = plot_curves(out / "curves.png", report)
    report.paths["per_file"] = write_csv(out / "per_file.csv", report)
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    timings["audio_seconds"] = audio_seconds
    report.paths["markdown"] = out / "report.md"
    report.paths["html"] = out / HTML_FILE
    report.paths["json"] = out / REPORT_FILE
    atomic_write_text(out / "report.md", render_markdown(report))
    atomic_write_text(out / HTML_FILE, render_html(report))
    atomic_write_text(out / REPORT_FILE, json.dumps(to_jsonable(report), indent=2) + "\n")
    return report


def _measure(
    system: System, wav: np.ndarray, sr: int, names: Sequence[str], timings: dict[str, float]
) -> tuple[FileResult, np.ndarray] | str:
    """Run one system on one signal and score it; the error message if the system failed."""
    t0 = time.perf_counter()
    stage = "codec" if system.family == "codec" else "baselines"
    try:
        result = system.run(wav, sr)
    except CodecError as e:
        return str(e)
    finally:
        timings[stage] += time.perf_counter() - t0
    t0 = time.perf_counter()
    values = compute_metrics(result.audio, wav, sr, names)
    timings["metrics"] += time.perf_counter() - t0
    row = FileResult(
        file="",
        system=system.name,
        family=system.family,
        nominal_kbps=system.nominal_kbps,
        kbps=result.bitrate_bps / 1000,
        file_kbps=result.file_bitrate_bps / 1000,
        seconds=wav.shape[0] / sr,
        metrics=values,
    )
    return row, result.audio


def _safe_name(name: str) -> str:
    stem = name.rsplit(".", 1)[0] if "." in Path(name).name else name
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in stem.replace("/", "__"))


def _summarise(system: System, rows: list[FileResult], keys: list[str]) -> SystemSummary | None:
    mine = [r for r in rows if r.system == system.name]
    if not mine:
        return None
    return SystemSummary(
        system=system.name,
        family=system.family,
        setting=system.setting,
        nominal_kbps=system.nominal_kbps,
        kbps=mean_interval([r.kbps for r in mine]),
        file_kbps=mean_interval([r.file_kbps for r in mine]),
        metrics={k: mean_interval([r.metrics.get(k) for r in mine]) for k in keys},
    )
