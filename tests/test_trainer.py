"""Trainer: exact resume, learning, guard actions, non-finite handling, bad invocations."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from telugu_codec.config import load_config
from telugu_codec.errors import TrainingError
from telugu_codec.train.trainer import Trainer

from .conftest import TINY_OVERRIDES

TRAIN_OVERRIDES = TINY_OVERRIDES + [
    "discriminator.kinds=[mpd]",
    "discriminator.mpd.periods=[2,3]",
    "discriminator.mpd.channels=4",
    "discriminator.mpd.max_channels=16",
    "loss.mel=15",
    "loss.mel_loss.n_ffts=[64,256]",
    "loss.mel_loss.n_mels=[16,32]",
    "data.segment_seconds=0.25",
    "data.batch_size=2",
    "data.val_max_files=2",
    "data.val_max_seconds=0.5",
    "train.val_every=1000",
    "train.ckpt_every=1000",
    "train.log_every=1",
    "train.g_optim.lr=1e-3",
    "train.d_optim.lr=1e-3",
]


def make_trainer(run_dir, data_dir, *extra, resume=False, log=None, **kw) -> Trainer:
    """A quiet Trainer of the tiny test codec on `data_dir`, with `extra` overrides."""
    cfg = load_config(None, TRAIN_OVERRIDES + list(extra))
    return Trainer(
        cfg,
        run_dir,
        data_dir,
        resume=resume,
        progress=False,
        tensorboard=False,
        log=log or (lambda _m: None),
        **kw,
    )


def wait_for_train_records(run_dir: Path, n: int, timeout: float) -> None:
    """Wait until a training process has logged `n` training steps in RUN/metrics.jsonl (or
    `timeout` seconds have passed: the caller's assertions then say what is missing)."""
    metrics = run_dir / "metrics.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if metrics.exists() and metrics.read_text().count('"train"') >= n:
            return
        time.sleep(0.2)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


# k-means after 2 steps, re-seeding dead codes on every step: the quantizer's buffers and
# counters take part in the resume
QUANTIZER_ACTIVE = (
    "model.quantizer.init_vectors=0.5",
    "model.quantizer.dead_code_window=0.2",
    "model.quantizer.replace_every=1",
    "train.ckpt_every=2",
)


def test_resume_gives_identical_weights(tmp_path, data_dir):
    a = make_trainer(tmp_path / "a", data_dir, *QUANTIZER_ACTIVE)
    a.train(4)
    b = make_trainer(tmp_path / "b", data_dir, *QUANTIZER_ACTIVE)
    b.train(2)
    del b
    b = make_trainer(tmp_path / "b", data_dir, *QUANTIZER_ACTIVE, resume=True)
    assert b.state.step == 2
    b.train(4)
    logged = [json.loads(line) for line in (tmp_path / "a/metrics.jsonl").open()]
    replaced = sum(r.get("quantizer/replaced/q0", 0) for r in logged if r["kind"] == "train")
    assert replaced > 0  # dead codes really were re-seeded (after the k-means init)
    for name in (
        "codec.safetensors",
        "discriminator.safetensors",
        "optimizers.safetensors",
        "quantizer.safetensors",
    ):
        wa = weights(tmp_path / "a/checkpoints/step_00000004" / name)
        wb = weights(tmp_path / "b/checkpoints/step_00000004" / name)
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), f"{name}:{k}"
    # and the weights really changed during training
    w0 = weights(tmp_path / "a/checkpoints/step_00000000/codec.safetensors")
    w4 = weights(tmp_path / "a/checkpoints/step_00000004/codec.safetensors")
    assert any(not torch.equal(w0[k], w4[k]) for k in w0)


def test_training_lowers_the_loss_on_a_fixed_batch(tmp_path, data_dir):
    t = make_trainer(tmp_path / "r", data_dir, "loss.adv=0", "loss.fm=0")
    x = next(iter(t.feed.batches()))
    first = t.train_step([x])["loss/mel"]
    for _ in range(15):
        last = t.train_step([x])["loss/mel"]
    assert last < 0.8 * first


def test_amplitude_collapse_is_caught_at_first_validation_and_stops(tmp_path, data_dir):
    t = make_trainer(
        tmp_path / "r",
        data_dir,
        "model.output_gain=0.1",
        "train.val_every=2",
        "train.guard.action=stop",
    )
    result = t.train(20)
    assert result.reason == "guard"
    assert result.step == 2
    assert "amplitude" in result.last_validation["health"]
    assert any(e.get("event") == "stop" for e in result.events)


def test_rollback_returns_to_last_healthy_checkpoint_with_lower_lr(tmp_path, data_dir):
    t = make_trainer(
        tmp_path / "r",
        data_dir,
        "model.output_gain=0.1",
        "train.val_every=2",
        "train.guard.action=rollback",
        "train.guard.max_rollbacks=2",
    )
    result = t.train(20)
    rollbacks = [e for e in result.events if e.get("event") == "rollback"]
    assert len(rollbacks) == 2
    assert t.state.lr_scale == pytest.approx(0.25)
    assert result.reason == "guard"  # still collapsed after the allowed rollbacks


def test_warn_action_keeps_training(tmp_path, data_dir):
    t = make_trainer(
        tmp_path / "r",
        data_dir,
        "model.output_gain=0.1",
        "train.val_every=2",
        "train.guard.action=warn",
    )
    result = t.train(4)
    assert result.reason == "max_steps" and result.step == 4
    assert sum(e.get("event") == "warning" for e in result.events) >= 2


def test_injected_nan_skips_updates_then_stops(tmp_path, data_dir, monkeypatch):
    t = make_trainer(tmp_path / "r", data_dir, "train.max_nonfinite=3", "train.guard.action=stop")
    before = {k: v.clone() for k, v in t.codec.state_dict().items() if "original" in k}
    real = t.gan.generator_losses

    def poisoned(x, out, adversarial):
        terms = real(x, out, adversarial)
        terms["mel"] = terms["mel"] * float("nan")
        return terms

    monkeypatch.setattr(t.gan, "generator_losses", poisoned)
    result = t.train(10)
    assert result.reason == "nonfinite"
    assert result.step == 0 and t.state.nonfinite_total == 3
    after = t.codec.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_existing_run_dir_needs_resume(tmp_path, data_dir):
    make_trainer(tmp_path / "r", data_dir).train(1)
    with pytest.raises(TrainingError, match="--resume"):
        make_trainer(tmp_path / "r", data_dir)


def _cli(*args, **kw):
    return subprocess.run(
        [sys.executable, "-m", "telugu_codec", *args], capture_output=True, text=True, **kw
    )


@pytest.mark.parametrize("case", ["missing", "empty", "existing"])
def test_bad_invocations_give_one_line_errors(tmp_path, data_dir, case):
    data = {"missing": tmp_path / "nope", "empty": tmp_path / "empty"}.get(case, data_dir)
    (tmp_path / "empty").mkdir()
    out = tmp_path / "run"
    if case == "existing":
        out.mkdir()
        (out / "metrics.jsonl").write_text("")
    proc = _cli(
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-steps",
        "1",
        "--no-progress",
        *TRAIN_OVERRIDES,
    )
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr


def test_sigint_saves_and_sigkill_resumes(tmp_path, data_dir):
    out = tmp_path / "run"
    args = [
        "train",
        "--data",
        str(data_dir),
        "--out",
        str(out),
        "--max-steps",
        "100000",
        "--no-progress",
        *TRAIN_OVERRIDES,
        "train.ckpt_every=3",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "telugu_codec", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_train_records(out, 4, timeout=120)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    steps = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    interrupted_at = int(steps[-1].split("_")[1])
    assert interrupted_at >= 4  # saved where it stopped, not only at ckpt_every

    # SIGKILL in the middle, then resume from the last complete checkpoint
    def run_args(max_steps):
        return [
            "train",
            "--data",
            str(data_dir),
            "--out",
            str(out),
            "--max-steps",
            str(max_steps),
            "--no-progress",
            "--resume",
            *TRAIN_OVERRIDES,
            "train.ckpt_every=3",
        ]

    proc = subprocess.Popen(
        [sys.executable, "-m", "telugu_codec", *run_args(100000)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        if any(
            int(p.name.split("_")[1]) > interrupted_at for p in (out / "checkpoints").glob("step_*")
        ):
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    last = max(
        int(p.name.split("_")[1])
        for p in (out / "checkpoints").glob("step_*")
        if (p / "state.json").exists()
    )
    assert last > interrupted_at
    proc = _cli(*run_args(last + 2))
    assert proc.returncode == 0, proc.stderr
    assert f"step {last + 2}" in proc.stdout
    assert not list((out / "checkpoints").glob(".tmp_*"))


@pytest.mark.parametrize("preset", ["seed", "dac", "encodec", "mimi-adv", "l1-vq"])
def test_every_recipe_takes_finite_steps(tmp_path, data_dir, preset):
    """Each preset's recipe (losses, discriminators, balancer) runs at a tiny size."""
    from telugu_codec.compare import study_config

    sizes = [o for o in TRAIN_OVERRIDES if o.startswith(("model.", "data.", "loss.mel_loss"))]
    cfg = study_config(
        preset,
        "default",
        sizes
        + [
            "discriminator.msd.width=0.0625",
            "discriminator.mpd.channels=4",
            "discriminator.mpd.max_channels=16",
            "discriminator.stftd.channels=4",
            "discriminator.mrd.channels=4",
            "train.val_every=1000",
            "train.log_every=1",
        ],
    )
    t = Trainer(
        cfg, tmp_path / "r", data_dir, progress=False, tensorboard=False, log=lambda _m: None
    )
    logs = [t.train_step([x]) for x, _ in zip(t.feed.batches(), range(2))]
    assert all(log["finite"] == 1.0 for log in logs)
    expected = {
        "seed": {"adv", "fm", "l1"},
        "dac": {"adv", "fm", "mel"},
        "encodec": {"adv", "fm", "l1", "mel"},
        "mimi-adv": {"adv", "fm"},
        "l1-vq": {"l1"},
    }[preset]
    assert {k.split("/")[1] for k in logs[-1] if k.startswith("loss/")} - {
        "g_total",
        "commit",
        "d",
    } == expected
    if cfg.loss.balancer:
        assert any(k.startswith("balancer/") for k in logs[-1])


def test_cosine_schedule_ends_with_the_run_not_the_config(tmp_path, data_dir):
    t = make_trainer(
        tmp_path / "r", data_dir, "train.g_optim.schedule=cosine", "train.max_steps=100000"
    )
    t.train(6)
    lrs = {
        r["step"]: r["lr/g"]
        for r in map(json.loads, (tmp_path / "r/metrics.jsonl").open())
        if r["kind"] == "train"
    }
    peak = 1e-3
    assert lrs[3] == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 2 / 6)))
    assert lrs[6] < 0.1 * peak  # the last step of a 6-step run, not 6 of 100000
    assert t.state.horizon == 6


def test_cosine_schedule_follows_a_time_budget(tmp_path, data_dir):
    t = make_trainer(tmp_path / "r", data_dir, "train.g_optim.schedule=cosine", time_budget_s=100.0)
    t.state.horizon = 100000
    t.state.train_seconds = 75.0  # three quarters of the budget used
    t._set_lr()
    assert t.gan.g_opt.param_groups[0]["lr"] == pytest.approx(
        1e-3 * 0.5 * (1 + math.cos(0.75 * math.pi))
    )
    # and the progress bar's total is the step the budget will end at
    t.state.step = 300
    assert t.telemetry.expected_steps(100000, steps_per_s=4.0) == 300 + 100
    assert t.telemetry.expected_steps(350, steps_per_s=4.0) == 350
    assert make_trainer(tmp_path / "s", data_dir).telemetry.expected_steps(50, 4.0) == 50


def test_resume_keeps_the_runs_length(tmp_path, data_dir):
    t = make_trainer(tmp_path / "r", data_dir, "train.ckpt_every=2")
    t.state.horizon = None
    t.train(2)
    del t
    t = make_trainer(tmp_path / "r", data_dir, "train.ckpt_every=2", resume=True)
    assert t.state.horizon == 2  # restored; train() without a number keeps it


def test_guard_flags_induced_codebook_churn_within_one_interval(tmp_path, data_dir):
    t = make_trainer(
        tmp_path / "r",
        data_dir,
        "model.quantizer.init_vectors=0.25",
        "model.quantizer.dead_code_window=0.01",  # every code is dead almost at once ...
        "model.quantizer.replace_every=1",  # ... and re-seeded on every step
        "train.val_every=4",
        "train.guard.action=warn",
    )
    result = t.train(4)
    assert "codebook churn" in result.last_validation["health"]
    assert result.last_validation["val/replaced_per_step/q0"] > 0.05


def test_guard_flags_induced_codebook_collapse_within_one_interval(tmp_path, data_dir):
    t = make_trainer(
        tmp_path / "r",
        data_dir,
        "model.quantizer.init_vectors=0.25",
        "model.quantizer.dead_code_window=0",  # nothing repairs the collapse
        "train.val_every=4",
        "train.guard.action=warn",
        "train.guard.codebook_grace_steps=0",  # judged at the first validation
    )
    t.train(2)  # k-means has initialised the codebooks
    for stage in t.codec.quantizer.stages:  # collapse: every codeword the same vector
        stage.embed.copy_(stage.embed[:1].expand_as(stage.embed))
        stage.embed_avg.copy_(stage.embed * stage.cluster_size[:, None])
    result = t.train(4)
    assert "codebook collapse" in result.last_validation["health"]
    assert result.last_validation["val/perplexity/q0"] < 2


def test_compile_and_fused_optimizer_train_and_keep_checkpoint_keys(tmp_path, data_dir):
    plain = make_trainer(tmp_path / "a", data_dir, "train.ckpt_every=2")
    plain.train(2)
    t = make_trainer(
        tmp_path / "b",
        data_dir,
        "train.ckpt_every=2",
        "train.compile=true",
        "train.compile_backend=eager",  # traces with dynamo, no C++ code generation
        "train.fused_optimizer=true",
    )
    assert hasattr(t.codec.encoder, "_compiled_call_impl") or t.codec.encoder._compiled_call_impl
    result = t.train(2)
    assert result.reason == "max_steps"
    for name in ("codec.safetensors", "discriminator.safetensors"):
        a = weights(tmp_path / "a/checkpoints/step_00000002" / name)
        b = weights(tmp_path / "b/checkpoints/step_00000002" / name)
        assert a.keys() == b.keys()  # compiled in place: no `_orig_mod.` prefixes
        assert all(torch.isfinite(v.float()).all() for v in b.values())


def test_auto_loader_workers_are_zero_on_a_cpu():
    from telugu_codec.data.loaders import resolve_num_workers

    assert resolve_num_workers(3) == 3
    if not torch.cuda.is_available():
        assert resolve_num_workers(-1) == 0
