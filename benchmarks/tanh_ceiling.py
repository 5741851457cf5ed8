"""The ceiling a tanh output layer puts on quality: the best a tanh can do is to clip.

Usage:
    python benchmarks/tanh_ceiling.py [--data data/demo-te/val]

Every file is loudness-normalised as the codec's input is (-16 dBFS RMS), then clipped at
+-0.999 (a tanh output cannot reach |y| >= 1) and scored against the unclipped normalised audio:
share of samples clipped, SNR, PESQ-WB and STOI. Identical audio scores PESQ-WB 4.64.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def ceiling(data: Path) -> dict:
    from pesq import pesq
    from pystoi import stoi

    from telugu_codec.audio import load_audio, normalize

    rows = []
    for path in sorted(p for p in data.iterdir() if p.suffix in (".wav", ".flac")):
        x = torch.from_numpy(load_audio(path, 16000).wav)[None, None]
        y = normalize(x)[0][0, 0].numpy().astype(np.float64)
        clipped = np.clip(y, -0.999, 0.999)
        err = y - clipped
        snr = 10 * np.log10((y**2).sum() / max(float((err**2).sum()), 1e-20))
        rows.append(
            {
                "peak": float(np.abs(y).max()),
                "clipped": float((np.abs(y) > 0.999).mean()),
                "snr_db": float(snr),
                "pesq_wb": float(pesq(16000, y, clipped, "wb")),
                "stoi": float(stoi(y, clipped, 16000)),
            }
        )
    col = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    return {
        "files": len(rows),
        "peak_median": float(np.median(col["peak"])),
        "files_peaking_above_1": int((col["peak"] > 1.0).sum()),
        "clipped_share_mean": float(col["clipped"].mean()),
        "snr_db_median": float(np.median(col["snr_db"])),
        "snr_db_worst": float(col["snr_db"].min()),
        "pesq_wb_mean": float(col["pesq_wb"].mean()),
        "pesq_wb_worst": float(col["pesq_wb"].min()),
        "stoi_mean": float(col["stoi"].mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data" / "demo-te" / "val"))
    print(json.dumps(ceiling(Path(p.parse_args().data)), indent=2))


if __name__ == "__main__":
    main()
