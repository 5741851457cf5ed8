"""The trainer survives what a rented GPU does to it (issue 14).

A kill right after a guard rollback, SIGTERM (preemption), a corrupt newest checkpoint, a
training file that goes bad mid-run, a full disk while checkpointing, `--resume` into nothing,
and a validation set that measures nothing. Kills are simulated in-process by an exception
raised at the chosen moment: the run folder is then exactly what a SIGKILL would leave
(`benchmarks/fault_injection.py` does it with real signals).
"""

from __future__ import annotations

import errno
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from telugu_codec import checkpoint
from telugu_codec.errors import StorageError, TrainingError
from telugu_codec.train.checkpoints import latest_checkpoint
from telugu_codec.train.supervisor import Supervisor

from .conftest import speechlike
from .test_trainer import TRAIN_OVERRIDES, make_trainer, wait_for_train_records

# every validation collapses (amplitude 0.1): the guard rolls back until max_rollbacks
COLLAPSE = [
    "model.output_gain=0.1",
    "train.val_every=3",
    "train.ckpt_every=1",
    "train.keep_last=2",
    "train.guard.action=rollback",
    "train.guard.max_rollbacks=2",
]


class Killed(Exception):
    """Stands for SIGKILL: nothing after it runs, nothing more is written."""


@pytest.fixture
def data_dir(tmp_path) -> Path:
    d = tmp_path / "speech"
    d.mkdir()
    for i in range(8):
        sf.write(d / f"utt{i}.wav", speechlike(1.0, seed=i), 16000)
    return d


def codec_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(latest_checkpoint(run_dir) / "codec.safetensors"))


def _kill_at(monkeypatch, where: str) -> None:
    """Raise Killed when the first rollback is decided (`decided`) or just done (`done`)."""
    real = Supervisor.rollback

    def rollback(self):
        if where == "decided" and self.state.pending == "rollback":
            raise Killed
        ok = real(self)
        if where == "done":
            raise Killed
        return ok

    monkeypatch.setattr(Supervisor, "rollback", rollback)


@pytest.mark.parametrize("where", ["decided", "done"])
def test_a_kill_after_a_rollback_resumes_into_the_rollback(tmp_path, data_dir, monkeypatch, where):
    """Case 1: the rollback counter, the halved learning rates and the weights all survive."""
    ref = make_trainer(tmp_path / "ref", data_dir, *COLLAPSE).train(12)
    assert ref.reason == "guard"
    reference = codec_weights(tmp_path / "ref")

    run = tmp_path / "run"
    with monkeypatch.context() as m:
        _kill_at(m, where)
        with pytest.raises(Killed):
            make_trainer(run, data_dir, *COLLAPSE).train(12)
    t = make_trainer(run, data_dir, *COLLAPSE, resume=True)
    assert (t.state.step, t.state.rollbacks, t.state.lr_scale) == (0, 1, 0.5)
    assert (run / "checkpoints" / t.state.last_healthy).exists()
    result = t.train(12)
    assert (result.reason, result.step) == (ref.reason, ref.step)
    assert t.state.rollbacks == 2 and t.state.lr_scale == 0.25
    resumed = codec_weights(run)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)


def test_a_corrupt_newest_checkpoint_falls_back_with_a_warning(tmp_path, data_dir):
    """Case 6."""
    run = tmp_path / "run"
    make_trainer(run, data_dir, "train.ckpt_every=2", "train.keep_last=3").train(4)
    codec_file = run / "checkpoints/step_00000004/codec.safetensors"
    data = bytearray(codec_file.read_bytes())
    data[8 + int.from_bytes(data[:8], "little") + 64] ^= 0x10
    codec_file.write_bytes(bytes(data))
    said: list[str] = []
    extra = ("train.ckpt_every=2", "train.keep_last=3")
    t = make_trainer(run, data_dir, *extra, resume=True, log=said.append)
    assert t.state.step == 2
    warning = [s for s in said if s.startswith("warning: checkpoint")]
    assert len(warning) == 1 and "step_00000004" in warning[0] and "step_00000002" in warning[0]
    assert (run / "checkpoints/corrupt_step_00000004").exists()
    assert not (run / "checkpoints/step_00000004").exists()
    t.train(4)  # and training goes on past it
    assert latest_checkpoint(run).name == "step_00000004"
    # a state.json cut short is corrupt too
    (run / "checkpoints/step_00000004/state.json").write_text('{"step": 4, "trunc')
    said.clear()
    assert make_trainer(run, data_dir, *extra, resume=True, log=said.append).state.step == 2
    assert any("step_00000004" in s for s in said if s.startswith("warning: checkpoint"))


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path, data_dir):
    """Case 4: preemption (SIGTERM) saves where training stands, without validating."""
    out = tmp_path / "run"
    args = [sys.executable, "-m", "telugu_codec", "train", "--data", str(data_dir)]
    args += ["--out", str(out), "--no-progress", *TRAIN_OVERRIDES]
    proc = subprocess.Popen(
        [*args, "--max-steps", "100000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for_train_records(out, 3, timeout=180)
    proc.send_signal(signal.SIGTERM)
    sent = time.time()
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert time.time() - sent < 60
    assert "terminated" in stdout and "Traceback" not in stderr
    stopped = int(latest_checkpoint(out).name.split("_")[1])
    assert stopped >= 3  # saved where it stood (ckpt_every is 1000)
    assert '"val"' not in (out / "metrics.jsonl").read_text()  # no validation on the way out
    proc = subprocess.run(
        [*args, "--resume", "--max-steps", str(stopped + 1)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert f"step {stopped + 1}" in proc.stdout


def test_files_going_bad_mid_run_are_skipped_then_stop_training(tmp_path, data_dir):
    """Case 5: skipped, counted and logged with their path; a clear stop when too many fail."""
    said: list[str] = []
    t = make_trainer(tmp_path / "run", data_dir, "data.max_bad_fraction=0.3", log=said.append)
    assert t.train(2).reason == "max_steps"
    victims = sorted(t.train_ds.paths)[:2]
    Path(victims[0]).unlink()  # deleted
    data = Path(victims[1]).read_bytes()
    Path(victims[1]).write_bytes(data[: len(data) // 3])  # truncated
    result = t.train(2 + 12)  # four epochs of 3 batches: every file is read
    skipped = [s for s in said if s.startswith("data: skipping")]
    assert len(skipped) == 2 and all(any(v in s for s in skipped) for v in victims)
    assert result.reason == "max_steps"  # 2 of 8 files: within 0.3
    assert (tmp_path / "run/data_errors.jsonl").read_text().count("\n") == 2

    Path(sorted(t.train_ds.paths)[2]).unlink()
    result = t.train(30)
    assert result.reason == "data" and result.step < 30
    assert "data.max_bad_fraction" in result.events[-1]["message"]
    assert int(latest_checkpoint(tmp_path / "run").name.split("_")[1]) == result.step


def test_disk_full_while_checkpointing_is_one_clear_error(tmp_path, data_dir, monkeypatch):
    """Case 8: no temporary folder left, and the message names the last good checkpoint."""
    t = make_trainer(tmp_path / "run", data_dir, "train.ckpt_every=1")
    t.train(2)

    def full(tensors, filename, metadata=None):  # noqa: ARG001
        Path(filename).write_bytes(b"\0" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(StorageError, match="disk is full.*step_00000002"):
        t.train(3)
    assert not list((tmp_path / "run/checkpoints").glob(".tmp*"))
    assert latest_checkpoint(tmp_path / "run").name == "step_00000002"


def test_resume_into_nothing_is_an_error(tmp_path, data_dir):
    """Case 7: it used to start a fresh run with the default preset."""
    with pytest.raises(TrainingError, match="nothing to resume"):
        make_trainer(tmp_path / "missing", data_dir, resume=True)
    assert not (tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(TrainingError, match="nothing to resume"):
        make_trainer(tmp_path / "empty", data_dir, resume=True)


def test_no_validation_files_is_refused_with_the_guard_on(tmp_path, data_dir):
    """Case 10: every validation of nothing used to read 'SNR nan | healthy'."""
    with pytest.raises(TrainingError, match="no validation files"):
        make_trainer(tmp_path / "run", data_dir, "data.val_fraction=0")
    t = make_trainer(tmp_path / "ok", data_dir, "data.val_fraction=0", "train.guard.enabled=false")
    assert t.train(1).reason == "max_steps"
