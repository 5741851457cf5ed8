"""benchmarks/gpu_check.py runs end to end on the CPU with --dry-run and writes every section."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_dry_run_writes_every_section(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.main([str(tmp_path), "--dry-run"])
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["machine"]["torch"] and saved["machine"]["device"] == "cpu"
    rows = saved["throughput"]
    assert [(r["preset"], r["precision"]) for r in rows] == [
        ("default", "fp32"),
        ("dac", "fp32"),
        ("seed", "bf16"),
    ]
    assert all("error" not in r and r["steps_per_s"] > 0 and r["finite"] for r in rows)
    assert saved["quality"]["steps"] > 0 and saved["quality"]["eval"]
    assert saved["bf16"]["equal"] is True and saved["bf16"]["codes"] > 0
    assert [r["batch"] for r in saved["inference"]] == [1, 2]
    md = (tmp_path / "gpu_check.md").read_text()
    assert "## Training throughput" in md and "## Quality after" in md
    assert res["skipped"] == []
