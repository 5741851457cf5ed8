"""The step agrees with itself: across DDP ranks (a non-finite loss on one rank) and across
gradient accumulation (``train.grad_accum=2`` at batch B/2 is the update of batch B).

The DDP cases run two gloo processes under torchrun (`tests/ddp_worker.py`), with a timeout:
a rank that skips its backward while the other waits in the gradient all-reduce is a hang.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from .conftest import speechlike
from .test_trainer import make_trainer

ROOT = Path(__file__).resolve().parents[1]

# the quantizer makes no data-dependent buffer update (FSQ, no dropout; its one-time scale
# initialisation is done first, `prime`): micro-batches and a whole batch then see the same
# model, and only the gradient's sum order differs
EXACT = ["model.quantizer.kind=fsq", "model.quantizer.dropout=0", "train.d_warmup_steps=0"]


def prime(codec: torch.nn.Module, x: torch.Tensor) -> None:
    """FSQ scales its projections on the statistics of the first training batch: on all of
    `x` here, so that the first micro-batch does not set them."""
    codec.train()
    codec(x)
    assert all(bool(s.inited) for s in codec.quantizer.stages)


def _batch(n: int = 4, seconds: float = 0.25) -> torch.Tensor:
    """(n, 1, T) speech-like crops at -16 dBFS-ish level."""
    t = int(seconds * 16000)
    return torch.stack(
        [torch.from_numpy(speechlike(1.0, seed=10 + i)[None, 2000 : 2000 + t]) for i in range(n)]
    )


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    """Each tensor of `a` equals `b`'s to 1e-4 of its largest element (the sums of four
    items' gradients in another order differ by float rounding; a wrong reduction or scaling
    differs by tens of percent)."""
    assert a.keys() == b.keys(), what
    for k in a:
        err = float((a[k] - b[k]).abs().max() / b[k].abs().max().clamp_min(1e-12))
        assert err < 1e-4, f"{what}: {k} differs by {err:.2g} of its largest element"


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


# phase: (overrides, the step the update is taken at, what must equal the batch-B update)
PHASES = {
    # no discriminator: the codec's gradient
    "reconstruction": (["loss.adv=0", "loss.fm=0"], 0, "g"),
    # D steps: it sees the same reconstructions (G's update differs by design, see train_step)
    "gan_d_step": (["train.d_update_every=2"], 0, "d"),
    # a step without D's update: G's adversarial and feature-matching terms accumulate too
    "gan_g_step": (["train.d_update_every=2"], 1, "g"),
}


@pytest.mark.parametrize("phase", PHASES)
def test_grad_accum_gives_the_update_of_the_whole_batch(tmp_path, data_dir, phase):
    extra, start, what = PHASES[phase]
    x = _batch(4)
    updates = []
    for accum in (1, 2):
        torch.manual_seed(0)
        t = make_trainer(
            tmp_path / f"a{accum}", data_dir, *EXACT, *extra, f"train.grad_accum={accum}"
        )
        prime(t.codec, x)
        t.state.step = start
        logs = t.train_step(list(x.chunk(accum)))
        assert logs["finite"] == 1.0
        model = t.codec if what == "g" else t.disc
        updates.append((_grads(model), model.state_dict(), logs))
    (g1, w1, l1), (g2, w2, l2) = updates
    assert g1 and all(v.abs().sum() > 0 for v in list(g1.values())[:3])  # real gradients
    _close(g1, g2, "gradients")
    # Adam's first step is ~lr * sign(grad): float noise in near-zero gradients shows as a few
    # 1e-5 at lr 1e-3; a wrong accumulation (a sum, one micro-batch) differs by ~lr
    for k in w1:
        torch.testing.assert_close(w1[k], w2[k], rtol=1e-3, atol=2e-4, msg=k)
    key = "loss/g_total" if what == "g" else "loss/d"
    assert l1[key] == pytest.approx(l2[key], rel=1e-5)


def test_grad_accum_frees_each_micro_batchs_graph(tmp_path, data_dir, monkeypatch):
    """Each micro-batch's backward runs before the next forward (the old loop ran every
    forward first and kept every graph alive until the end)."""
    t = make_trainer(tmp_path / "r", data_dir, *EXACT, "train.grad_accum=3")
    prime(t.codec, _batch(3))
    order = []
    forward = type(t.codec).forward

    def traced_forward(self, *a, **kw):
        order.append("forward")
        out = forward(self, *a, **kw)
        out.audio.register_hook(lambda g: order.append("backward"))
        return out

    monkeypatch.setattr(type(t.codec), "forward", traced_forward)
    t.train_step(list(_batch(3).chunk(3)))
    assert order == ["forward", "backward"] * 3


def _kill_tree(root: int) -> None:
    """SIGKILL `root` and every process below it (found through /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(stat.parent.name))
    todo, found = [root], []
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    for pid in found:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _torchrun(args: dict, timeout: float = 180) -> list[dict]:
    """Run tests/ddp_worker.py on two gloo ranks; kill the whole job on a hang."""
    out = Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tests.ddp_worker",
        json.dumps(args),
    ]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)  # torchrun starts its workers in sessions of their own
        proc.communicate(timeout=30)
        pytest.fail(f"the two ranks did not finish in {timeout:g} s (a collective mismatch hangs)")
    assert proc.returncode == 0, err[-3000:]
    return [torch.load(out / f"rank{r}.pt") for r in (0, 1)]


@pytest.mark.slow
@pytest.mark.parametrize("accum", [1, 2])
def test_nan_on_one_rank_skips_the_step_on_every_rank(tmp_path, data_dir, accum):
    """Rank 1's loss is NaN at step 2: both ranks skip step 2 (no hang), their counters agree,
    and their weights are identical afterwards. With accumulation the NaN is in the first
    micro-batch, whose backward runs under `no_sync`."""
    args = {
        "mode": "nan",
        "run_dir": str(tmp_path / "run"),
        "data": str(data_dir),
        "out": str(tmp_path / "out"),
        "overrides": [
            "train.d_warmup_steps=0",
            f"train.grad_accum={accum}",
            "data.batch_size=1",
            "train.max_nonfinite=3",
        ],
        "nan_rank": 1,
        "nan_step": 2,
        "steps": 4,
    }
    r0, r1 = _torchrun(args)
    expected = [(0, True), (1, True), (2, False), (2, True), (3, True)]
    assert r0["seen"] == r1["seen"] == expected
    assert r0["step"] == r1["step"] == 4 and r0["reason"] == r1["reason"] == "max_steps"
    assert r0["nonfinite_total"] == r1["nonfinite_total"] == 1
    assert torch.equal(r0["codec"], r1["codec"]) and torch.equal(r0["disc"], r1["disc"])
    events = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").open()]
    assert [e["step"] for e in events if e.get("event") == "nonfinite"] == [2]


@pytest.mark.slow
def test_grad_accum_under_torchrun_gives_the_update_of_the_whole_batch(tmp_path, data_dir):
    """Two ranks x 2 micro-batches of 1 = one process with batch 4: the same gradient (the
    gradient reduction runs once, after the last micro-batch) and the same weights."""
    x = _batch(4)
    torch.save(x, tmp_path / "batch.pt")
    overrides = [*EXACT, "loss.adv=0", "loss.fm=0"]
    args = {
        "mode": "step",
        "run_dir": str(tmp_path / "run"),
        "data": str(data_dir),
        "out": str(tmp_path / "out"),
        "batch": str(tmp_path / "batch.pt"),
        "overrides": [*overrides, "train.grad_accum=2"],
    }
    r0, r1 = _torchrun(args)
    torch.manual_seed(0)
    ref = make_trainer(tmp_path / "ref", data_dir, *overrides)
    prime(ref.codec, x)
    ref.train_step([x])
    for k in r0["codec"]:
        assert torch.equal(r0["codec"][k], r1["codec"][k]), k  # replicas identical
    _close(r0["g_grads"], _grads(ref.codec), "gradients")
    for k, v in ref.codec.state_dict().items():
        torch.testing.assert_close(r0["codec"][k], v, rtol=1e-3, atol=2e-4, msg=k)
    assert np.isfinite([float(v.abs().sum()) for v in r0["g_grads"].values()]).all()
