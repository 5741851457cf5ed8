"""Fuzz `.tcc` files in and out of process and count what happens.

In process, 10,000+ damaged v3 files, half of them with a pitch channel (and as many v1 files,
the old format, for comparison): every truncation length of some files, random bit flips
anywhere, every header field and the first / final packets' fields set to edge values, inserted
and deleted bytes, garbage after a valid prefix. Through the CLI (`decode` in process via
`cli.main`, plus some as subprocesses): damaged files of a real encoding, decoded with the tiny
model that wrote them: a causal streaming model, then a source-filter model with a pitch channel.

Outcomes: `error` (a one-line BitstreamError / CodecError), `exact` (decodes to the original),
`prefix` (a cut stream: an exact prefix of the original's packets, with a warning),
`unchanged` (the mutation left the bytes as they were, e.g. a field set to its own value). Anything
else is a failure: `traceback` (another exception), `different` (decodes to something else),
`multiline` (an error message of several lines), `nan` (non-finite audio), `long` (more audio
than the original).

    .venv/bin/python benchmarks/bench_bitstream_fuzz.py                 # ~2-4 minutes
    .venv/bin/python benchmarks/bench_bitstream_fuzz.py --cases 20000 --cli 500 --subprocess 50
    .venv/bin/python benchmarks/bench_bitstream_fuzz.py --cases 200 --cli 10 --cli-pitch 10 \
        --subprocess 1                                                  # a smoke run, ~1 minute
"""

from __future__ import annotations

import argparse
import collections
import io
import os
import subprocess
import sys
import tempfile
import time
import warnings
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np

from telugu_codec.bitstream import EncodedAudio, TruncatedWarning, from_bytes, to_bytes
from telugu_codec.bitstream_v1 import to_bytes_v1
from telugu_codec.errors import CodecError

EDGES = [0, 1, 2, 3, 0x7F, 0x80, 0xFE, 0xFF]


def random_enc(rng: np.random.Generator) -> EncodedAudio:
    n_q = int(rng.integers(1, 9))
    k = int(rng.choice([2, 3, 64, 1000, 1024, 65536]))
    frames = int(rng.integers(1, 120))
    hop = int(rng.choice([80, 320, 640]))
    norm = str(rng.choice(["none", "clip", "block"]))
    block = int(rng.integers(1, 30)) if norm == "block" else 0
    return EncodedAudio(
        codes=rng.integers(0, k, (n_q, frames)),
        sample_rate=16000,
        length=frames * hop - int(rng.integers(0, hop)),
        frame_rate=16000 / hop,
        codebook_size=k,
        gain=10 ** (int(rng.integers(-80, 80)) / 40) if norm == "clip" else 1.0,
        model_hash=f"{int(rng.integers(0, 2**62)):016x}",
        normalization=norm,
        block_frames=block,
        block_gains=rng.integers(-80, 81, -(-frames // block)) if block else None,
        pitch=rng.integers(0, 256, frames) if rng.random() < 0.5 else None,
    )


def mutations(data: bytes, rng: np.random.Generator, version: int):
    """Yield (kind, damaged bytes) for one file."""
    n = len(data)
    for _ in range(3):
        yield "truncate", data[: int(rng.integers(0, n))]
    for _ in range(4):
        bad = bytearray(data)
        for _ in range(int(rng.integers(1, 9))):
            bad[int(rng.integers(0, n))] ^= 1 << int(rng.integers(0, 8))
        yield "bitflip", bytes(bad)
    fields = range(4, 16) if version >= 2 else range(4, min(n, 200))
    for _ in range(4):
        bad = bytearray(data)
        i = int(rng.choice(list(fields)))
        bad[i] = int(rng.choice(EDGES)) if rng.random() < 0.7 else int(rng.integers(0, 256))
        yield "header", bytes(bad)
    if version >= 2:
        for off in (16, 17, 18):  # the first packet's frame count, flags, first gain/pitch/code
            bad = bytearray(data)
            bad[off] = int(rng.choice(EDGES))
            yield "packet", bytes(bad)
    else:  # v1: rewrite a JSON value to an edge value
        yield "header", _v1_edit(data, rng)
    i = int(rng.integers(0, n))
    yield "insert", data[:i] + bytes([int(rng.integers(0, 256))]) + data[i:]
    yield "delete", data[:i] + data[i + 1 :]
    yield "garbage", data[: int(rng.integers(5, n))] + rng.bytes(int(rng.integers(1, 64)))


def _v1_edit(data: bytes, rng: np.random.Generator) -> bytes:
    import json
    import struct

    (hlen,) = struct.unpack_from(">H", data, 5)
    header = json.loads(data[7 : 7 + hlen])
    key = str(rng.choice(sorted(header)))
    values = [0, -1, -100, 10**12, 1e300, float("nan"), float("inf"), None, "x", True, 1.5]
    header[key] = values[int(rng.integers(0, len(values)))]
    h = json.dumps(header).encode()
    return data[:5] + struct.pack(">H", len(h)) + h + data[7 + hlen :]


def same(a: EncodedAudio, b: EncodedAudio) -> bool:
    ok = np.array_equal(a.codes, b.codes) and a.length == b.length
    ok = ok and a.normalization == b.normalization and abs(a.gain - b.gain) <= 1e-9 * a.gain
    if a.normalization == "block":
        ok = ok and np.array_equal(a.block_gains, b.block_gains)
    if a.pitch is not None or b.pitch is not None:
        ok = ok and a.pitch is not None and b.pitch is not None
        ok = ok and np.array_equal(a.pitch, b.pitch)
    return ok


def classify(data: bytes, enc: EncodedAudio, original: bytes) -> str:
    if data == original:
        return "unchanged"  # e.g. a field set to the value it had: counted, not judged
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            back = from_bytes(data)
        except CodecError as e:
            return "multiline" if "\n" in str(e) else "error"
        except Exception:
            return "traceback"
    if not np.isfinite(back.gain) or back.length > back.frames * back.hop_length:
        return "different"
    if back.complete:
        return "exact" if same(enc, back) else "different"
    warned = any(issubclass(w.category, TruncatedWarning) for w in caught)
    prefix = np.array_equal(back.codes, enc.codes[:, : back.frames])
    if enc.pitch is None or back.pitch is None:
        prefix = prefix and enc.pitch is None and back.pitch is None
    else:
        prefix = prefix and np.array_equal(back.pitch, enc.pitch[: back.frames])
    return "prefix" if warned and prefix else "different"


def fuzz_files(cases: int, version: int, seed: int) -> collections.Counter:
    rng = np.random.default_rng(seed)
    counts: collections.Counter = collections.Counter()
    done = 0
    exhaustive = 0
    while done < cases:
        enc = random_enc(rng)
        if version == 1:  # v1 has no gain blocks and no pitch channel
            enc.normalization, enc.block_gains, enc.block_frames = "clip", None, 0
            enc.gain, enc.pitch = abs(enc.gain) or 1.0, None
        data = to_bytes(enc, int(rng.integers(1, 60))) if version == 3 else to_bytes_v1(enc)
        if exhaustive < 3 and len(data) < 600:  # every truncation length of a few files
            exhaustive += 1
            for cut in range(len(data)):
                counts[("truncate", classify(data[:cut], enc, data))] += 1
                done += 1
        for kind, bad in mutations(data, rng, version):
            counts[(kind, classify(bad, enc, data))] += 1
            done += 1
    return counts


def table(counts: collections.Counter, title: str) -> str:
    kinds = sorted({k for k, _ in counts})
    outcomes = ["error", "exact", "prefix", "unchanged", "traceback", "different", "multiline"]
    outcomes += ["nan", "long"]
    lines = [f"{title}", "", "| mutation | " + " | ".join(outcomes) + " | total |"]
    lines.append("|---" * (len(outcomes) + 2) + "|")
    for k in kinds + ["all"]:
        row = [
            sum(v for (kk, o), v in counts.items() if o == out and (k == "all" or kk == k))
            for out in outcomes
        ]
        lines.append(f"| {k} | " + " | ".join(map(str, row)) + f" | {sum(row)} |")
    return "\n".join(lines)


def fuzz_cli(n: int, n_sub: int, seed: int, pitch: bool = False) -> collections.Counter:
    """Damaged files of a real encoding through `telugu-codec decode`: of a causal streaming
    model, or (`pitch`) of a source-filter model whose packets carry a pitch channel."""
    import soundfile as sf

    from telugu_codec.cli import main

    sys.path.insert(0, str(Path(__file__).parents[1]))
    from tests.conftest import TINY_OVERRIDES, speechlike
    from tests.test_source_filter import SF

    rng = np.random.default_rng(seed)
    counts: collections.Counter = collections.Counter()
    tmp = Path(tempfile.mkdtemp(prefix="tcc-fuzz-"))
    model = SF if pitch else ["model.causal=true", "model.normalization=block"]
    model = model + ["model.norm_block_frames=5"]
    sink = io.StringIO()
    with redirect_stdout(sink), redirect_stderr(sink):
        assert main(["init", "--out", str(tmp / "ck"), *TINY_OVERRIDES, *model]) == 0
        sf.write(tmp / "in.wav", speechlike(2.3), 16000)
        assert (
            main(
                [
                    "encode",
                    str(tmp / "in.wav"),
                    str(tmp / "a.tcc"),
                    "--checkpoint",
                    str(tmp / "ck"),
                    "--n-q",
                    "3",
                ]
            )
            == 0
        )
        assert (
            main(
                [
                    "decode",
                    str(tmp / "a.tcc"),
                    str(tmp / "ref.wav"),
                    "--checkpoint",
                    str(tmp / "ck"),
                ]
            )
            == 0
        )
    data = (tmp / "a.tcc").read_bytes()
    ref, _ = sf.read(tmp / "ref.wav", dtype="float32")
    margin = 0  # a cut stream of a non-causal model differs where its right context is missing
    if pitch:
        from telugu_codec.model.codec import Codec
        from telugu_codec.model.streaming import receptive_field

        codec = Codec.load(tmp / "ck")
        margin = receptive_field(codec)["decoder_right"] * codec.hop_length
    bads = [_one(data, rng) for _ in range(n)]
    for i, (kind, bad) in enumerate(bads):
        if bad == data:
            counts[(kind, "unchanged")] += 1
            continue
        f = tmp / f"b{i}.tcc"
        f.write_bytes(bad)
        out = tmp / f"o{i}.wav"
        sink = io.StringIO()
        try:
            with redirect_stdout(sink), redirect_stderr(sink):
                code = main(["decode", str(f), str(out), "--checkpoint", str(tmp / "ck")])
        except Exception:
            counts[(kind, "traceback")] += 1
            continue
        err = [ln for ln in sink.getvalue().splitlines() if ln.startswith("error:")]
        counts[(kind, _cli_outcome(code, err, out, ref, sink.getvalue(), margin))] += 1
        out.unlink(missing_ok=True)
    for i, (_kind, bad) in enumerate(bads[:n_sub]):
        if bad == data:
            counts[("subprocess", "unchanged")] += 1
            continue
        f = tmp / f"s{i}.tcc"
        f.write_bytes(bad)
        out = tmp / f"s{i}.wav"
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "telugu_codec",
                "decode",
                str(f),
                str(out),
                "--checkpoint",
                str(tmp / "ck"),
            ],
            capture_output=True,
            text=True,
        )
        if "Traceback" in proc.stderr:
            counts[("subprocess", "traceback")] += 1
            continue
        err = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        result = _cli_outcome(proc.returncode, err, out, ref, proc.stderr, margin)
        counts[("subprocess", result)] += 1
    return counts


def _one(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    """One random mutation of `data`."""
    muts = list(mutations(data, rng, 3))
    return muts[int(rng.integers(0, len(muts)))]


def _cli_outcome(
    code: int, err: list[str], out: Path, ref: np.ndarray, text: str, margin: int = 0
) -> str:
    """`margin`: samples before a cut stream's end that may differ (a non-causal decoder's
    right context, which the cut removed)."""
    import soundfile as sf

    if code == 2:
        lines = [ln for ln in text.splitlines() if ln.strip()]
        return "error" if len(err) == 1 and len(lines) == 1 else "multiline"
    if code != 0 or not out.exists():
        return "traceback"
    y, _ = sf.read(out, dtype="float32")
    if not np.isfinite(y).all():
        return "nan"
    if len(y) > len(ref):
        return "long"
    if len(y) == len(ref):
        return "exact" if np.abs(y - ref).max() < 1e-5 else "different"
    keep = max(0, len(y) - margin)
    ok = "warning:" in text and np.abs(y[:keep] - ref[:keep]).max(initial=0) < 1e-5
    return "prefix" if ok else "different"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10000, help="in-process cases per version")
    ap.add_argument("--cli", type=int, default=300, help="damaged files through cli.main")
    ap.add_argument(
        "--cli-pitch", type=int, default=100, help="damaged pitch-model files through cli.main"
    )
    ap.add_argument("--subprocess", type=int, default=30, help="of those, also as processes")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"load average before: {os.getloadavg()}")
    for version in (3, 1):
        t = time.perf_counter()
        counts = fuzz_files(args.cases, version, args.seed)
        dt = time.perf_counter() - t
        print(table(counts, f"\n### v{version} files in process ({dt:.1f} s)"))
    for pitch, n in ((False, args.cli), (True, args.cli_pitch)):
        t = time.perf_counter()
        counts = fuzz_cli(n, args.subprocess, args.seed, pitch)
        dt = time.perf_counter() - t
        what = "a pitch model's v3 files" if pitch else "v3 files"
        print(table(counts, f"\n### {what} through `telugu-codec decode` ({dt:.1f} s)"))
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
