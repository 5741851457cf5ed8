"""One rank of a torchrun job for tests/test_distributed.py (not a test module itself).

Builds the datasets of ``data`` inside `rank0_first`, as the trainer does, counting the files
this rank probes, and writes ``{out}/rank{r}.json``. Run as
``python -m torch.distributed.run --nproc_per_node=2 -m tests.rank0_worker '<json>'`` from the
repository root; the JSON holds ``data``, ``out`` and ``timeout_minutes``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

import telugu_codec.data.scan as scan
from telugu_codec.config import DataConfig
from telugu_codec.data import build_datasets
from telugu_codec.train.distributed import cleanup, init_distributed, rank0_first


def main() -> None:
    args = json.loads(sys.argv[1])
    torch.set_num_threads(1)
    info = init_distributed(args["timeout_minutes"])
    probed: list[str] = []
    real_probe = scan.probe_file

    def counting_probe(path: Path):
        probed.append(str(path))
        return real_probe(path)

    scan.probe_file = counting_probe  # scan_files looks it up at each call
    cfg = DataConfig(segment_seconds=0.25, batch_size=1, val_fraction=0.25, scan_workers=1)
    with rank0_first(info):
        train, val, _ = build_datasets(args["data"], cfg, 16000, log=lambda _m: None)
    report = {
        "rank": info.rank,
        "probed": len(probed),
        "train": sorted(train.paths),
        "val": sorted(val.paths),
    }
    Path(args["out"], f"rank{info.rank}.json").write_text(json.dumps(report))
    cleanup(info)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
