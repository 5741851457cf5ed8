"""The pure helpers of benchmarks/bench_train_quality.py and its btq_* modules: bitrate rows,
parsing, pairing, process trees."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def btq():
    """The driver, loaded by path; loading it puts benchmarks/ on sys.path for its modules."""
    spec = importlib.util.spec_from_file_location(
        "bench_train_quality", BENCH / "bench_train_quality.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def scoring(btq):
    return importlib.import_module("btq_score")


@pytest.fixture(scope="module")
def report(btq):
    return importlib.import_module("btq_report")


def test_codebook_choices_pitch_model_and_dac(scoring):
    # tiny-sf: 500 bit/s per codebook + a 400 bit/s pitch channel; DAC: 500 bit/s per codebook
    ours = scoring.codebook_choices(lambda n: 500 * n + 400, 6)
    dac = scoring.codebook_choices(lambda n: 500 * n, 6)
    assert ours == [("full", 6), ("<= 3 kbps", 5), ("<= 1.5 kbps", 2)]
    assert dac == [("full", 6), ("<= 3 kbps", 6), ("<= 1.5 kbps", 3)]
    assert scoring.distinct_counts(dac) == [6, 3]
    assert scoring.distinct_counts(ours) == [6, 5, 2]


def test_codebook_choices_skips_a_cap_below_one_codebook(scoring):
    assert scoring.codebook_choices(lambda n: 2000 * n, 4) == [("full", 4), ("<= 3 kbps", 1)]


def test_dac_bitrate(scoring):
    # 6 codebooks of 1024 at hop 320 and 16 kHz: 6 x 10 bits x 50 frames/s
    assert scoring.dac_bitrate_bps(6, 1024, 16000, 320) == pytest.approx(3000.0)
    assert scoring.dac_bitrate_bps(3, 1024, 16000, 320) == pytest.approx(1500.0)


def test_parse_train_summary_takes_the_last_line(scoring):
    text = (
        "speed: 0.61 s/step\nmax_steps at step 3: 0.1 min, 0.001 h of audio; checkpoint a\n"
        "time_budget at step 845: 10.2 min, 0.94 h of audio; checkpoint b\n"
    )
    assert scoring.parse_train_summary(text) == {
        "reason": "time_budget",
        "steps": 845,
        "minutes": 10.2,
    }
    assert scoring.parse_train_summary("no summary here") is None


def test_paired_differences_skips_unavailable(report):
    ours = {"a": 2.0, "b": None, "c": 1.5, "d": 1.0}
    theirs = {"a": 1.0, "b": 1.0, "c": None}
    assert report.paired_differences(ours, theirs) == [1.0]


def test_process_tree_helpers(btq):
    table = {1: (0, 0.0, "init"), 10: (1, 1.0, "a"), 11: (10, 2.0, "b"), 12: (11, 0.5, "c")}
    table[20] = (1, 3.0, "other")
    assert btq.descendants([10], table) == {10, 11, 12}
    assert btq.ancestors(12, table) == {12, 11, 10, 1}
    live = btq.proc_times(float(os.sysconf("SC_CLK_TCK")))
    if live:  # Linux: this process is there, under its parent
        assert live[os.getpid()][0] == os.getppid()
