"""losses/balancer.py: EnCodec's gradient balancer and the weighted sum."""

from __future__ import annotations

import json
import math

import pytest
import torch

from telugu_codec.config import load_config
from telugu_codec.errors import CheckpointError, ConfigError
from telugu_codec.losses import LossBalancer


def _two_half_losses(y: torch.Tensor, scale_a: float, scale_b: float) -> dict[str, torch.Tensor]:
    """Two losses with gradients on disjoint halves of y, of wildly different raw scales."""
    half = y.shape[-1] // 2
    return {
        "a": scale_a * y[..., :half].square().sum(),
        "b": scale_b * (y[..., half:] - 1).abs().sum(),
    }


def test_balancer_gives_each_loss_its_weight_share_of_the_gradient_norm():
    torch.manual_seed(0)
    balancer = LossBalancer({"a": 1.0, "b": 3.0}, ema_decay=0.9, total_norm=2.0)
    x = torch.randn(1, 1, 64)
    for _ in range(4):
        y = x.clone().requires_grad_(True)
        metrics = balancer.backward(_two_half_losses(y, 1e4, 1e-3), y)
        grad_a = float(y.grad[..., :32].norm())
        grad_b = float(y.grad[..., 32:].norm())
        # measured on the gradient that reached y: R * w / sum(w)
        assert grad_a == pytest.approx(2.0 * 1 / 4, rel=1e-4)
        assert grad_b == pytest.approx(2.0 * 3 / 4, rel=1e-4)
        assert metrics["grad_share/a"] == pytest.approx(grad_a, rel=1e-4)
        assert metrics["grad_norm/total"] == pytest.approx(math.hypot(grad_a, grad_b), rel=1e-4)
    # the raw norms differ by orders of magnitude; the balanced ones do not
    assert metrics["grad_norm/a"] / metrics["grad_norm/b"] > 1e4


def test_balancer_backpropagates_into_the_model():
    torch.manual_seed(0)
    weight = torch.nn.Parameter(torch.tensor(2.0))
    x = torch.randn(1, 1, 64)
    y = weight * x  # a one-parameter "decoder"
    balancer = LossBalancer({"a": 1.0, "b": 1.0})
    balancer.backward(_two_half_losses(y, 1.0, 1.0), y)
    # reference: same combined gradient, chained by hand through y = w x
    y2 = (weight.detach() * x).requires_grad_(True)
    fresh = LossBalancer({"a": 1.0, "b": 1.0})
    fresh.backward(_two_half_losses(y2, 1.0, 1.0), y2)
    assert float(weight.grad) == pytest.approx(float((y2.grad * x).sum()), rel=1e-5)


def test_balancer_state_is_json_and_resumes_identically():
    torch.manual_seed(0)
    x = torch.randn(2, 1, 32)
    a = LossBalancer({"a": 1.0, "b": 2.0}, ema_decay=0.5)
    for scale in (1.0, 10.0):
        y = x.clone().requires_grad_(True)
        a.backward(_two_half_losses(y, scale, 1.0), y)
    state = json.loads(json.dumps(a.state_dict()))
    b = LossBalancer({"a": 1.0, "b": 2.0}, ema_decay=0.5)
    b.load_state_dict(state)
    ya, yb = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ma = a.backward(_two_half_losses(ya, 100.0, 1.0), ya)
    mb = b.backward(_two_half_losses(yb, 100.0, 1.0), yb)
    assert ma == mb
    torch.testing.assert_close(ya.grad, yb.grad)
    with pytest.raises(CheckpointError):
        b.load_state_dict({"ema_sum": 3})


def test_balancer_norms_and_sum_are_fp32_for_a_bf16_output():
    """Under bf16 autocast the decoder output (and so each loss's gradient) may be bf16: the
    norms, their averages and the combined gradient are fp32 all the same."""
    torch.manual_seed(0)
    y = torch.randn(2, 1, 64).bfloat16().requires_grad_(True)
    balancer = LossBalancer({"a": 1.0, "b": 1.0})
    losses = _two_half_losses(y.float(), 1e3, 1e-3)
    grad, metrics = balancer.combined_grad(losses, y)
    assert grad.dtype == torch.float32
    (ga,) = torch.autograd.grad(losses["a"], [y], retain_graph=True)
    assert metrics["grad_norm/a"] == pytest.approx(
        float(ga.float().flatten(1).norm(dim=1).mean()), rel=1e-6
    )
    balancer.backward(losses, y)  # the gradient reaches a bf16 output in its dtype
    assert y.grad.dtype == torch.bfloat16


def test_a_non_finite_norm_leaves_the_averages_alone():
    """A NaN loss (the step is skipped) must not poison the moving averages for good."""
    x = torch.randn(1, 1, 64)
    balancer = LossBalancer({"a": 1.0, "b": 1.0}, ema_decay=0.5)
    y = x.clone().requires_grad_(True)
    balancer.backward(_two_half_losses(y, 1.0, 1.0), y)
    state = balancer.state_dict()
    y = x.clone().requires_grad_(True)
    balancer.backward(_two_half_losses(y, float("nan"), 1.0), y)
    assert balancer.state_dict() == state


def _balancer_rank(rank: int, world: int, init_file: str, out: str) -> None:
    """One of two gloo processes: two balanced steps on this rank's own losses."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(rank)
    balancer = LossBalancer({"a": 1.0, "b": 3.0}, ema_decay=0.5)
    local = []  # this rank's own norms, per step: (a, b)
    for step in range(2):
        y = torch.randn(2, 1, 64).requires_grad_(True)
        losses = _two_half_losses(y, (rank + 1) * 10.0**step, 1.0)
        grads = [torch.autograd.grad(losses[k], [y], retain_graph=True)[0] for k in "ab"]
        local.append([float(g.flatten(1).norm(dim=1).mean()) for g in grads])
        balancer.combined_grad(losses, y)
    torch.save({"state": balancer.state_dict(), "local": local}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.mark.slow
def test_balancer_averages_the_norms_over_ddp_ranks(tmp_path):
    """Two gloo processes with different losses: both keep the same moving averages, those of
    the ranks' mean norms (each rank kept its own before, and applied its own scales)."""
    import torch.multiprocessing as mp

    mp.spawn(_balancer_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert r0["state"] == r1["state"]
    for i, name in enumerate("ab"):
        ema_sum = ema_count = 0.0
        for step in range(2):
            mean = (r0["local"][step][i] + r1["local"][step][i]) / 2
            ema_sum, ema_count = 0.5 * ema_sum + mean, 0.5 * ema_count + 1.0
        assert r0["state"]["ema_sum"][name] / r0["state"]["ema_count"][name] == pytest.approx(
            ema_sum / ema_count, rel=1e-5
        )
    assert r0["local"][1][0] != r1["local"][1][0]  # the ranks really saw different norms


def test_balancer_from_config_and_bad_input():
    balancer = LossBalancer.from_config(load_config("encodec").loss)
    assert balancer.weights == {"l1": 0.1, "mel": 1.0, "adv": 3.0, "fm": 3.0}
    y = torch.zeros(1, 1, 4, requires_grad=True)
    with pytest.raises(KeyError, match="vq"):
        balancer.backward({"vq": y.sum()}, y)
    with pytest.raises(ConfigError):
        LossBalancer({"a": 0.0})


def test_balancer_trains_with_every_registered_term(tmp_path):
    """`loss.balancer=true` with every reconstruction term of the registry on, plus the GAN
    terms: each term gets a balancer weight and trains (the balancer kept its own list of names
    before, and `phase` / `complex` were missing: KeyError on step 1)."""
    import math

    from telugu_codec.losses.reconstruction import ADVERSARIAL_TERMS, TERMS

    from .test_trainer import make_trainer

    every = [f"loss.{name}=1.0" for name in TERMS] + ["loss.adv=1.0", "loss.fm=1.0"]
    cfg = load_config(None, ["loss.balancer=true", *every])
    assert set(LossBalancer.from_config(cfg.loss).weights) == {*TERMS, *ADVERSARIAL_TERMS}

    import soundfile as sf

    from .conftest import speechlike

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    trainer = make_trainer(
        tmp_path / "run", data, "loss.balancer=true", *every, "train.d_warmup_steps=0",
        "train.val_every=100", "train.ckpt_every=100",
    )  # fmt: skip
    result = trainer.train(2)
    assert result.step == 2 and result.reason == "max_steps"
    logged = [r for r in trainer_records(tmp_path / "run") if r.get("kind") == "train"]
    names = {k.rsplit("/", 1)[1] for k in logged[-1] if k.startswith("balancer/grad_share/")}
    assert {*TERMS, *ADVERSARIAL_TERMS} <= names, names
    assert all(math.isfinite(v) for k, v in logged[-1].items() if k.startswith("loss/"))


def trainer_records(run_dir):
    import json

    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
