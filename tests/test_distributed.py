"""DDP: two gloo processes on the CPU match one process on the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from .conftest import speechlike
from .test_trainer import TRAIN_OVERRIDES, wait_for_train_records

# One process with batch 2 and two with batch 1 see the same items, so their gradients must
# match: this comparison checks DDP's gradient reduction. It turns off the quantizer's random
# per-rank choices (k-means seeds, dead-code draws, dropout depths), which legitimately differ
# between one process and two; test_ddp_with_every_quantizer_feature_keeps_replicas_identical
# covers those features under DDP with every one of them on.
DETERMINISTIC = [
    "model.quantizer.kmeans_init=false",
    "model.quantizer.dropout=0",
    "model.quantizer.dead_code_window=0",
    "train.ckpt_every=2",
]


def _train(out, data, nproc: int, batch: int, extra=DETERMINISTIC, steps: int = 2, rc: int = 0):
    launcher = (
        [sys.executable, "-m", "telugu_codec"]
        if nproc == 1
        else [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            "-m",
            "telugu_codec",
        ]
    )
    proc = subprocess.run(
        [
            *launcher,
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-steps",
            str(steps),
            "--no-progress",
            "--device",
            "cpu",
            *TRAIN_OVERRIDES,
            *extra,
            f"data.batch_size={batch}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == rc, proc.stderr[-3000:]
    if rc:
        return proc.stderr
    return load_file(str(out / f"checkpoints/step_{steps:08d}/codec.safetensors"))


@pytest.mark.slow
def test_two_gloo_processes_match_one_process(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    one = _train(tmp_path / "one", data, nproc=1, batch=2)
    two = _train(tmp_path / "two", data, nproc=2, batch=1)
    init = load_file(str(tmp_path / "one/checkpoints/step_00000000/codec.safetensors"))
    moved = 0
    for k in one:
        if one[k].dtype == torch.bool:
            assert torch.equal(one[k], two[k]), k
            continue
        # Adam's first steps are ~lr * sign(grad): float noise in near-zero gradients shows as
        # differences of a few 1e-5 at lr 1e-3; a wrong reduction would differ by ~lr
        assert torch.allclose(one[k], two[k], rtol=1e-3, atol=2e-4), k
        moved += int(not torch.equal(one[k], init[k]))
    assert moved > 0  # training really changed the weights


@pytest.mark.slow
def test_ddp_with_every_quantizer_feature_keeps_replicas_identical(tmp_path):
    """k-means init, dead-code re-seeding and quantizer dropout ON, two gloo processes: the
    trainer's replica check (every validation) finds identical weights and codebooks."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    features = [
        "model.quantizer.kmeans_init=true",
        "model.quantizer.init_vectors=0.5",  # k-means after 2 steps
        "model.quantizer.dead_code_window=0.2",
        "model.quantizer.replace_every=1",
        "model.quantizer.dropout=0.5",
        "train.val_every=3",
        "train.ckpt_every=3",
        "train.guard.action=warn",  # this small window counts as churn; the test is the replicas
    ]
    _train(tmp_path / "two", data, nproc=2, batch=2, extra=features, steps=6)
    records = [json.loads(line) for line in (tmp_path / "two/metrics.jsonl").open()]
    checks = [r for r in records if r.get("event") == "replicas"]
    assert [r["step"] for r in checks] == [3, 6]
    replaced = sum(r.get("quantizer/replaced/q0", 0) for r in records if r["kind"] == "train")
    assert replaced > 0  # re-seeding really happened, on both ranks alike
    state = load_file(str(tmp_path / "two/checkpoints/step_00000006/codec.safetensors"))
    assert bool(state["quantizer.stages.0.inited"])


@pytest.mark.slow
def test_guard_rollback_under_ddp_rolls_back_every_rank(tmp_path):
    """Only rank 0 writes checkpoints, so only it knew the rollback target: the other rank
    stopped while rank 0 went on, and the run hung. Now both roll back, then the guard stops."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    collapse = [
        "model.output_gain=0.1",  # amplitude 0.1: unhealthy at every validation
        "train.val_every=2",
        "train.guard.max_rollbacks=1",
    ]
    # torchrun reports a failed child as exit status 1
    stderr = _train(tmp_path / "two", data, nproc=2, batch=1, extra=collapse, steps=6, rc=1)
    assert "error: training stopped by the collapse guard (" in stderr, stderr[-600:]
    events = [json.loads(line) for line in (tmp_path / "two/metrics.jsonl").open()]
    kinds = [r.get("event") for r in events if r["kind"] == "event"]
    assert "rollback" in kinds and kinds[-1] == "stop"
    assert any("amplitude_low" in r.get("message", "") for r in events)


def test_state_checksum_sees_one_changed_element():
    from telugu_codec.train.distributed import state_checksum

    m = torch.nn.Linear(8, 8)
    before = state_checksum(m)
    assert torch.equal(before, state_checksum(m))
    with torch.no_grad():
        m.weight[3, 5] += 1e-3
    assert not torch.equal(before, state_checksum(m))
    with torch.no_grad():  # a swap of two elements keeps the sum but not the weighted sum
        m.weight[3, 5] -= 1e-3
        w = m.weight.view(-1)
        w[0], w[1] = w[1].clone(), w[0].clone()
    assert not torch.equal(before, state_checksum(m))


def _rank_pids(root_pid: int) -> dict[int, int]:
    """rank -> pid of the worker processes under a torchrun (from /proc)."""
    from pathlib import Path

    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    ranks, todo = {}, [root_pid]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for var in env:
            if var.startswith(b"RANK=") and pid != root_pid:
                ranks[int(var[5:])] = pid
    return ranks


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_sigterm_to_one_rank_stops_every_rank_with_a_checkpoint(tmp_path):
    """Issue 14, case 4: a preempted worker (SIGTERM on any one rank) saves and all stop."""
    import signal

    data = tmp_path / "data"
    data.mkdir()
    for i in range(8):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "telugu_codec",
            "train",
            "--data",
            str(data),
            "--out",
            str(out),
            "--max-steps",
            "100000",
            "--no-progress",
            "--device",
            "cpu",
            *TRAIN_OVERRIDES,
            *DETERMINISTIC,
            "data.batch_size=1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_train_records(out, 3, timeout=240)
    ranks = _rank_pids(proc.pid)
    assert set(ranks) == {0, 1}, ranks
    import os

    os.kill(ranks[1], signal.SIGTERM)  # only rank 1 hears it
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err
    ckpts = sorted(p.name for p in (out / "checkpoints").glob("step_*"))
    stopped = int(ckpts[-1].split("_")[1])
    import json

    last = [
        json.loads(ln) for ln in (out / "metrics.jsonl").read_text().splitlines() if '"train"' in ln
    ][-1]
    assert stopped == last["step"] >= 3  # saved at the step where every rank stopped


@pytest.mark.slow
def test_rank0_scans_the_corpus_while_the_others_wait_then_read_its_cache(tmp_path):
    """Two gloo ranks build the datasets inside `rank0_first`: rank 0 probes every file,
    rank 1 none (it finds them all in the cache), and both get the same split."""
    data = tmp_path / "data"
    data.mkdir()
    for i in range(6):
        sf.write(data / f"u{i}.wav", speechlike(0.5, seed=i), 16000)
    out = tmp_path / "out"
    args = {"data": str(data), "out": str(out), "timeout_minutes": 2}
    _two_ranks("tests.rank0_worker", args)
    ranks = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["probed"] for r in ranks] == [6, 0]
    assert ranks[0]["train"] == ranks[1]["train"] and ranks[0]["val"] == ranks[1]["val"]


def _two_ranks(module: str, args: dict, timeout: float = 180) -> None:
    """Run `module` on two gloo ranks under torchrun; kill the whole job on a hang."""
    from pathlib import Path

    from .test_trainer_ddp import _kill_tree

    Path(args["out"]).mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [*cmd, "-m", module, json.dumps(args)],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_tree(proc.pid)
        proc.communicate(timeout=30)
        pytest.fail(f"the two ranks did not finish in {timeout:g} s (a barrier never released)")
    assert proc.returncode == 0, err[-3000:]


def test_rank0_first_without_a_process_group_just_runs_the_block():
    from telugu_codec.train.distributed import DistInfo, rank0_first

    ran = []
    for info in (None, DistInfo()):
        with rank0_first(info):
            ran.append(True)
    assert ran == [True, True]


def test_process_group_timeout_comes_from_the_config(monkeypatch, tmp_path, data_dir):
    """`train.dist_timeout_minutes` reaches init_process_group (and the trainer passes it)."""
    from datetime import timedelta

    import telugu_codec.train.distributed as D
    import telugu_codec.train.trainer as T
    from telugu_codec.config import load_config

    seen = {}
    monkeypatch.setattr(D.dist, "is_initialized", lambda: False)
    monkeypatch.setattr(D.dist, "init_process_group", lambda **kw: seen.update(kw))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    info = D.init_distributed(45.0)
    assert seen["timeout"] == timedelta(minutes=45) and (info.rank, info.world_size) == (1, 2)
    assert load_config(None, ["train.dist_timeout_minutes=90"]).train.dist_timeout_minutes == 90

    asked = []

    def fake_init(minutes=None):
        asked.append(minutes)
        return D.DistInfo()

    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(T, "init_distributed", fake_init)
    from .test_trainer import make_trainer

    make_trainer(tmp_path / "r", data_dir, "train.dist_timeout_minutes=7")
    assert asked == [7.0]
