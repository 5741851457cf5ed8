"""The training step on its own (`train/gan_step.py`) and the run's bookkeeping (`TrainState`).

The step is a function of (models, optimizers, batch, step): the same inputs and seed give the
same result, it writes nothing, and a non-finite batch is a skipped update on every parameter.
"""

from __future__ import annotations

import json
import os

import pytest
import torch

from telugu_codec.config import load_config
from telugu_codec.errors import CheckpointError
from telugu_codec.model.codec import Codec
from telugu_codec.model.discriminators import Discriminators
from telugu_codec.train.gan_step import GANStep, StepResult, build_gan_step
from telugu_codec.train.state import TrainState

from .conftest import speechlike
from .test_trainer import TRAIN_OVERRIDES


def _step(seed: int = 0, d_loss_floor: float | None = None) -> GANStep:
    """The tiny test codec and discriminators, D from step 0, built from `seed`."""
    cfg = load_config(None, TRAIN_OVERRIDES + ["train.d_warmup_steps=0"])
    torch.manual_seed(seed)
    codec = Codec(cfg.model, cfg)
    disc = Discriminators(cfg.discriminator, cfg.model.sample_rate)
    return build_gan_step(cfg, codec, disc, torch.device("cpu"), d_loss_floor=d_loss_floor)


def _batch(n: int = 2, seconds: float = 0.25) -> torch.Tensor:
    t = int(seconds * 16000)
    return torch.stack(
        [torch.from_numpy(speechlike(1.0, seed=20 + i)[None, 1000 : 1000 + t]) for i in range(n)]
    )


def _run(gan: GANStep, x: torch.Tensor, steps: int = 2) -> list[StepResult]:
    torch.manual_seed(1)
    return [gan([x], s) for s in range(steps)]


def test_same_inputs_and_seed_give_the_same_result():
    x = _batch()
    a, b = _step(0), _step(0)
    ra, rb = _run(a, x), _run(b, x)
    for one, two in zip(ra, rb):
        assert one.tensors().keys() == two.tensors().keys()
        for k, v in one.tensors().items():
            assert torch.equal(v, two.tensors()[k]), k
        assert (one.finite, one.d_updated) == (two.finite, two.d_updated) == (True, True)
    for k, v in a.codec.state_dict().items():
        assert torch.equal(v, b.codec.state_dict()[k]), k
    for k, v in a.disc.state_dict().items():
        assert torch.equal(v, b.disc.state_dict()[k]), k
    # and another seed is another model: the comparison above can fail
    c = _step(1)
    rc = _run(c, x)
    assert not torch.equal(rc[0].losses["loss/g_total"], ra[0].losses["loss/g_total"])


def test_the_step_trains_both_models_and_returns_detached_device_tensors():
    gan, x = _step(0), _batch()
    g0 = {k: v.clone() for k, v in gan.codec.state_dict().items()}
    d0 = {k: v.clone() for k, v in gan.disc.state_dict().items()}
    result = gan([x], 0)
    assert result.finite and result.d_updated and not result.overflow
    assert {"loss/d", "loss/mel", "loss/adv", "loss/fm", "loss/commit", "loss/g_total"} <= set(
        result.losses
    )
    assert set(result.grad_norms) == {"grad_norm/d", "grad_norm/g"}
    for v in result.tensors().values():
        assert isinstance(v, torch.Tensor) and v.dim() == 0 and not v.requires_grad
    assert any(not torch.equal(v, gan.codec.state_dict()[k]) for k, v in g0.items())
    assert any(not torch.equal(v, gan.disc.state_dict()[k]) for k, v in d0.items())
    floats = result.scalars()
    assert floats["loss/g_total"] == pytest.approx(float(result.losses["loss/g_total"]))


def test_the_step_writes_no_file_and_prints_nothing(tmp_path, monkeypatch, capsys):
    gan, x = _step(0), _batch()
    monkeypatch.chdir(tmp_path)
    opened = []
    real_open = open

    def spy(file, mode="r", *a, **kw):
        if any(c in mode for c in "wax+"):
            opened.append(file)
        return real_open(file, mode, *a, **kw)

    monkeypatch.setattr("builtins.open", spy)
    for s in range(2):
        gan([x], s)
    gan(list(_batch(4).chunk(2)), 2)  # and with accumulation
    assert opened == [] and os.listdir(tmp_path) == []
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize("accum", [1, 2])
def test_a_nan_input_is_a_skipped_update(accum):
    gan = _step(0)
    x = _batch(2 * accum)
    x[0, 0, 100] = float("nan")
    g0 = {k: v.clone() for k, v in gan.codec.named_parameters()}
    d0 = {k: v.clone() for k, v in gan.disc.named_parameters()}
    result = gan(list(x.chunk(accum)), 0)
    assert not result.finite and not result.d_updated and not result.overflow
    assert result.d_loss_low is None
    assert all(torch.equal(v, g0[k]) for k, v in gan.codec.named_parameters())
    assert all(torch.equal(v, d0[k]) for k, v in gan.disc.named_parameters())
    # the same step on clean audio is taken
    assert gan(list(_batch(2 * accum).chunk(accum)), 0).finite


def test_d_loss_floor_is_reported_with_the_finite_flags():
    x = _batch()
    assert _step(0, d_loss_floor=1e9)([x], 0).d_loss_low is True
    assert _step(0, d_loss_floor=0.0)([x], 0).d_loss_low is False
    assert _step(0)([x], 0).d_loss_low is None  # no floor given


def test_train_state_round_trips_through_json():
    state = TrainState(
        step=12,
        epoch=3,
        batch_in_epoch=5,
        lr_scale=0.5,
        rollbacks=1,
        best_value=0.25,
        best_step=10,
        last_healthy="step_00000010",
        audio_seconds=96.0,
        train_seconds=4.5,
        nonfinite_total=2,
        healthy=False,
        horizon=100,
        pending="rollback",
        data_stream={"slots": [[1, 2]]},
        data_seen={"a": 7},
        data_skipped={"corrupt": 1},
        metrics_bytes=1234,
    )
    back = TrainState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert back == state
    back.data_seen["a"] += 1  # loaded dicts are copies, not shared with the source
    assert state.data_seen == {"a": 7}


def test_train_state_loads_older_checkpoints_and_refuses_unknown_entries():
    old = {"step": 4, "epoch": 1, "batch_in_epoch": 0, "lr_scale": 1.0, "rollbacks": 0}
    state = TrainState.from_dict(old)  # written before `pending` / `data_seen` existed
    assert state.step == 4 and state.pending is None and state.data_seen == {}
    with pytest.raises(CheckpointError, match="newer telugu-codec"):
        TrainState.from_dict({**old, "future_counter": 1})
