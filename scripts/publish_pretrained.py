"""Publish a trained checkpoint as a shipped pretrained model (`telugu_codec.pretrained`).

    python scripts/publish_pretrained.py runs/te-small/checkpoints/step_00009000 te-small \
        --description "..." --command "telugu-codec train ..." [--latency-ms 20]

Writes `src/telugu_codec/pretrained/NAME.safetensors` (the codec, its metadata naming the model
and its training), `NAME.discriminator.safetensors` when the checkpoint has discriminators, and
the model's entry in `models.json` with the SHA-256 of each file. The training summary (steps,
wall time, CPU threads, audio seen) is read from the run's `metrics.jsonl` and `config.yaml`.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import yaml

from telugu_codec.checkpoint import read_json
from telugu_codec.model.codec import Codec
from telugu_codec.pretrained import PACKAGE_DIR, REGISTRY_FILE, sha256_file


def training_summary(ckpt: Path, threads: int, command: str) -> dict:
    """Steps, hours and data of the run that wrote checkpoint folder `ckpt`."""
    state = read_json(ckpt / "state.json")
    run = ckpt.parents[1]
    hours = float(state.get("train_seconds", 0.0)) / 3600
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    d_warmup = int(cfg["train"].get("d_warmup_steps", 0))
    return {
        "steps": int(state["step"]),
        "gan_steps": max(0, int(state["step"]) - d_warmup),
        "rollbacks": int(state.get("rollbacks", 0)),
        "wall_hours": round(hours, 2),
        "cpu_threads": threads,
        "cpu_hours": round(hours * threads, 2),
        "audio_hours_seen": round(float(state.get("audio_seconds", 0.0)) / 3600, 2),
        "run": str(run.name),
        "command": command,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path, help="a training checkpoint folder (step_...)")
    ap.add_argument("name")
    ap.add_argument("--description", required=True)
    ap.add_argument("--command", required=True, help="the command that reproduces the run")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads the run used")
    ap.add_argument("--latency-ms", type=float, help="algorithmic latency (streaming models)")
    ap.add_argument("--data", default="data/te-2voice (train split)")
    ap.add_argument("--out", type=Path, default=PACKAGE_DIR)
    args = ap.parse_args()

    codec = Codec.load(args.checkpoint)
    training = training_summary(args.checkpoint, args.threads, args.command) | {"data": args.data}
    file = args.out / f"{args.name}.safetensors"
    codec.save(file, extra_meta={"pretrained": args.name, "training": training})
    entry = {
        "name": args.name,
        "file": file.name,
        "sha256": sha256_file(file),
        "model_hash": codec.model_hash,
        "preset": codec.config.name,
        "causal": bool(codec.config.model.causal),
        "description": args.description,
        "parameters": codec.num_parameters(),
        "frame_rate": codec.frame_rate,
        "kbps": [round(codec.bitrate(n) / 1000, 3) for n in range(1, codec.max_n_q + 1)],
        "latency_ms": args.latency_ms,
        "training": training,
    }
    disc = args.checkpoint / "discriminator.safetensors"
    if disc.exists():
        target = args.out / f"{args.name}.discriminator.safetensors"
        shutil.copyfile(disc, target)
        entry |= {"discriminator": target.name, "discriminator_sha256": sha256_file(target)}
    registry_file = args.out / REGISTRY_FILE
    models = json.loads(registry_file.read_text())["models"] if registry_file.exists() else []
    models = sorted(
        [m for m in models if m["name"] != args.name] + [entry], key=lambda m: m["name"]
    )
    registry_file.write_text(json.dumps({"models": models}, indent=2) + "\n")
    for f in args.out.glob(f"{args.name}*.safetensors"):
        f.chmod(0o644)  # package data, readable by every user of the install
    size = file.stat().st_size / 1e6
    print(f"{file}: {size:.1f} MB, model hash {codec.model_hash}, sha256 {entry['sha256'][:16]}")


if __name__ == "__main__":
    main()
