"""data/build.py: `build_datasets` end to end on the bundled corpus."""

from __future__ import annotations

import csv

import soundfile as sf

from telugu_codec.config import DataConfig
from telugu_codec.data import build_datasets

from .data_helpers import DEMO, SR, quiet


def test_bundled_demo_corpus_is_consistent(tmp_path):
    with (DEMO / "manifest.tsv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    assert len(rows) >= 250
    for r in rows:
        info = sf.info(str(DEMO / r["path"]))
        assert info.samplerate == 16000 and info.channels == 1 and info.subtype == "PCM_16"
        assert abs(info.duration - float(r["duration"])) < 0.01
        assert r["path"].startswith(r["split"] + "/")
    minutes = sum(float(r["duration"]) for r in rows) / 60
    assert 10 <= minutes <= 20
    size_mb = sum((DEMO / r["path"]).stat().st_size for r in rows) / 1e6
    assert size_mb < 20
    train = {r["text"] for r in rows if r["split"] == "train"}
    val = {r["text"] for r in rows if r["split"] == "val"}
    assert val and not train & val
    assert 0.07 < len(val) / len(rows) < 0.13
    assert len({r["speaker"] for r in rows}) >= 8
    assert "SYNTHETIC" in (DEMO / "README.md").read_text(encoding="utf-8")
    tr, va, report = build_datasets(DEMO, DataConfig(), SR, cache_dir=tmp_path, log=quiet)
    assert report.split == "manifest" and report.skipped == {}
    assert report.n_train == len(train) and report.n_held_out == len(val)
