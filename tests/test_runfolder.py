"""train/runfolder.py: one trainer per run folder; a resume keeps the run's config.

Issue 14, cases 2 (no lock: two trainers into one folder), 3 (`--resume --config X` rewrote
config.yaml before checking anything) and 7 (`--resume` into nothing started a fresh run).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import soundfile as sf

from telugu_codec.cli import main
from telugu_codec.errors import TrainingError
from telugu_codec.train.runfolder import RunLock, resume_config

from .conftest import speechlike
from .test_trainer import TRAIN_OVERRIDES

HOLD = """
import sys, time
from telugu_codec.train.runfolder import RunLock
RunLock(sys.argv[1]).acquire()
print("held", flush=True)
time.sleep(600)
"""


@pytest.fixture
def data_dir(tmp_path):
    d = tmp_path / "speech"
    d.mkdir()
    for i in range(6):
        sf.write(d / f"utt{i}.wav", speechlike(1.0, seed=i), 16000)
    return d


def test_the_lock_names_its_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TrainingError, match=f"in use by another trainer \\(PID {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)  # a stale lock must not block the resume
        holder.wait()
    lock = RunLock(tmp_path)
    lock.acquire()
    assert json.loads((tmp_path / ".lock").read_text())["pid"] != holder.pid
    lock.release()


def _train_cli(data_dir, out, *extra):
    return [
        sys.executable,
        "-m",
        "telugu_codec",
        "train",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--no-progress",
        *extra,
        *TRAIN_OVERRIDES,
    ]


def test_a_second_trainer_into_the_same_folder_is_refused(tmp_path, data_dir):
    out = tmp_path / "run"
    first = subprocess.Popen(
        _train_cli(data_dir, out, "--max-steps", "100000"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 180
        while time.time() < deadline and not (out / "checkpoints" / "step_00000000").exists():
            time.sleep(0.2)
        second = subprocess.run(
            _train_cli(data_dir, out, "--resume", "--max-steps", "3"),
            capture_output=True,
            text=True,
        )
        assert second.returncode == 2, second.stderr
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and f"PID {first.pid}" in lines[0], second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    steps = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])["step"]
    third = subprocess.run(
        _train_cli(data_dir, out, "--resume", "--max-steps", str(steps + 1)),
        capture_output=True,
        text=True,
    )
    assert third.returncode == 0, third.stderr  # the killed trainer's lock is gone


def test_resume_keeps_the_config_and_records_overrides(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    base = ["train", "--data", str(data_dir), "--out", str(out), "--no-progress"]
    assert main([*base, "--max-steps", "1", *TRAIN_OVERRIDES]) == 0
    original = (out / "config.yaml").read_bytes()
    capsys.readouterr()

    # another preset, a bad value, an unknown key: refused, and config.yaml untouched
    for extra, match in (
        (["--config", "dac"], "differs from the config of the run"),
        (["train.val_every=0"], "train.val_every"),
        (["train.val_evry=5"], "val_evry"),
    ):
        assert main([*base, "--resume", "--max-steps", "2", *extra]) == 2
        err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
        assert len(err) == 1 and match in err[0], err
        assert (out / "config.yaml").read_bytes() == original
        assert not (out / "overrides.log").exists()

    # the run's own preset and overrides, given again, are not a change
    assert main([*base, "--resume", "--max-steps", "2", *TRAIN_OVERRIDES]) == 0
    assert (out / "config.yaml").read_bytes() == original
    # an explicit override is applied and recorded
    assert main([*base, "--resume", "--max-steps", "3", "train.log_every=2"]) == 0
    record = json.loads((out / "overrides.log").read_text())
    assert record["step"] == 2 and record["changes"] == {"train.log_every": [1, 2]}
    assert resume_config(out, None, []).train.log_every == 2


def test_resume_into_a_missing_folder_is_an_error(tmp_path, data_dir, capsys):
    out = tmp_path / "nowhere"
    code = main(["train", "--data", str(data_dir), "--out", str(out), "--resume"])
    assert code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "does not exist" in err[0] and "--resume" in err[0]
    assert not out.exists()
