"""Quality of the shipped pretrained codecs, per voice and bitrate, against Opus and Codec2.

    python benchmarks/bench_pretrained.py [--models te-small te-small-stream] [--files 30]

For each shipped model (`telugu_codec.pretrained`) and each held-out set:
- `espeak`: the espeak-ng held-out sentences (data/demo-te/val, the demo's target set);
- `festival`: the real speaker's (Festival NSK diphones) held-out sentences of the two-voice
  corpus (data/te-2voice, rendered by `make demo` or `telugu-codec data synth`),
`evaluate` runs the codec at 1.5 and 3 kbps next to Opus and Codec2 on the first `--files`
files, and the means with 95 % intervals go to `benchmarks/results_pretrained.json`. The model
card's results section in `docs/models.md` (between its markers) is rendered from that file by
`card_section`, so the card's numbers are the committed ones (tests/test_pretrained.py checks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

from telugu_codec.evaluation.report import replace_marked

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results_pretrained.json"
CARD = ROOT / "docs" / "models.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
TRAIN_START, TRAIN_END = "<!-- training:start -->", "<!-- training:end -->"
KEYS = ("pesq_wb", "stoi", "mel_distance", "amplitude_ratio")
# the targets: (set, our row, PESQ-WB floor or None, reference rows it must beat)
TARGETS = [
    ("espeak", "te-small codec-2.9k", 2.5, ()),
    ("festival", "te-small codec-2.9k", None, ("opus-6k",)),
    ("espeak", "te-small codec-1.4k", None, ("codec2-3200",)),
    ("festival", "te-small codec-1.4k", None, ("codec2-3200",)),
]


def _held_out(files: int, work: Path) -> dict[str, Path]:
    from telugu_codec.demo import DEFAULT_DATA, TWO_VOICE_DATA, voice_manifest

    sets = {"espeak": DEFAULT_DATA / "val"}
    festival = voice_manifest(TWO_VOICE_DATA, "festival", work / "festival.tsv", files)
    if festival is not None:
        sets["festival"] = festival
    return sets


def _interval(iv) -> dict:
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n}


def measure(models: list[str], files: int, work: Path, out: dict | None = None) -> dict:
    """Evaluate every model on every held-out set (the baselines once per set); JSON-ready.
    Results already in `out` (an earlier run, for other models) are kept.

    Returns:
        {"sets": {set: {"data", "files", "systems": {row: {family, nominal_kbps, kbps,
        pesq_wb, stoi, ...}}}}, "models": {name: {"model_hash"}}}; a model's rows are named
        "<model> <evaluate's row>", e.g. "te-small codec-2.9k".
    """
    from telugu_codec.evaluation.evaluate import evaluate
    from telugu_codec.pretrained import registry

    reg = registry()
    out = out or {"sets": {}, "models": {}}
    out["models"].update({m: {"model_hash": reg[m].model_hash} for m in models})
    for set_name, data in _held_out(files, work).items():
        rel = data.relative_to(ROOT) if data.is_relative_to(ROOT) else data
        entry = out["sets"].setdefault(set_name, {"data": str(rel), "systems": {}})
        has_baselines = any(r["family"] != "codec" for r in entry["systems"].values())
        for i, name in enumerate(models):
            t0 = time.perf_counter()
            report = evaluate(
                name,
                data,
                work / f"{name}-{set_name}",
                bitrates=[1.5, 3.0],
                baselines=("opus", "codec2") if i == 0 and not has_baselines else (),
                max_files=files,
                force=True,
                progress=False,
            )
            entry["files"] = report.files_evaluated
            for s in report.summaries:
                row = f"{name} {s.system}" if s.family == "codec" else s.system
                entry["systems"][row] = {
                    "family": s.family,
                    "nominal_kbps": s.nominal_kbps,
                    "kbps": s.kbps.mean,
                } | {k: _interval(s.metrics[k]) for k in KEYS if k in s.metrics}
            print(
                f"{name} on {set_name}: {report.files_evaluated} files, "
                f"{time.perf_counter() - t0:.0f} s",
                flush=True,
            )
    return out


def verdicts(results: dict) -> list[str]:
    """One line per target of the issue: met or not, with the numbers."""
    lines = []
    for set_name, system, floor, refs in TARGETS:
        try:
            rows = results["sets"][set_name]["systems"]
            ours = rows[system]
        except KeyError:
            lines.append(f"{system} on {set_name}: not measured")
            continue
        p, s = ours["pesq_wb"]["mean"], ours["stoi"]["mean"]
        misses = []
        if floor is not None and p < floor:
            misses.append(f"PESQ-WB below {floor}")
        for r in refs:
            rp, rs = rows[r]["pesq_wb"]["mean"], rows[r]["stoi"]["mean"]
            if not (p > rp and s > rs):
                misses.append(f"not above {r} ({rp:.2f} / {rs:.2f})")
        state = "met" if not misses else "NOT met: " + "; ".join(misses)
        lines.append(f"{system} on {set_name} (PESQ-WB {p:.2f}, STOI {s:.2f}): {state}")
    return lines


def _fmt(iv: dict | None, digits: int = 2) -> str:
    if not iv or iv.get("mean") is None:
        return "n/a"
    text = f"{iv['mean']:.{digits}f}"
    if iv.get("low") is not None:
        text += f" ± {iv['high'] - iv['mean']:.{digits}f}"
    return text


def card_section(results: dict) -> str:
    """The model card's results section (Markdown), rendered from `results` only."""
    lines = [START, ""]
    for run in results.get("runs", []):
        lines.append(
            f"- `{run['command']}`: {run['machine']}, {run['date']}; while it ran: {run['load']}."
        )
    lines += [
        "",
        "Means over the held-out files with 95 % intervals. te-small's `codec-2.9k` is 5 "
        "codebooks + the pitch channel (its 3 kbps setting), `codec-1.4k` 2 codebooks + pitch "
        "(1.5 kbps); te-small-stream has no pitch channel: `codec-3k` is 6 codebooks, "
        "`codec-1.5k` 3.",
    ]
    for set_name, entry in results["sets"].items():
        lines += [
            "",
            f"**{set_name}** held-out sentences ({entry.get('files', 0)} files, "
            f"`{entry['data']}`):",
            "",
            "| system | kbps | PESQ-WB | STOI | mel distance | amplitude |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for system, r in entry["systems"].items():
            lines.append(
                f"| {system} | {r['kbps']:.2f} | {_fmt(r.get('pesq_wb'))} | "
                f"{_fmt(r.get('stoi'))} | {_fmt(r.get('mel_distance'), 3)} | "
                f"{_fmt(r.get('amplitude_ratio'))} |"
            )
    lines += ["", "Targets (issue 23):", ""]
    lines += [f"- {v}" for v in results.get("verdicts", [])]
    lines += ["", END]
    return "\n".join(lines)


def training_section() -> str:
    """The card's training table, rendered from `models.json` (`scripts/publish_pretrained.py`
    wrote each model's training summary there)."""
    from telugu_codec.pretrained import registry

    lines = [
        TRAIN_START,
        "",
        "| model | steps | of them with the GAN | wall hours | CPU-hours | audio seen (h) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    commands = []
    for name, m in registry().items():
        t = m.training
        lines.append(
            f"| {name} | {t.get('steps')} | {t.get('gan_steps', 'n/a')} | "
            f"{t.get('wall_hours')} | {t.get('cpu_hours')} | {t.get('audio_hours_seen')} |"
        )
        commands.append(f"# {name}\n{t.get('command', '')}")
    lines += ["", "Reproduce (from the repository root, after `make venv` and the corpus):", ""]
    lines += ["```bash", *commands, "```", "", TRAIN_END]
    return "\n".join(lines)


def write_card(results: dict, card: Path = CARD) -> None:
    """Re-render the card's results (`card_section`) and training (`training_section`)."""
    replace_marked(card, {"results": card_section(results), "training": training_section()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["te-small", "te-small-stream"])
    ap.add_argument("--files", type=int, default=30)
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-pretrained")
    ap.add_argument("--load", default="", help="what else ran on the machine, for the record")
    ap.add_argument("--card-only", action="store_true", help="re-render docs/models.md")
    args = ap.parse_args()
    if args.card_only:
        write_card(json.loads(RESULTS.read_text()))
        return
    earlier = json.loads(RESULTS.read_text()) if RESULTS.exists() else None
    results = measure(args.models, args.files, args.work, earlier)
    results["verdicts"] = verdicts(results)
    results.setdefault("runs", [])
    results["runs"] = [r for r in results["runs"] if set(r["models"]) - set(args.models)]
    results["runs"].append(
        {
            "models": args.models,
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "load": args.load or "nothing else recorded",
            "command": "python benchmarks/bench_pretrained.py --models " + " ".join(args.models),
        }
    )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    write_card(results)
    print("\n".join(results["verdicts"]))


if __name__ == "__main__":
    main()
