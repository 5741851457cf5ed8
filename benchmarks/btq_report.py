"""The Markdown report of benchmarks/bench_train_quality.py, rendered from its run.json."""

from __future__ import annotations

from pathlib import Path

METRIC_NAMES = ("pesq_wb", "stoi", "mel_distance")


def paired_differences(
    ours: dict[str, float | None], theirs: dict[str, float | None]
) -> list[float]:
    """ours[f] - theirs[f] for every file f scored on both sides (None: unavailable)."""
    return [
        ours[f] - theirs[f]
        for f in sorted(ours)
        if ours[f] is not None and theirs.get(f) is not None
    ]


def _fmt(iv, digits: int = 3) -> str:
    if iv.mean is None:
        return "-"
    if iv.low is None:
        return f"{iv.mean:.{digits}f}"
    return f"{iv.mean:.{digits}f} ± {(iv.high - iv.low) / 2:.{digits}f}"


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
    """The Markdown report of one run (`run` as `btq_score.score` collects it)."""
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
