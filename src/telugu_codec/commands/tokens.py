"""`telugu-codec tokenize / detokenize / tokens-vocab / tokens-stats`: codec tokens for LMs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import CodecError
from . import command
from .codec import _check_output, _checkpoint, _notice


def _load_codec(checkpoint: str | None, device: str = "cpu", codec_hash: str | None = None):
    """The codec named by --checkpoint, else the shipped model that made `codec_hash`, else
    the default shipped model (said in one line)."""
    from ..model.codec import Codec

    if checkpoint is None and codec_hash:
        from ..pretrained import by_model_hash

        found = by_model_hash(codec_hash)
        if found is not None:
            _notice(f"using the pretrained {found} (the shipped model that made the tokens)")
            checkpoint = found
    name = _checkpoint(checkpoint, None)
    try:
        return Codec.load(name, device=device).remove_weight_norm(), name
    except (RuntimeError, AssertionError) as e:  # e.g. a CUDA device that is not there
        raise CodecError(f"cannot load {name} on device '{device}': {e}") from e


def _threads(n: int | None) -> None:
    if n is not None:
        if n < 1:
            raise CodecError(f"--threads must be at least 1, got {n}")
        import torch

        torch.set_num_threads(n)


# ------------------------------------------------------------------------------ tokenize
def _tokenize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "data",
        nargs="*",
        help="folders, manifests, corpus layouts, audio files, Parquet/Arrow datasets or tar "
        "shards (what `train --data` reads)",
    )
    p.add_argument("--out", required=True, help="output folder for the token shards")
    p.add_argument(
        "--checkpoint",
        help="codec file, checkpoint, run folder or pretrained name (default: te-small)",
    )
    p.add_argument("--n-q", type=int, help="codebooks (default all)")
    p.add_argument("--format", default="parquet", choices=("parquet", "wds"))
    p.add_argument(
        "--batch-seconds",
        type=float,
        default=60.0,
        help="padded audio per batch (items x longest); batches are bucketed by length",
    )
    p.add_argument("--shard-items", type=int, default=1000, help="items per shard")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--rank", type=int, help="this process's rank (default: $RANK or 0)")
    p.add_argument("--world-size", type=int, help="processes (default: $WORLD_SIZE or 1)")
    p.add_argument(
        "--merge",
        action="store_true",
        help="only write the merged index of OUT (after every rank finished)",
    )


@command(
    "tokenize",
    "encode a corpus into shards of codec tokens for language models (resumable)",
    _tokenize_args,
)
def cmd_tokenize(args: argparse.Namespace) -> int:
    from ..tokens.tokenize import env_rank, merge, tokenize

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.merge:
        if merge(args.out, log=log) is None:
            raise CodecError(f"{args.out} is not complete yet: rerun tokenize for the ranks left")
        return 0
    if not args.data:
        raise CodecError("no data given: tokenize DATA... --out DIR")
    rank, world = env_rank()
    rank = rank if args.rank is None else args.rank
    world = world if args.world_size is None else args.world_size
    _threads(args.threads)
    codec, name = _load_codec(args.checkpoint, args.device)
    r = tokenize(
        codec,
        args.data,
        args.out,
        n_q=args.n_q,
        fmt=args.format,
        batch_seconds=args.batch_seconds,
        shard_items=args.shard_items,
        rank=rank,
        world_size=world,
        log=log,
        checkpoint=str(name),
    )
    print(
        f"{args.out}: {r.shards_written} shards written, {r.shards_resumed} already done; "
        f"{r.rows} rows, {r.skipped} skipped, {r.hours:.3f} h at {r.hours_per_hour:.0f} h/h"
    )
    return 0


# ------------------------------------------------------------------------------ detokenize
def _detokenize_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("tokens", help="SHARD.parquet#ROW, SHARD.tar#ROW, or a .npy / .npz / .pt array")
    p.add_argument("output", help="audio file to write (.wav or .flac)")
    p.add_argument("--row", type=int, help="the row of a token shard")
    p.add_argument(
        "--checkpoint",
        help="codec (default: the shipped model that made a shard's tokens, else te-small)",
    )
    p.add_argument(
        "--repair",
        default="refuse",
        choices=("clamp", "drop", "refuse"),
        help="what to do with damaged tokens (out of range, pads, partial frames, extra "
        "codebooks): clip them, drop their frames, or refuse (default)",
    )
    p.add_argument("--vocab", help="vocab spec JSON: the tokens are LM ids made with it")
    p.add_argument(
        "--layout",
        default="flatten",
        choices=("flatten", "delay", "parallel"),
        help="layout of LM ids (with --vocab)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--force", action="store_true", help="overwrite an existing output")


@command("detokenize", "turn codec tokens (a shard row or an array) into audio", _detokenize_args)
def cmd_detokenize(args: argparse.Namespace) -> int:
    from ..audio import write_audio
    from ..tokens.detokenize import decode_tokens, load_tokens
    from ..tokens.sanitize import sanitize_codes, sanitize_ids
    from ..tokens.vocab import VocabSpec

    _check_output(Path(args.output), args.force)
    loaded = load_tokens(args.tokens, args.row)
    vocab = VocabSpec.load(args.vocab) if args.vocab else None
    codec_hash = loaded.codec_hash or (vocab.codec_hash if vocab else None)
    codec, _ = _load_codec(args.checkpoint, args.device, codec_hash)
    if codec_hash and codec.model_hash != codec_hash:
        raise CodecError(
            f"the tokens were made by codec {codec_hash}; {codec.model_hash} would decode them "
            "wrong: pass --checkpoint with that codec"
        )
    if vocab is not None:
        s = sanitize_ids(loaded.tokens, vocab, args.layout, args.repair, codec.max_n_q)
    else:
        s = sanitize_codes(
            loaded.tokens,
            codec.max_n_q,
            codec.num_codes,
            args.repair,
            pitch=loaded.pitch,
            has_pitch=codec.has_pitch,
        )
    for line in s.report():
        _notice(f"{loaded.label}: {line}")
    y = decode_tokens(codec, s.codes, s.pitch)
    write_audio(args.output, y, codec.sample_rate)
    print(
        f"{args.output}: {len(y) / codec.sample_rate:.2f} s at {codec.sample_rate} Hz from "
        f"{s.codes.shape[1]} frames x {s.codes.shape[0]} codebooks"
    )
    return 0


# ------------------------------------------------------------------------------ tokens-vocab
def _vocab_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", help="codec (default: te-small)")
    p.add_argument("--n-q", type=int, help="codebooks (default all)")
    p.add_argument("--base", type=int, default=0, help="first id (the text vocab's size)")
    p.add_argument("--out", help="JSON file to write (default: stdout)")
    p.add_argument("--force", action="store_true")


@command("tokens-vocab", "write the LM vocab spec (stream offsets, special tokens)", _vocab_args)
def cmd_tokens_vocab(args: argparse.Namespace) -> int:
    from ..checkpoint import atomic_write_text
    from ..tokens.vocab import vocab_for

    codec, _ = _load_codec(args.checkpoint)
    n_q = codec.check_n_q(args.n_q)
    if args.base < 0:
        raise CodecError(f"--base must be >= 0, got {args.base}")
    spec = vocab_for(
        n_q,
        codec.codebook_size,
        255 if codec.has_pitch else None,
        args.base,
        codec.model_hash,
        codec.frame_rate,
    )
    if args.out is None:
        print(spec.to_json())
        return 0
    _check_output(Path(args.out), args.force)
    atomic_write_text(Path(args.out), spec.to_json())
    print(f"{args.out}: {spec.streams} streams, ids {spec.base}..{spec.size - 1}")
    return 0


# ------------------------------------------------------------------------------ tokens-stats
def _stats_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folder", help="a tokenize output folder (or one shard)")
    p.add_argument("--max-rows", type=int, help="read at most this many rows")
    p.add_argument(
        "--invariance",
        type=int,
        default=8,
        metavar="N",
        help="re-encode N source files single and batched (0: skip)",
    )
    p.add_argument("--checkpoint", help="codec for the invariance check (default: the run's)")
    p.add_argument("--json", help="also write the statistics to this JSON file")


@command("tokens-stats", "token rates, codebook usage and entropies, invariance", _stats_args)
def cmd_tokens_stats(args: argparse.Namespace) -> int:
    from ..checkpoint import atomic_write_text
    from ..tokens.stats import invariance, read_folder, token_stats
    from ..tokens.tokenize import PLAN_NAME, token_files

    meta, rows = read_folder(token_files(args.folder), args.max_rows)
    stats = token_stats(meta, rows)
    plan_file = Path(args.folder) / PLAN_NAME
    if args.invariance > 0 and plan_file.is_file():
        from ..tokens.sources import list_items

        plan = json.loads(plan_file.read_text(encoding="utf-8"))
        codec, _ = _load_codec(args.checkpoint or plan.get("checkpoint") or None)
        if codec.model_hash != meta.codec_hash:
            raise CodecError(
                f"the tokens were made by codec {meta.codec_hash}, the checkpoint is "
                f"{codec.model_hash}: pass --checkpoint with the tokens' codec"
            )
        stored = {r.path: r.codes for r in rows}
        try:  # the plan's data paths are as tokenize was given them (maybe relative)
            by_key = {it.key: it for it in list_items(plan["data"])}
        except CodecError as e:
            _notice(f"warning: no invariance check: the source data is not at hand ({e})")
            by_key = {}
        sample = [by_key[r.path] for r in rows if r.path in by_key][: args.invariance]
        if sample:
            stats.invariance = invariance(codec, sample, stored, meta.n_q)
    for line in stats.lines():
        print(line)
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(stats.to_dict(), indent=1))
    return 0
