"""evaluation/run_report.py: a training run's metrics.jsonl as plots and report.md."""

from __future__ import annotations

import json
from pathlib import Path

from telugu_codec.cli import main
from telugu_codec.evaluation.run_log import read_metrics_log
from telugu_codec.evaluation.run_report import report_run


def _write_run(run: Path) -> None:
    recs = []
    for step in range(0, 301, 10):
        recs.append(
            {
                "kind": "train",
                "step": step,
                "time": 100.0 + step,
                "loss/g_total": 10.0 - step / 100,
                "loss/mel": "nan" if step == 150 else 1.0 - step / 1000,
                "loss/d": 2.0,
                "grad_norm/g": 3.0,
                "lr/g": 3e-4,
                "steps_per_s": 2.5,
            }
        )
        if step % 100 == 0 and step:
            val = {
                "kind": "val",
                "step": step,
                "val/snr": step / 100,
                "val/sisdr": -10 + step / 50,
                "val/amplitude_ratio": 0.4 if step == 100 else 1.0,
                "val/mel_distance": 1.0 - step / 1000,
                "health": "warning: amplitude 0.40" if step == 100 else "healthy",
            }
            for q in range(3):
                val |= {f"val/perplexity/q{q}": 50.0, f"val/usage/q{q}": 0.5}
                val[f"val/dead_codes/q{q}"] = 10
            recs.append(val)
    recs.append({"kind": "event", "step": 120, "event": "rollback", "message": "amp | low"})
    recs.append({"kind": "event", "step": 250, "event": "stop", "message": "budget"})
    run.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps(r) for r in recs] + ['{"kind": "train", "ste']  # torn by a kill
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_report_run_writes_plots_and_markdown(tmp_path):
    run = tmp_path / "run"
    _write_run(run)
    md_path = report_run(run)
    assert md_path == run / "report" / "report.md"
    names = ("losses", "quality", "amplitude", "mel", "codebooks", "training")
    for name in names:
        png = run / "report" / f"{name}.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG", name
    assert not (run / "report" / "pesq.png").exists()  # no val/pesq in this log
    md = md_path.read_text()
    for name in names:
        assert f"({name}.png)" in md
    assert "| 120 | rollback | amp \\| low |" in md
    assert "unreadable lines skipped: 1" in md
    assert "Best validation mel distance: 0.7000 at step 300" in md
    log = read_metrics_log(run / "metrics.jsonl")
    assert (len(log.train), len(log.val), len(log.events), log.bad_lines) == (31, 3, 2, 1)


def test_report_cli_and_errors(tmp_path, capsys):
    run = tmp_path / "run"
    _write_run(run)
    assert main(["report", str(run), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.md").is_file()
    assert main(["report", str(tmp_path / "missing")]) == 2
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text("\n")
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)
