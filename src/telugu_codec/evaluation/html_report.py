"""report.html: the evaluation as a page to listen to, opened straight from disk.

One self-contained file next to report.md: inline CSS and a few lines of inline JavaScript (one
player at a time), every link relative (``audio/<file>/<system>.wav``, ``curves.png``), nothing
fetched from the network. It holds the settings, the summary table and the curves, then one
section per example file: an ``<audio>`` player for the reference and for every system that ran
on it (the codec at each bitrate, Opus, Codec2) with that file's metrics beside it, and the
file's spectrograms. All text from the report (file names, paths, reasons) is escaped.
"""

from __future__ import annotations

import os
from html import escape
from pathlib import Path
from urllib.parse import quote

from .intervals import Interval
from .report import metric_direction, metric_label
from .results import EvaluationReport, FileResult

REFERENCE_NAME = "original"  # audio/<file>/original.wav: what every system is compared with

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 1.5em auto; max-width: 1200px;
       padding: 0 1em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f3f5; }
td.name, th.name { text-align: left; }
tr.reference td { background: #f5faf0; }
tr.family-opus td.name { color: #b35900; } tr.family-codec2 td.name { color: #2d7a2d; }
tr.family-codec td.name { color: #1f5fa8; }
audio { height: 32px; width: 260px; vertical-align: middle; }
img { max-width: 100%; border: 1px solid #eee; }
img.spectrograms { max-width: 820px; display: block; }
div.scroll { overflow-x: auto; }
ul.meta { padding-left: 1.2em; color: #444; } code { background: #f3f3f5; padding: 0 3px; }
section.file { margin-bottom: 2em; }
.note { color: #555; font-size: 13px; }
"""

# one player at a time: starting one pauses the others
_JS = """
document.addEventListener('play', function (e) {
  document.querySelectorAll('audio').forEach(function (a) { if (a !== e.target) a.pause(); });
}, true);
"""


def _url(path: str) -> str:
    """A relative URL for the report-relative POSIX path `path`, escaped for an attribute."""
    return escape(quote(path, safe="/"), quote=True)


def _cell(iv: Interval | float | None, digits: int = 2) -> str:
    if isinstance(iv, Interval):
        if iv.mean is None:
            return "n/a"
        half = iv.half_width
        return f"{iv.mean:.{digits}f}" + (f" ± {half:.{digits}f}" if half is not None else "")
    return "n/a" if iv is None else f"{iv:.{digits}f}"


def _relative(path: Path, out_dir: Path) -> str:
    """`path` relative to the report folder, as a POSIX path."""
    return Path(os.path.relpath(Path(path), Path(out_dir))).as_posix()


def _summary_table(report: EvaluationReport) -> list[str]:
    head = ["system", "setting", "kbps", "file kbps", "n"]
    head += [metric_label(k) + metric_direction(k) for k in report.metric_keys]
    lines = ['<div class="scroll"><table class="summary"><thead><tr>']
    lines += [
        ('<th class="name">' if i < 2 else "<th>") + f"{escape(h)}</th>" for i, h in enumerate(head)
    ]
    lines.append("</tr></thead><tbody>")
    for s in report.summaries:
        cells = [_cell(s.kbps), _cell(s.file_kbps), str(s.kbps.n)]
        cells += [_cell(s.metrics[k]) for k in report.metric_keys]
        lines.append(
            f'<tr class="family-{escape(s.family, quote=True)}">'
            f'<td class="name">{escape(s.system)}</td><td class="name">{escape(s.setting)}</td>'
            + "".join(f"<td>{escape(c)}</td>" for c in cells)
            + "</tr>"
        )
    lines.append("</tbody></table></div>")
    return lines


def _file_section(
    report: EvaluationReport, index: int, name: str, folder: str, rows: list[FileResult]
) -> list[str]:
    """One example file: a player per system with its metrics, then its spectrograms."""
    keys = report.metric_keys
    lines = [
        f'<section class="file" id="file-{index}" data-file="{escape(name, quote=True)}">',
        f"<h3>{escape(name)}</h3>",
        '<div class="scroll"><table class="listen"><thead><tr><th class="name">system</th>'
        '<th class="name">listen</th><th>kbps</th>'
        + "".join(f"<th>{escape(metric_label(k) + metric_direction(k))}</th>" for k in keys)
        + "</tr></thead><tbody>",
    ]
    players = [(REFERENCE_NAME, "reference", "original (reference)", None)]
    players += [(r.system, r.family, r.system, r) for r in rows]
    for system, family, label, row in players:
        src = _url(f"{folder}/{system}.wav")
        metrics = [""] * (1 + len(keys)) if row is None else [_cell(row.kbps)]
        if row is not None:
            metrics += [_cell(row.metrics.get(k)) for k in keys]
        css = "reference" if row is None else f"family-{family}"
        lines.append(
            f'<tr class="{escape(css, quote=True)}" data-system="{escape(system, quote=True)}">'
            f'<td class="name">{escape(label)}</td>'
            f'<td class="name"><audio controls preload="metadata" src="{src}"></audio></td>'
            + "".join(f"<td>{escape(m)}</td>" for m in metrics)
            + "</tr>"
        )
    lines.append("</tbody></table></div>")
    spec = report.paths.get(f"spectrograms/{name}")
    if spec is not None:
        rel = _relative(spec, report.out_dir)
        alt = escape(f"spectrograms of {name}", quote=True)
        lines.append(f'<img class="spectrograms" src="{_url(rel)}" alt="{alt}">')
    lines.append("</section>")
    return lines


def render_html(report: EvaluationReport) -> str:
    """The report.html text (see the module docstring).

    Args:
        report: the evaluation; ``report.paths["audio/<file>"]`` names each example file's audio
            folder (holding ``original.wav`` and ``<system>.wav``), and
            ``report.paths["spectrograms/<file>"]`` its spectrogram PNG.

    Returns:
        A complete HTML document whose links are relative to ``report.out_dir``.
    """
    m = report.machine
    title = f"Codec evaluation: {Path(report.checkpoint).name}"
    lines = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_CSS}</style>",
        f"<script>{_JS}</script>",
        "</head><body>",
        "<h1>Codec evaluation</h1>",
        '<ul class="meta">',
        f"<li>checkpoint: <code>{escape(report.checkpoint)}</code> "
        f"(model hash <code>{escape(report.model_hash)}</code>)</li>",
        f"<li>data: <code>{escape(report.data)}</code>: {report.files_evaluated} files "
        f"evaluated, {len(report.skipped_files)} skipped, "
        f"{report.timings.get('audio_seconds', 0.0):.1f} s of audio at {report.sample_rate} Hz"
        "</li>",
        f"<li>machine: {escape(str(m.get('platform', '?')))}, "
        f"{escape(str(m.get('cpu_count', '?')))} CPUs, torch {escape(str(m.get('torch', '?')))}"
        "</li>",
        "</ul>",
        "<h2>Summary</h2>",
        '<p class="note">Mean ± the half-width of the 95 % Student-t interval over files '
        "(no ± with one file). ↑ higher is better, ↓ lower is better. kbps counts the "
        "compressed payload; file kbps adds each container.</p>",
        *_summary_table(report),
        "<h2>Quality vs bitrate</h2>",
        '<img src="curves.png" alt="metrics vs bitrate">',
    ]
    examples = [(k[len("audio/") :], v) for k, v in report.paths.items() if k.startswith("audio/")]
    if examples:
        lines += [
            "<h2>Listen</h2>",
            '<p class="note">Each file as the reference and as every system decoded it, with '
            "that file's metrics. For a blind test of these files run "
            f"<code>telugu-codec listen {escape(str(report.out_dir))}</code>.</p>",
        ]
        for i, (name, folder) in enumerate(examples):
            rows = [r for r in report.per_file if r.file == name]
            lines += _file_section(report, i, name, _relative(folder, report.out_dir), rows)
    notes = [f"{n}: {r}" for n, r in report.skipped_systems.items()]
    notes += [f"metric {k}: {r}" for k, r in report.unavailable_metrics.items()]
    notes += [f"skipped {s.path}: {s.reason}" for s in report.skipped_files]
    notes += [f"failed {s.path}: {s.reason}" for s in report.failed_runs]
    if notes:
        lines += ["<h2>Notes</h2>", "<ul>", *[f"<li>{escape(n)}</li>" for n in notes], "</ul>"]
    lines += [
        '<p class="note">Also here: <a href="report.md">report.md</a>, '
        '<a href="per_file.csv">per_file.csv</a>, <a href="report.json">report.json</a>.</p>',
        "</body></html>",
        "",
    ]
    return "\n".join(lines)
