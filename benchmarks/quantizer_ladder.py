"""Where the bitrate ladder stops: mel distance at n_q = 1..N and with the unquantised latent.

Usage:
    python benchmarks/quantizer_ladder.py CHECKPOINT [--data data/demo-te/val] [--out FILE.json]

For every validation file (normalised as the codec does) it decodes the quantized latent with
the first n codebooks (n = 1..N) and the encoder's latent without any quantization, and reports
the mean mel distance of each, plus the latent's relative residual error ||z - q_n|| / ||z||.
If the unquantised latent decodes no better than n_q = N, the encoder/decoder (not the
quantizer) limit the quality, and more codebooks cannot lower the mel distance.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


@torch.no_grad()
def ladder(checkpoint: str, data: Path) -> dict:
    from telugu_codec.audio import load_audio
    from telugu_codec.metrics import mel_distance
    from telugu_codec.model.codec import Codec

    codec = Codec.load(checkpoint).eval()
    n_max = codec.max_n_q
    mel = {str(n): [] for n in range(1, n_max + 1)} | {"latent": []}
    err = {str(n): [] for n in range(1, n_max + 1)}
    files = sorted(p for p in data.iterdir() if p.suffix in (".wav", ".flac"))
    for path in files:
        x = torch.from_numpy(load_audio(path, codec.sample_rate).wav)[None, None]
        t = x.shape[-1]
        xn, gain = codec._normalize(x)
        z = codec.encoder(codec._pad(xn))
        target = (xn[..., :t] / gain).squeeze().numpy()
        outs = {"latent": z}
        for n in range(1, n_max + 1):
            q = codec.quantizer.decode(codec.quantizer.encode(z, n))
            outs[str(n)] = q
            err[str(n)].append(float((z - q).norm() / z.norm().clamp_min(1e-12)))
        for name, latent in outs.items():
            y = codec.decoder(latent)[..., :t] / gain
            mel[name].append(mel_distance(y.squeeze().numpy(), target, codec.sample_rate))
    return {
        "checkpoint": str(checkpoint),
        "files": len(files),
        "mel_distance": {k: float(np.mean(v)) for k, v in mel.items()},
        "latent_relative_error": {k: float(np.mean(v)) for k, v in err.items()},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("--data", default=str(ROOT / "data" / "demo-te" / "val"))
    p.add_argument("--out")
    args = p.parse_args()
    res = ladder(args.checkpoint, Path(args.data))
    text = json.dumps(res, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
