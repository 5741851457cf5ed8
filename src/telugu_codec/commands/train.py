"""`telugu-codec train`: a thin wrapper over `Trainer`."""

from __future__ import annotations

import argparse

from ..errors import TrainingError
from . import command


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config", help="preset (tiny, seed, dac, ...) or YAML; default: default, or the run's"
    )
    p.add_argument(
        "--data",
        action="append",
        metavar="PATH[@WEIGHT]",
        help="training audio: folder, manifest, corpus layout, Parquet/Arrow dataset or tar "
        "shards ('shards/train-{000000..000099}.tar'); give it several times to mix corpora, "
        "e.g. --data /data/te@0.7 --data /data/hi@0.3 (default: data.sources of the config)",
    )
    p.add_argument("--out", required=True, help="run folder (checkpoints, logs, metrics)")
    p.add_argument("--val-data", help="validation audio (default: a held-out split of --data)")
    p.add_argument("--max-steps", type=int, help="stop after this many steps")
    p.add_argument("--minutes", type=float, help="stop after this much training time")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument(
        "--init-from",
        metavar="CKPT_OR_RUN",
        help="fine-tune: start from this codec file, checkpoint or run (codec and discriminator "
        "weights; new optimizers, step 0); without --config its config is the base",
    )
    p.add_argument(
        "--freeze",
        metavar="PARTS",
        help="keep these parts as loaded, e.g. encoder,quantizer (= train.freeze=[...])",
    )
    p.add_argument("--cost-per-hour", type=float, help="machine price per hour, for cost logging")
    p.add_argument("--currency", default="INR", help="currency label for --cost-per-hour")
    p.add_argument("--device", help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("overrides", nargs="*", help="dotted config overrides, e.g. train.lr=3e-4")


@command("train", "train a codec (GAN recipe from the config) with health checks", _train_args)
def cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..config import load_config
    from ..train.finetune import source_config
    from ..train.runfolder import resume_config
    from ..train.trainer import Trainer

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    run_dir = Path(args.out)
    overrides = list(args.overrides)
    if args.init_from:
        overrides.append(f"train.init_from={args.init_from}")
    if args.freeze:
        overrides.append(f"train.freeze=[{args.freeze}]")
    if args.resume:  # the run's own config, changed only by (recorded) overrides
        cfg = resume_config(run_dir, args.config, overrides)
    elif args.init_from and args.config is None:
        cfg = source_config(args.init_from, overrides)  # the checkpoint's own config
    else:
        cfg = load_config(args.config or "default", overrides)
    trainer = Trainer(
        cfg,
        run_dir,
        args.data,
        val_data=args.val_data,
        resume=args.resume,
        device=args.device,
        cost_per_hour=args.cost_per_hour,
        currency=args.currency,
        time_budget_s=None if args.minutes is None else args.minutes * 60,
        progress=not args.no_progress,
    )
    result = trainer.train(args.max_steps)
    if not trainer.dist.is_main:
        return 0
    summary = (
        f"{result.reason} at step {result.step}: {result.wall_seconds / 60:.1f} min, "
        f"{result.audio_hours:.3f} h of audio"
        + (f", cost {result.cost:.2f} {args.currency}" if result.cost is not None else "")
        + f"; checkpoint {result.last_checkpoint}"
    )
    if len(result.data_hours) > 1:
        summary += "; seen: " + ", ".join(f"{k} {v:.3f} h" for k, v in result.data_hours.items())
    if result.reason in ("guard", "nonfinite"):
        warnings = [e["message"] for e in result.events if e.get("event") == "warning"]
        last = warnings[-1] if warnings else ""
        raise TrainingError(f"training stopped by the collapse guard ({last}); {summary}")
    if result.reason == "data":
        raise TrainingError(f"{result.events[-1]['message']}; {summary}")
    print(summary)
    return 0
