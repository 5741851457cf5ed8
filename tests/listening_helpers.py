"""A tiny report folder as `evaluate` leaves it, made from synthetic audio in a second.

`tiny_report(out)` writes ``audio/<file>/original.wav`` and one WAV per system (the codec at
two bitrates, Opus, Codec2: each a differently degraded copy), a spectrogram PNG per file, and
report.html from an `EvaluationReport` that holds made-up but plausible metrics.
"""

from __future__ import annotations

import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import soundfile as sf

from telugu_codec.evaluation.evaluate import _safe_name
from telugu_codec.evaluation.html_report import render_html
from telugu_codec.evaluation.intervals import mean_interval
from telugu_codec.evaluation.results import EvaluationReport, FileResult, SystemSummary

SR = 16000
# (system, family, setting, kbps, added noise level)
SYSTEMS = (
    ("codec-1.5k", "codec", "1.5 kbps (2 codebooks)", 1.5, 0.03),
    ("codec-3k", "codec", "3 kbps (4 codebooks)", 3.0, 0.01),
    ("opus-6k", "opus", "6 kbps VoIP", 6.0, 0.02),
    ("codec2-3200", "codec2", "3200 mode", 3.2, 0.05),
)
METRIC_KEYS = ["snr", "pesq_wb", "stoi"]


def voiced(seconds: float, seed: int = 0) -> np.ndarray:
    """(T,) float32 at `SR`: harmonics of a gliding 110-150 Hz pitch up to 7 kHz with a
    syllable-rate envelope (numpy only, so a report takes milliseconds, not seconds)."""
    t = np.arange(int(seconds * SR)) / SR
    phase = 2 * np.pi * np.cumsum(130 + 20 * np.sin(2 * np.pi * (0.5 + 0.1 * seed) * t)) / SR
    k = np.arange(1, 50)[:, None]
    x = (np.sin(k * phase[None]) / k).sum(axis=0)
    env = 0.5 * (1 + np.sin(2 * np.pi * 4 * t + seed)) ** 2
    return (0.3 * x * env / np.abs(x * env).max()).astype(np.float32)


def tiny_png(path: Path, width: int = 4, height: int = 3) -> Path:
    """A valid grey PNG (no plotting library needed)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    png = b"\x89PNG\r\n\x1a\n" + chunk(
        b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    )
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png)
    return path


def tiny_report(
    out: Path,
    names: tuple[str, ...] = ("utt0.wav", "utt1.wav"),
    seconds: tuple[float, ...] = (0.8, 1.3),
    skipped_reason: str | None = None,
) -> EvaluationReport:
    """Write a report folder for `names` (durations `seconds`) and return its report."""
    out = Path(out)
    rng = np.random.default_rng(0)
    per_file: list[FileResult] = []
    report = EvaluationReport(
        out_dir=out, checkpoint="runs/tiny/checkpoints/best", model_hash="0123abcd",
        data="data/tiny", sample_rate=SR, metric_keys=list(METRIC_KEYS), summaries=[],
        per_file=per_file, files_evaluated=len(names), skipped_files=[], failed_runs=[],
        skipped_systems={}, unavailable_metrics={},
        timings={"audio_seconds": float(sum(seconds))}, machine={"platform": "test"},
    )  # fmt: skip
    if skipped_reason is not None:
        from telugu_codec.evaluation.results import SkippedFile

        report.skipped_files.append(SkippedFile("data/bad.wav", skipped_reason))
    for i, (name, dur) in enumerate(zip(names, seconds)):
        folder = out / "audio" / _safe_name(name)
        folder.mkdir(parents=True, exist_ok=True)
        ref = voiced(dur, seed=i)
        sf.write(folder / "original.wav", ref, SR, subtype="FLOAT")
        for j, (system, family, _, kbps, noise) in enumerate(SYSTEMS):
            y = ref + noise * rng.standard_normal(ref.shape).astype(np.float32)
            sf.write(folder / f"{system}.wav", y, SR, subtype="FLOAT")
            metrics = {"snr": 20.0 - 100 * noise, "pesq_wb": 4.0 - 20 * noise, "stoi": 0.9 - j / 50}
            per_file.append(FileResult(name, system, family, kbps, kbps, kbps + 0.1, dur, metrics))
        report.paths[f"audio/{name}"] = folder
        report.paths[f"spectrograms/{name}"] = tiny_png(folder / "spectrograms.png")
    for system, family, setting, kbps, _ in SYSTEMS:
        rows = [r for r in per_file if r.system == system]
        report.summaries.append(
            SystemSummary(
                system, family, setting, kbps, mean_interval([r.kbps for r in rows]),
                mean_interval([r.file_kbps for r in rows]),
                {k: mean_interval([r.metrics[k] for r in rows]) for k in METRIC_KEYS},
            )
        )  # fmt: skip
    tiny_png(out / "curves.png")
    (out / "report.html").write_text(render_html(report), encoding="utf-8")
    return report


class _ReportParser(HTMLParser):
    """Collects report.html's players (per file section) and every src / href."""

    def __init__(self) -> None:
        super().__init__()
        self.players: dict[str, dict[str, str]] = {}
        self.cells: dict[tuple[str, str], list[str]] = {}
        self.links: list[str] = []
        self.tags: list[str] = []
        self._file: str | None = None
        self._system: str | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.tags.append(tag)
        self.links += [v for k, v in attrs if k in ("src", "href") and v is not None]
        if tag == "section" and "data-file" in a:
            self._file = a["data-file"]
            self.players[self._file] = {}
        elif tag == "tr" and self._file is not None and "data-system" in a:
            self._system = a["data-system"]
            self.cells[(self._file, self._system)] = []
        elif tag == "audio" and self._file is not None and self._system is not None:
            self.players[self._file][self._system] = a["src"]
        elif tag == "td" and self._system is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self._cell is not None and self._file and self._system:
            self.cells[(self._file, self._system)].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr":
            self._system = None
        elif tag == "section":
            self._file = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse_report_html(text: str) -> _ReportParser:
    """report.html parsed: ``.players[file][system] = src``, ``.cells[(file, system)]`` (the
    row's cell texts), ``.links`` (every src and href), ``.tags`` (every start tag)."""
    parser = _ReportParser()
    parser.feed(text)
    parser.close()
    return parser
