"""What LM builders measure on a codec's tokens (issue 25): phone discriminability of codebook
1, codebook usage and entropy, and reconstruction (PESQ-WB, STOI) at a number of codebooks.

Phone probe: each frame's codebook-1 id predicts a phone; the classifier is fitted on the
frames of one set of files and scored on another (split by file, so no utterance is in both).
It maps every id to the phone it co-occurred with most often in the fitting files (ids never
seen there -> the most frequent phone). On one-hot ids this is what a linear (softmax) probe
converges to, and what a 1-NN on ids with majority tie-breaking gives. The chance level is the
most frequent phone's share of the test frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..audio import load_audio
from ..bitstream import EncodedAudio
from ..data.teachers import IGNORE, Teacher, frame_centres
from ..metrics import pesq_wb, stoi
from ..model.codec import Codec


@dataclass
class ProbeResult:
    """Accuracy of the codebook-1 id -> phone probe on held-out files."""

    accuracy: float  # share of labelled test frames whose phone the probe predicts
    chance: float  # share of the most frequent (fitting-set) phone among the test frames
    train_frames: int
    test_frames: int
    unseen_ids: float  # share of test frames whose id never occurred in the fitting files


@dataclass
class CodeStats:
    """Usage and entropy of one codebook over a set of frames."""

    usage: float  # share of the K codes used at least once
    entropy_bits: float  # entropy of the code distribution (log2 K at most)
    perplexity: float  # 2 ** entropy_bits


@dataclass
class TokenReport:
    """One codec's token measures (see the module docstring)."""

    frame_rate: float
    n_q: int
    bitrate: float  # bits/s at n_q codebooks, the pitch channel included
    probe: ProbeResult
    codebooks: list[CodeStats] = field(default_factory=list)
    pesq_wb: float | None = None
    stoi: float | None = None


def phone_probe(
    train_ids: Sequence[np.ndarray],
    train_phones: Sequence[np.ndarray],
    test_ids: Sequence[np.ndarray],
    test_phones: Sequence[np.ndarray],
    num_codes: int,
    num_phones: int,
) -> ProbeResult:
    """Fit the id -> phone majority probe on the train files, score it on the test files.

    Args:
        train_ids / test_ids: per file, (F,) int64 codebook-1 ids in [0, num_codes).
        train_phones / test_phones: per file, (F,) int64 phone ids in [0, num_phones) or
            `IGNORE` (frames left out).
    """

    def stack(ids: Sequence[np.ndarray], ph: Sequence[np.ndarray]) -> tuple[np.ndarray, ...]:
        a = np.concatenate([np.asarray(x, np.int64) for x in ids]) if ids else np.zeros(0, int)
        b = np.concatenate([np.asarray(x, np.int64) for x in ph]) if ph else np.zeros(0, int)
        keep = b != IGNORE
        return a[keep], b[keep]

    xi, yi = stack(train_ids, train_phones)
    xt, yt = stack(test_ids, test_phones)
    counts = np.zeros((num_codes, num_phones), np.int64)
    np.add.at(counts, (xi, yi), 1)
    prior = counts.sum(axis=0)
    majority = int(prior.argmax()) if prior.sum() else 0
    seen = counts.sum(axis=1) > 0
    table = np.where(seen, counts.argmax(axis=1), majority)
    pred = table[xt]
    n = max(len(yt), 1)
    return ProbeResult(
        accuracy=float((pred == yt).sum() / n),
        chance=float((yt == majority).sum() / n),
        train_frames=int(len(yi)),
        test_frames=int(len(yt)),
        unseen_ids=float((~seen[xt]).sum() / n),
    )


def code_stats(codes: np.ndarray, num_codes: int) -> CodeStats:
    """Usage and entropy of (N,) codes of a codebook of `num_codes`."""
    counts = np.bincount(np.asarray(codes, np.int64).ravel(), minlength=num_codes)[:num_codes]
    p = counts / max(counts.sum(), 1)
    nz = p[p > 0]
    h = float(-(nz * np.log2(nz)).sum())
    return CodeStats(float((counts > 0).mean()), h, 2.0**h)


@torch.inference_mode()
def encode_file(codec: Codec, path: str, n_q: int) -> tuple[EncodedAudio, np.ndarray]:
    """A file encoded at `n_q` codebooks, and its (T,) audio at the codec's rate."""
    audio = load_audio(path, codec.sample_rate).wav
    return codec.encode(audio, codec.sample_rate, n_q=n_q), audio


def file_phones(teacher: Teacher, path: str, frames: int, codec: Codec) -> np.ndarray:
    """(frames,) phone ids of `path` at the centres of the codec's frames (IGNORE outside)."""
    times = frame_centres(0, frames, codec.hop_length, codec.sample_rate)
    ids, valid = teacher.targets(path, times)
    return np.where(valid, ids, IGNORE)


def evaluate_tokens(
    codec: Codec,
    teacher: Teacher,
    train_files: Sequence[str],
    test_files: Sequence[str],
    n_q: int,
    quality_files: int = 30,
    log: Callable[[str], None] = print,
) -> TokenReport:
    """The token measures of `codec` at `n_q` codebooks.

    Args:
        teacher: a phones teacher holding the segments of every file (`data.teachers`).
        train_files / test_files: absolute audio paths; the probe is fitted on the first and
            scored on the second; codebook statistics and quality use `test_files`.
        quality_files: PESQ-WB / STOI on the first this many test files (they are slow).
    """
    if teacher.kind != "phones":
        raise ValueError("the phone probe needs a phones teacher")
    ids: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    phones: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    all_codes: list[np.ndarray] = []
    pesqs, stois = [], []
    for split, files in (("train", train_files), ("test", test_files)):
        for k, path in enumerate(files):
            enc, audio = encode_file(codec, path, n_q)
            codes = np.asarray(enc.codes)
            ids[split].append(codes[0])
            phones[split].append(file_phones(teacher, path, codes.shape[1], codec))
            if split == "test":
                all_codes.append(codes)
                if k < quality_files:
                    out = codec.decode(enc).numpy()
                    sr = codec.sample_rate
                    p, s = pesq_wb(out, audio, sr), stoi(out, audio, sr)
                    if p is not None:
                        pesqs.append(p)
                    if s is not None:
                        stois.append(s)
        log(f"  encoded {len(files)} {split} files")
    probe = phone_probe(
        ids["train"], phones["train"], ids["test"], phones["test"], codec.num_codes, teacher.dim
    )
    stacked = np.concatenate(all_codes, axis=1) if all_codes else np.zeros((n_q, 0), np.int64)
    return TokenReport(
        frame_rate=codec.frame_rate,
        n_q=n_q,
        bitrate=codec.bitrate(n_q),
        probe=probe,
        codebooks=[code_stats(stacked[q], codec.num_codes) for q in range(n_q)],
        pesq_wb=float(np.mean(pesqs)) if pesqs else None,
        stoi=float(np.mean(stois)) if stois else None,
    )


def max_entropy_bits(num_codes: int) -> float:
    return math.log2(num_codes)
