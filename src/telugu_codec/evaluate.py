"""Evaluation against real baselines, and reports of training runs.

`evaluate` runs a codec checkpoint at several bitrates plus the classical baselines (Opus,
Codec2; see `baselines.py`) over a folder or manifest of audio files and writes::

    out/report.json      everything below as data (config, machine, summaries, timings)
    out/report.md        system x bitrate x metric: mean ± 95 % t-interval half-width over files
    out/per_file.csv     one row per (file, system)
    out/audio/<file>/    original and decoded audio for the first few files
    out/spectrograms.png original vs every system for the first file
    out/curves.png       PESQ-WB, STOI and mel distance vs measured kbps, all systems

Bitrates are measured, never copied from the request. The codec rows go through the real
`.tcc` bytes (`to_bytes` -> `from_bytes` -> decode). The "kbps" column counts the compressed
payload of every system (the .tcc code bits, the Opus packets, the Codec2 frames), so the
systems compare on equal terms; "file kbps" adds each container's overhead (the .tcc 16-byte
header and ~7 bytes of packet framing per second, Ogg pages with OpusHead / OpusTags; Codec2 is
written headerless).

`report_run` turns a training run's metrics.jsonl into PNG plots and a report.md.

Both are also sub-commands: ``telugu-codec evaluate`` and ``telugu-codec report``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .cli import command
from .errors import AudioError, CodecError

DEFAULT_BITRATES_KBPS: tuple[float, ...] = (1.5, 3.0, 6.0)
CURVE_METRICS: tuple[str, ...] = ("pesq_wb", "stoi", "mel_distance")
REPORT_FILE = "report.json"

Notice = Callable[[str], None]


# ====================================================================== data classes
@dataclass
class SystemOutput:
    """What one system made of one file.

    Attributes:
        audio: (T,) float32 decoded audio, same rate and length as the input.
        bitrate_bps: payload bits / input seconds.
        file_bitrate_bps: whole-file bits (container included) / input seconds.
    """

    audio: np.ndarray
    bitrate_bps: float
    file_bitrate_bps: float


@dataclass
class System:
    """One table row: the codec at one bitrate, or one baseline setting.

    Attributes:
        name: unique row name ("codec-3k", "opus-12k", "codec2-700C").
        family: "codec", "opus" or "codec2" (one curve per family).
        setting: the requested setting as text ("3k (n_q=6)", "12k", "700C").
        nominal_kbps: the requested / nominal bitrate.
        run: ``run(wav (T,), sample_rate) -> SystemOutput``.
    """

    name: str
    family: str
    setting: str
    nominal_kbps: float
    run: Callable[[np.ndarray, int], SystemOutput]


@dataclass
class FileResult:
    """One (file, system) measurement: a per_file.csv row."""

    file: str
    system: str
    family: str
    nominal_kbps: float
    kbps: float
    file_kbps: float
    seconds: float
    metrics: dict[str, float | None]


@dataclass
class Interval:
    """Mean and 95 % t-interval over files; low / high are None with fewer than two values."""

    mean: float | None
    low: float | None
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        if self.low is None or self.high is None or self.mean is None:
            return None
        return self.high - self.mean


@dataclass
class SystemSummary:
    """A report.md row: one system summarised over files."""

    system: str
    family: str
    setting: str
    nominal_kbps: float
    kbps: Interval
    file_kbps: Interval
    metrics: dict[str, Interval]


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class EvaluationReport:
    """Everything `evaluate` measured and wrote.

    Attributes:
        out_dir: the report folder.
        checkpoint: the checkpoint evaluated; model_hash its hash.
        data: the data argument.
        sample_rate: the rate every signal was compared at (the codec's).
        metric_keys: the metric columns, in order.
        summaries: one per system that ran.
        per_file: one per (file, system).
        files_evaluated: files that were read and measured.
        skipped_files: unreadable inputs (each with the reason).
        failed_runs: (file, system) pairs where the system failed (a tool error, say).
        skipped_systems: system name -> why it did not run (a missing tool).
        unavailable_metrics: metric key -> why some values are missing.
        timings: seconds spent per stage ("load", "codec", "baselines", "metrics", "write",
            "total") and the audio seconds evaluated ("audio_seconds").
        paths: name -> written file.
        machine: platform, CPU count, torch threads, tool versions.
    """

    out_dir: Path
    checkpoint: str
    model_hash: str
    data: str
    sample_rate: int
    metric_keys: list[str]
    summaries: list[SystemSummary]
    per_file: list[FileResult]
    files_evaluated: int
    skipped_files: list[SkippedFile]
    failed_runs: list[SkippedFile]
    skipped_systems: dict[str, str]
    unavailable_metrics: dict[str, str]
    timings: dict[str, float]
    paths: dict[str, Path] = field(default_factory=dict)
    machine: dict[str, Any] = field(default_factory=dict)

    def summary(self, system: str) -> SystemSummary:
        """The summary row of `system` (KeyError if it did not run)."""
        for s in self.summaries:
            if s.system == system:
                return s
        raise KeyError(system)


# ====================================================================== statistics
# two-sided 95 % Student-t critical values t_{0.975, df} for df = 1..30
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip


def t_critical_975(df: int) -> float:
    """t_{0.975, df}: exact table to df 30, then the normal value plus a 1/df correction."""
    if df < 1:
        raise ValueError("df must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    return 1.95996 + 2.4 / df  # within 0.002 of the true quantile for df > 30


def mean_interval(values: Sequence[float | None]) -> Interval:
    """Mean and 95 % t-interval of the non-None values (None entries are unavailable).

    Args:
        values: one value per file.

    Returns:
        The interval over the n available values (mean None when n = 0).
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Interval(None, None, None, 0)
    mean = float(x.mean())
    if n < 2:
        return Interval(mean, None, None, 1)
    half = t_critical_975(n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


# ====================================================================== inputs
def list_inputs(data: str | Path) -> tuple[list[Path], Path]:
    """Audio files of a folder, manifest, corpus layout or single file (`data.discover`).

    Args:
        data: folder, manifest (.tsv/.csv/.jsonl) or audio file.

    Returns:
        (paths in a stable order, the folder that file names are shown relative to).

    Raises:
        CodecError: if `data` does not exist or holds no audio files.
    """
    from .data import discover

    corpus = discover(data)
    return [Path(item.path) for item in corpus.items], corpus.root


def _display_name(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


# ====================================================================== systems
class _PrefixEncoder:
    """Encodes each signal once, at the largest n_q evaluated; lower bitrates take the prefix.

    Residual VQ stage i quantizes what stages 0..i-1 left, so the first n_q codes do not
    depend on the later stages: the prefix is exactly what ``encode(n_q=n_q)`` returns
    (tests/test_evaluate.py checks it). This saves an encoder pass per extra bitrate.
    """

    def __init__(self, codec: Any, n_q_max: int):
        self.codec = codec
        self.n_q_max = n_q_max
        self._wav: np.ndarray | None = None  # holding the array keeps its identity unique
        self._rate = 0
        self._enc: Any = None

    def __call__(self, wav: np.ndarray, sample_rate: int, n_q: int) -> Any:
        import dataclasses

        if wav is not self._wav or sample_rate != self._rate:
            self._enc = self.codec.encode(wav, sample_rate, n_q=self.n_q_max)
            self._wav, self._rate = wav, sample_rate
        return dataclasses.replace(self._enc, codes=self._enc.codes[:n_q].copy())


def codec_systems(codec: Any, bitrates_kbps: Sequence[float] | None) -> list[System]:
    """One row per distinct codebook count for the requested bitrates.

    Args:
        codec: a loaded `Codec`.
        bitrates_kbps: requested bitrates; None picks those of 1.5 / 3 / 6 kbps the model
            can do (or all its codebooks if none fit).

    Raises:
        CodecError: for an explicit bitrate outside the model's range.
    """
    from .bitstream import from_bytes, payload_size, to_bytes

    if bitrates_kbps is None:
        n_qs = []
        for kbps in DEFAULT_BITRATES_KBPS:
            try:
                n_qs.append(codec.n_q_for_bitrate(kbps))
            except CodecError:
                continue
        n_qs = n_qs or [codec.max_n_q]
    else:
        n_qs = [codec.n_q_for_bitrate(k) for k in bitrates_kbps]
    n_qs = sorted(set(n_qs))

    encoder = _PrefixEncoder(codec, max(n_qs))

    def make_run(n_q: int) -> Callable[[np.ndarray, int], SystemOutput]:
        def run(wav: np.ndarray, sample_rate: int) -> SystemOutput:
            data = to_bytes(encoder(wav, sample_rate, n_q))  # what a file or network carries
            dec = from_bytes(data)
            audio = codec.decode(dec).numpy()
            seconds = dec.length / dec.sample_rate
            payload = payload_size(dec.n_q, dec.frames, dec.bits_per_code)
            return SystemOutput(audio, payload * 8 / seconds, len(data) * 8 / seconds)

        return run

    systems = []
    for n_q in n_qs:
        kbps = codec.bitrate(n_q) / 1000
        systems.append(
            System(f"codec-{kbps:g}k", "codec", f"{kbps:g}k (n_q={n_q})", kbps, make_run(n_q))
        )
    return systems


def _baseline_rows(families: Sequence[str] | str, notice: Notice) -> tuple[list[System], dict]:
    from .baselines import baseline_systems

    systems: list[System] = []
    skipped: dict[str, str] = {}
    for b in baseline_systems(families):
        reason = b.unavailable_reason()
        if reason:
            skipped[b.name] = reason
            continue

        def run(wav: np.ndarray, sr: int, b: Any = b) -> SystemOutput:
            out = b.run(wav, sr)
            seconds = wav.shape[0] / sr
            return SystemOutput(out.audio, out.bitrate_bps, out.file_bytes * 8 / seconds)

        systems.append(System(b.name, b.family, b.setting, b.nominal_bps / 1000, run))
    for fam in sorted({n.split("-")[0] for n in skipped}):
        reasons = sorted({r for n, r in skipped.items() if n.startswith(fam + "-")})
        notice(f"skipping the {fam} baseline: {'; '.join(reasons)}")
    return systems, skipped


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
    from .baselines import codec2_unavailable, opus_unavailable

    info["opus"] = opus_unavailable() or "ffmpeg + libopus"
    info["codec2"] = codec2_unavailable() or "c2enc / c2dec"
    return info


# ====================================================================== evaluate
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

    from .audio import load_audio, write_audio
    from .metrics import metric_keys, resolve_metrics, unavailable_reason
    from .model.codec import Codec

    t_start = time.perf_counter()
    out = Path(out_dir)

    def default_notice(msg: str) -> None:
        tqdm.write(f"note: {msg}", file=sys.stderr)

    say = notice or default_notice
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
    base_rows, skipped_systems = _baseline_rows(baselines, say)
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
    name, wav, decoded = examples[0]
    report.paths["spectrograms"] = plot_spectrograms(
        out / "spectrograms.png", wav, decoded, sr, title=name
    )
    report.paths["curves"] = plot_curves(out / "curves.png", report)
    report.paths["per_file"] = _write_csv(out / "per_file.csv", report)
    timings["write"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    timings["audio_seconds"] = audio_seconds
    report.paths["markdown"] = out / "report.md"
    report.paths["json"] = out / REPORT_FILE
    _write_text(out / "report.md", render_markdown(report))
    _write_text(out / REPORT_FILE, json.dumps(_jsonable(report), indent=2) + "\n")
    return report


def _measure(
    system: System, wav: np.ndarray, sr: int, names: Sequence[str], timings: dict[str, float]
) -> tuple[FileResult, np.ndarray] | str:
    """Run one system on one signal and score it; the error message if the system failed."""
    from .metrics import compute_metrics

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


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return _jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def _write_text(path: Path, text: str) -> None:
    from .checkpoint import atomic_write_text

    atomic_write_text(path, text)


def _write_csv(path: Path, report: EvaluationReport) -> Path:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    head = ["file", "system", "family", "nominal_kbps", "kbps", "file_kbps", "seconds"]
    w.writerow(head + report.metric_keys)
    for r in report.per_file:
        vals = [r.metrics.get(k) for k in report.metric_keys]
        w.writerow(
            [r.file, r.system, r.family, f"{r.nominal_kbps:g}", f"{r.kbps:.4f}"]
            + [f"{r.file_kbps:.4f}", f"{r.seconds:.3f}"]
            + ["" if v is None else f"{v:.6g}" for v in vals]
        )
    _write_text(path, buf.getvalue())
    return path


# ====================================================================== markdown
def _fmt(iv: Interval, digits: int = 2) -> str:
    if iv.mean is None:
        return "n/a"
    half = iv.half_width
    return f"{iv.mean:.{digits}f}" + (f" ± {half:.{digits}f}" if half is not None else "")


def _metric_label(key: str) -> str:
    from .metrics import METRICS

    if key in METRICS:
        return METRICS[key].label
    for name, spec in METRICS.items():
        if key.startswith(name + "_"):
            return f"{spec.label.split(' (')[0]} {key[len(name) + 1 :].upper()}"
    return key


def _direction(key: str) -> str:
    from .metrics import METRICS

    spec = METRICS.get(key) or next(
        (s for n, s in METRICS.items() if key.startswith(n + "_")), None
    )
    if spec is None or key == "amplitude_ratio":
        return "" if key != "amplitude_ratio" else " (→1)"
    return " ↑" if spec.higher_is_better else " ↓"


def render_markdown(report: EvaluationReport) -> str:
    """The report.md text: settings, the results table, notes on what was counted."""
    lines = [
        "# Codec evaluation",
        "",
        f"- checkpoint: `{report.checkpoint}` (model hash `{report.model_hash}`)",
        f"- data: `{report.data}`: {report.files_evaluated} files evaluated, "
        f"{len(report.skipped_files)} skipped, "
        f"{report.timings.get('audio_seconds', 0.0):.1f} s of audio at {report.sample_rate} Hz",
        f"- machine: {report.machine.get('platform', '?')}, "
        f"{report.machine.get('cpu_count', '?')} CPUs, torch {report.machine.get('torch', '?')} "
        f"({report.machine.get('torch_threads', '?')} threads)",
        "",
        "Values are the mean ± the half-width of the 95 % Student-t interval over files "
        "(no ± with one file). ↑ higher is better, ↓ lower is better.",
        "",
    ]
    head = ["system", "setting", "kbps", "file kbps", "n"]
    head += [_metric_label(k) + _direction(k) for k in report.metric_keys]
    lines.append("| " + " | ".join(head) + " |")
    lines.append("|" + "---|" * len(head))
    for s in report.summaries:
        row = [s.family, s.setting, _fmt(s.kbps), _fmt(s.file_kbps), str(s.kbps.n)]
        row += [_fmt(s.metrics[k]) for k in report.metric_keys]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "![metrics vs bitrate](curves.png)",
        "",
        "![spectrograms](spectrograms.png)",
        "",
        "## What is counted",
        "",
        "- **kbps** is measured from the bytes each encoder wrote, divided by the input "
        "duration: the packed codes of the `.tcc` bitstream (encoded, serialised, parsed back and "
        "decoded), the Opus audio packets (Ogg pages and the OpusHead/OpusTags headers "
        "excluded), the Codec2 frames (headerless; 700C packs 28 bits into 4 bytes per frame).",
        "- **file kbps** includes each container: the `.tcc` header and packet framing (16 "
        "bytes per file plus about 7 per second), the Ogg pages and Opus headers.",
        "- Codec2 output is shifted back by its measured delay (20-30 ms) before scoring; "
        "STOI does not search for a delay. PESQ-WB aligns by itself.",
        "- The mel distance is the mean |log10 mel| difference (80 bands, n_fft 1024, hop 256).",
    ]
    if report.skipped_systems:
        lines += ["", "## Systems not run", ""]
        lines += [f"- {n}: {r}" for n, r in report.skipped_systems.items()]
    if report.unavailable_metrics:
        lines += ["", "## Metrics with missing values (n/a or a smaller n)", ""]
        lines += [f"- {k}: {r}" for k, r in report.unavailable_metrics.items()]
    if report.skipped_files:
        lines += ["", f"## Skipped files ({len(report.skipped_files)})", ""]
        lines += [f"- `{s.path}`: {s.reason}" for s in report.skipped_files]
    if report.failed_runs:
        lines += ["", f"## Failed runs ({len(report.failed_runs)})", ""]
        lines += [f"- `{s.path}`: {s.reason}" for s in report.failed_runs]
    t = report.timings
    lines += [
        "",
        "## Time",
        "",
        f"{t.get('total', 0):.1f} s in all: load {t.get('load', 0):.1f} s, codec "
        f"{t.get('codec', 0):.1f} s, baselines {t.get('baselines', 0):.1f} s, metrics "
        f"{t.get('metrics', 0):.1f} s, plots and files {t.get('write', 0):.1f} s.",
        "",
        "Per-file values: [per_file.csv](per_file.csv); decoded audio: `audio/`.",
        "",
    ]
    return "\n".join(lines)


# ====================================================================== evaluation plots
def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=110, layout="constrained")


def plot_spectrograms(
    path: Path, original: np.ndarray, decoded: dict[str, np.ndarray], sample_rate: int, title: str
) -> Path:
    """Log-magnitude spectrograms of `original` and each decoded version, one row each.

    Args:
        path: PNG to write.
        original: (T,) reference.
        decoded: system name -> (T,) decoded audio.
        sample_rate: their rate.
        title: shown above the figure (the file name).
    """
    import torch

    from .spectral import stft_magnitude

    signals = {"original": original, **decoded}
    n_fft, hop = 512, 128
    specs = {}
    for name, x in signals.items():
        mag = stft_magnitude(torch.from_numpy(np.asarray(x, np.float32))[None], n_fft, hop)[0]
        specs[name] = (20 * torch.log10(mag.clamp_min(1e-5))).numpy()
    vmax = float(specs["original"].max())
    vmin = vmax - 80.0
    fig = _figure(9, 1.35 * len(specs) + 0.6)
    axes = fig.subplots(len(specs), 1, sharex=True, squeeze=False)[:, 0]
    extent = (0, len(original) / sample_rate, 0, sample_rate / 2000)
    image = None
    for ax, (name, spec) in zip(axes, specs.items()):
        image = ax.imshow(
            spec, origin="lower", aspect="auto", extent=extent, vmin=vmin, vmax=vmax, cmap="magma"
        )
        ax.set_ylabel("kHz")
        ax.text(
            0.005, 0.93, name, transform=ax.transAxes, color="white", fontsize=9, va="top",
            bbox={"facecolor": "black", "alpha": 0.5, "pad": 2, "edgecolor": "none"},
        )  # fmt: skip
    axes[-1].set_xlabel("time (s)")
    fig.suptitle(f"Spectrograms: {title}")
    if image is not None:
        fig.colorbar(image, ax=list(axes), label="magnitude (dB)", shrink=0.6)
    fig.savefig(path)
    return path


_FAMILY_STYLE = {
    "codec": ("tab:blue", "o", "this codec"),
    "opus": ("tab:orange", "s", "Opus (libopus, VoIP)"),
    "codec2": ("tab:green", "^", "Codec2"),
}


def plot_curves(path: Path, report: EvaluationReport, keys: Sequence[str] = CURVE_METRICS) -> Path:
    """Metric vs measured bitrate, one line per system family, 95 % intervals as error bars."""
    shown = [k for k in keys if k in report.metric_keys] or report.metric_keys[:3]
    fig = _figure(4.2 * len(shown), 3.8)
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    for ax, key in zip(axes, shown):
        any_value = False
        for family, (color, marker, label) in _FAMILY_STYLE.items():
            rows = [s for s in report.summaries if s.family == family]
            rows = [s for s in rows if s.metrics[key].mean is not None]
            if not rows:
                continue
            rows.sort(key=lambda s: s.kbps.mean or 0.0)
            x = [s.kbps.mean for s in rows]
            y = [s.metrics[key].mean for s in rows]
            err = [s.metrics[key].half_width or 0.0 for s in rows]
            ax.errorbar(x, y, yerr=err, color=color, marker=marker, capsize=3, label=label)
            for s, xi, yi in zip(rows, x, y):
                ax.annotate(
                    s.setting.split(" ")[0], (xi, yi), textcoords="offset points",
                    xytext=(4, 4), fontsize=7, color=color,
                )  # fmt: skip
            any_value = True
        if not any_value:
            ax.text(0.5, 0.5, "unavailable", ha="center", transform=ax.transAxes)
        ax.set_xscale("log")
        ax.set_xlabel("measured bitrate (kbps, payload)")
        ax.set_ylabel(_metric_label(key) + _direction(key))
        ax.grid(True, which="both", alpha=0.3)
        ticks = [0.5, 1, 1.5, 2, 3, 6, 9, 12, 24]
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xticks([], minor=True)
        ax.set_title(_metric_label(key))
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Quality vs bitrate ({report.files_evaluated} files, mean ± 95 % CI)")
    fig.savefig(path)
    return path


# ====================================================================== training-run report
@dataclass
class RunLog:
    """A parsed metrics.jsonl.

    Attributes:
        train / val / events: the records of each kind, in file order.
        bad_lines: lines that were not JSON objects (a line cut by a kill, say).
    """

    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    events: list[dict[str, Any]]
    bad_lines: int


def read_metrics_log(path: str | Path) -> RunLog:
    """Parse a trainer's metrics.jsonl; unparseable lines are counted, not fatal.

    Raises:
        CodecError: if the file is missing or has no records.
    """
    path = Path(path)
    if not path.is_file():
        raise CodecError(f"{path} not found; is this a training run folder?")
    train, val, events, bad = [], [], [], 0
    for line in path.read_text(errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if not isinstance(rec, dict) or "step" not in rec:
            bad += 1
            continue
        {"train": train, "val": val, "event": events}.get(rec.get("kind"), train).append(rec)
    if not (train or val or events):
        raise CodecError(f"{path} holds no metric records")
    return RunLog(train, val, events, bad)


def _series(records: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of `key` where present; "nan"/"inf" strings become NaN."""
    steps, values = [], []
    for r in records:
        if key not in r:
            continue
        v = r[key]
        try:
            v = float(v)
        except (TypeError, ValueError):
            continue
        steps.append(float(r["step"]))
        values.append(v if math.isfinite(v) else np.nan)
    return np.asarray(steps), np.asarray(values)


def _smooth(y: np.ndarray, n: int) -> np.ndarray:
    """Centered moving average ignoring NaNs (window n)."""
    if n <= 1 or y.size < n:
        return y
    ok = np.isfinite(y)
    k = np.ones(n)
    num = np.convolve(np.where(ok, y, 0.0), k, mode="same")
    den = np.convolve(ok.astype(float), k, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return num / den


_EVENT_COLORS = {
    "rollback": "tab:red",
    "warning": "tab:orange",
    "stop": "black",
    "nonfinite": "tab:purple",
    "resume": "tab:gray",
}


def _mark_events(ax: Any, events: list[dict[str, Any]], seen: set[str]) -> None:
    """Vertical lines at event steps; each event kind labelled once per axes."""
    for ev in events:
        kind = str(ev.get("event", "event"))
        label = f"event: {kind}" if kind not in seen else None
        seen.add(kind)
        ax.axvline(
            float(ev["step"]),
            color=_EVENT_COLORS.get(kind, "tab:brown"),
            linestyle="--",
            linewidth=1,
            alpha=0.8,
            label=label,
        )


def _keys(records: list[dict[str, Any]], prefix: str) -> list[str]:
    keys: list[str] = []
    for r in records:
        for k in r:
            if k.startswith(prefix) and k not in keys:
                keys.append(k)
    return keys


def _codebook_keys(records: list[dict[str, Any]], what: str) -> list[str]:
    keys = _keys(records, f"val/{what}/q")
    return sorted(keys, key=lambda k: int(k.rsplit("q", 1)[1]) if k[-1].isdigit() else 0)


def _plain_log_axis(ax: Any, ticks: Sequence[float] | None = None) -> None:
    """Log y axis labelled with plain numbers (0.5, 1, 2) instead of 10^x."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    ax.set_yscale("log")
    if ticks is not None:
        lo, hi = ax.get_ylim()
        ax.set_yticks([t for t in ticks if lo <= t <= hi])
        ax.set_ylim(lo, hi)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _finish(ax: Any, ylabel: str, title: str) -> None:
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)


def _legend_right(ax: Any, **kwargs: Any) -> None:
    """A legend outside the axes on the right, so it never hides data."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(
            fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0, **kwargs
        )


def _figure_legend(fig: Any, ax: Any, ncol: int = 6) -> None:
    """One legend for a multi-panel figure, below the panels, from the handles of `ax`."""
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=ncol, fontsize=8)


def _plot_losses(log: RunLog, path: Path) -> Path | None:
    keys = _keys(log.train, "loss/")
    if not keys:
        return None
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = _figure(4.2 * cols, 2.8 * rows + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).reshape(-1)
    window = max(1, len(log.train) // 50)
    for ax, key in zip(axes, keys):
        x, y = _series(log.train, key)
        ax.plot(x, y, color="tab:blue", alpha=0.3, linewidth=0.8, label="per logged step")
        if window > 1:
            ax.plot(x, _smooth(y, window), color="tab:blue", label=f"moving mean of {window}")
        _mark_events(ax, log.events, set())
        _finish(ax, "loss", key)
    for ax in axes[len(keys) :]:
        ax.set_visible(False)
    fig.suptitle("Training losses (gaps: non-finite values)")
    _figure_legend(fig, axes[0])
    fig.savefig(path)
    return path


def _plot_val(
    log: RunLog,
    path: Path,
    keys: Sequence[tuple[str, str]],
    ylabel: str,
    title: str,
    guard: tuple[float, float] | None = None,
    reference: float | None = None,
    log_ticks: Sequence[float] | None = None,
) -> Path | None:
    present = [(k, label) for k, label in keys if _series(log.val, k)[0].size]
    if not present:
        return None
    fig = _figure(8.5, 4.0)
    ax = fig.subplots()
    if guard is not None:
        ax.axhspan(guard[0], guard[1], color="tab:green", alpha=0.1, label="guard band")
    if reference is not None:
        ax.axhline(reference, color="tab:green", linewidth=1, label=f"{reference:g} (ideal)")
    for key, label in present:
        x, y = _series(log.val, key)
        ax.plot(x, y, marker="o", markersize=3, label=label)
    if guard is not None:  # validations the trainer flagged as unhealthy
        x, y = _series(log.val, present[0][0])
        steps = {float(r["step"]) for r in log.val if str(r.get("health", "healthy")) != "healthy"}
        flagged = [i for i, s in enumerate(x) if s in steps]
        if flagged:
            ax.plot(
                x[flagged], y[flagged], "x", color="tab:red", markersize=9, label="health warning"
            )
    _mark_events(ax, log.events, set())
    if log_ticks is not None:
        _plain_log_axis(ax, log_ticks)
    _finish(ax, ylabel, title)
    _legend_right(ax)
    fig.savefig(path)
    return path


def _plot_codebooks(log: RunLog, path: Path) -> Path | None:
    panels = [
        ("usage", "share of codes used (0-1)", "Codebook usage"),
        ("perplexity", "perplexity (codes)", "Codebook perplexity"),
        ("dead_codes", "dead codes (count)", "Dead codes"),
    ]
    panels = [p for p in panels if _codebook_keys(log.val, p[0])]
    if not panels:
        return None
    from matplotlib import colormaps

    fig = _figure(4.3 * len(panels) + 1.3, 3.8)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    cmap = colormaps["viridis"]
    for ax, (what, ylabel, title) in zip(axes, panels):
        keys = _codebook_keys(log.val, what)
        for i, key in enumerate(keys):
            x, y = _series(log.val, key)
            color = cmap(i / max(1, len(keys) - 1))
            ax.plot(x, y, color=color, marker=".", label=f"codebook {key.rsplit('/q', 1)[1]}")
        _mark_events(ax, log.events, set())
        _finish(ax, ylabel, title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=7)
    fig.suptitle("Residual VQ codebooks (validation; codebook 0 is the first stage)")
    fig.savefig(path)
    return path


def _plot_training(log: RunLog, path: Path) -> Path | None:
    panels = [
        (["grad_norm/g", "grad_norm/d"], "gradient norm (log scale)", "Gradient norms", True),
        (["lr/g", "lr/d"], "learning rate", "Learning rate", False),
        (["steps_per_s"], "steps / s", "Throughput", False),
    ]
    panels = [p for p in panels if any(_series(log.train, k)[0].size for k in p[0])]
    if not panels:
        return None
    fig = _figure(4.5 * len(panels), 3.9)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    window = max(1, len(log.train) // 50)
    for ax, (keys, ylabel, title, log_y) in zip(axes, panels):
        for key in keys:
            x, y = _series(log.train, key)
            if x.size:
                ax.plot(x, _smooth(y, window), label=key)
        _mark_events(ax, log.events, set())
        if log_y:
            _plain_log_axis(ax)
        _finish(ax, ylabel, title)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(f"Optimisation (moving mean of {window} logged steps)")
    fig.savefig(path)
    return path


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def report_run(run_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Plots and a report.md for a training run, from its metrics.jsonl.

    Writes into `out_dir` (default ``run_dir/report``): losses.png, quality.png (SNR and
    SI-SDR), amplitude.png (with the 0.5-2 guard band), mel.png, codebooks.png,
    discriminator.png, training.png (gradient norms, learning rate, throughput), whichever the
    log has data for, each with the guard events as dashed vertical lines, and report.md
    linking them with the last validation values and the event list.

    Args:
        run_dir: the training run folder (holding metrics.jsonl).
        out_dir: where to write; created if needed.

    Returns:
        The path of report.md.

    Raises:
        CodecError: if there is no metrics.jsonl or it has no records.
    """
    from .train.logging import METRICS_FILE

    run = Path(run_dir)
    if not run.is_dir():
        raise CodecError(f"run folder {run} does not exist")
    log = read_metrics_log(run / METRICS_FILE)
    out = Path(out_dir) if out_dir is not None else run / "report"
    out.mkdir(parents=True, exist_ok=True)

    plots: list[tuple[str, Path | None]] = [
        ("Losses", _plot_losses(log, out / "losses.png")),
        (
            "SNR and SI-SDR",
            _plot_val(
                log,
                out / "quality.png",
                [("val/snr", "SNR"), ("val/sisdr", "SI-SDR"), ("val/si_sdr", "SI-SDR")],
                "dB",
                "Validation SNR / SI-SDR",
            ),
        ),
        (
            "Amplitude ratio",
            _plot_val(
                log,
                out / "amplitude.png",
                [("val/amplitude_ratio", "RMS out / RMS in")],
                "RMS out / RMS in (log scale)",
                "Validation amplitude ratio (guard band 0.5-2)",
                guard=(0.5, 2.0),
                reference=1.0,
                log_ticks=(0.01, 0.03, 0.1, 0.25, 0.5, 1, 2, 4),
            ),
        ),
        (
            "Mel distance",
            _plot_val(
                log,
                out / "mel.png",
                [("val/mel_distance", "mel distance (mean |Δ log10 mel|)")],
                "mel distance",
                "Validation mel distance (lower is better)",
            ),
        ),
        (
            "PESQ",
            _plot_val(
                log, out / "pesq.png", [("val/pesq", "PESQ-WB")], "PESQ-WB (MOS)", "Validation PESQ"
            ),
        ),
        ("Codebooks", _plot_codebooks(log, out / "codebooks.png")),
        (
            "Discriminator",
            _plot_val(
                log,
                out / "discriminator.png",
                [("val/d_acc_real", "accuracy on real"), ("val/d_acc_fake", "accuracy on fake")],
                "accuracy",
                "Discriminator accuracy (validation)",
            ),
        ),
        ("Optimisation", _plot_training(log, out / "training.png")),
    ]

    last_train = log.train[-1] if log.train else {}
    lines = [
        f"# Training run report: `{run}`",
        "",
        f"- training records: {len(log.train)}, validation records: {len(log.val)}, "
        f"events: {len(log.events)}"
        + (f", unreadable lines skipped: {log.bad_lines}" if log.bad_lines else ""),
        f"- last step: {max((int(r['step']) for r in log.train + log.val), default=0)}",
    ]
    if "time" in last_train and log.train and "time" in log.train[0]:
        hours = (float(last_train["time"]) - float(log.train[0]["time"])) / 3600
        lines.append(f"- wall time covered by the log: {hours:.2f} h")
    if log.val:
        last = log.val[-1]
        lines += [
            "",
            f"## Last validation (step {last['step']})",
            "",
            "| metric | value |",
            "|---|---|",
        ]
        per_q = ("val/usage/q", "val/perplexity/q", "val/dead_codes/q")
        lines += [
            f"| {k} | {_fmt_value(v)} |"
            for k, v in last.items()
            if k not in ("kind", "step", "time") and not k.startswith(per_q)
        ]
        n_q = len(_codebook_keys([last], "usage") or _codebook_keys([last], "perplexity"))
        if n_q:
            lines += ["", "| codebook | usage | perplexity | dead codes |", "|---|---|---|---|"]
            for q in range(n_q):
                vals = [_fmt_value(last.get(f"{p}{q}", "")) for p in per_q]
                lines.append(f"| {q} | " + " | ".join(vals) + " |")
        x, y = _series(log.val, "val/mel_distance")
        if x.size and np.isfinite(y).any():
            i = int(np.nanargmin(y))
            lines += ["", f"Best validation mel distance: {y[i]:.4f} at step {int(x[i])}."]
    if log.events:
        lines += ["", "## Events", "", "| step | event | message |", "|---|---|---|"]
        for ev in log.events:
            msg = str(ev.get("message", "")).replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {ev['step']} | {ev.get('event', '')} | {msg} |")
    lines += [
        "",
        "## Plots",
        "",
        "Dashed vertical lines mark events (rollback, warning, stop, ...).",
    ]
    for title, p in plots:
        if p is not None:
            lines += ["", f"### {title}", "", f"![{title}]({p.name})"]
    path = out / "report.md"
    _write_text(path, "\n".join(lines) + "\n")
    return path


# ====================================================================== CLI
def _floats(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected numbers like 1.5,3,6, got {text!r}") from e


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="codec file, checkpoint or run folder")
    p.add_argument("--data", required=True, help="folder of audio files, manifest or one file")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument(
        "--bitrates",
        type=_floats,
        default=None,
        help="codec bitrates in kbps, e.g. 1.5,3,6 (default: those of 1.5/3/6 the model can do)",
    )
    p.add_argument(
        "--baselines", default="opus,codec2", help="comma-separated: opus, codec2, or none"
    )
    p.add_argument("--max-files", type=int, default=None, help="evaluate at most N files")
    p.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metric names, 'default' or 'all' (adds DNSMOS and ViSQOL)",
    )
    p.add_argument("--examples", type=int, default=2, help="write decoded audio for N files")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--force", action="store_true", help="overwrite an existing report")


@command("evaluate", "score a checkpoint against Opus and Codec2 on a set of files", _evaluate_args)
def cmd_evaluate(args: argparse.Namespace) -> int:
    report = evaluate(
        args.checkpoint,
        args.data,
        args.out,
        bitrates=args.bitrates,
        baselines=args.baselines,
        max_files=args.max_files,
        metrics=args.metrics,
        n_examples=args.examples,
        force=args.force,
        progress=not args.no_progress,
    )
    print(render_markdown(report).split("\n![")[0].rstrip())
    print(f"\nwrote {report.paths['markdown']} (and report.json, per_file.csv, PNGs, audio/)")
    return 0


def _report_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", help="training run folder holding metrics.jsonl")
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/report)")


@command("report", "plot a training run's metrics.jsonl into PNGs and report.md", _report_args)
def cmd_report(args: argparse.Namespace) -> int:
    path = report_run(args.run_dir, args.out)
    print(f"wrote {path}")
    return 0
