"""CPU speed of the codec: encode and decode real-time factors, next to EnCodec's architecture.

RTF = seconds of compute per second of audio (lower is faster); "x real time" = 1 / RTF of
encode + decode together. Our models run the inference path the CLI uses: weight norm folded
(`Codec.remove_weight_norm`), `torch.inference_mode()`, `Codec.encode_codes` / `decode_codes`.
EnCodec's 24 kHz model is built with random weights (no download) and timed at 6 kbps in the
same run, so the ratio column does not depend on how busy the machine was.

    .venv/bin/python benchmarks/bench_codec_speed.py                    # default + tiny, 1 thread
    .venv/bin/python benchmarks/bench_codec_speed.py --threads 2 --seconds 30
    .venv/bin/python benchmarks/bench_codec_speed.py --presets default --set model.patch_size=1

EnCodec needs `pip install --no-deps encodec einops` (not a project dependency); without it
the EnCodec row is skipped. Its package imports torchaudio at import time for file I/O only;
where torchaudio cannot be imported, a stub module stands in for it.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass

import torch

from telugu_codec.config import load_config
from telugu_codec.model.codec import Codec, build_codec


@dataclass
class Row:
    model: str
    params_m: float
    sample_rate: int
    kbps: float
    n_q: int
    encode_rtf: float
    decode_rtf: float

    @property
    def total_rtf(self) -> float:
        return self.encode_rtf + self.decode_rtf


def _time(fn: Callable[[], object], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def _stat(times: list[float], how: str) -> float:
    return min(times) if how == "min" else statistics.median(times)


def prepare_codec(preset: str, overrides: list[str], compile_: bool = False) -> Codec:
    """A randomly initialised codec in its inference form (codebooks filled, weight norm off)."""
    codec = build_codec(load_config(preset, overrides)).eval()
    with torch.no_grad():
        for cb in codec.quantizer.stages:  # k-means init would set these; any values time alike
            if hasattr(cb, "embed"):
                cb.embed.normal_()
                cb.inited.fill_(True)
    codec.remove_weight_norm()
    if compile_:
        codec.encoder = torch.compile(codec.encoder, dynamic=False)
        codec.decoder = torch.compile(codec.decoder, dynamic=False)
    return codec


def bench_codec(
    codec: Codec,
    name: str,
    seconds: float,
    n_qs: list[int],
    repeats: int,
    warmup: int,
    stat: str,
) -> list[Row]:
    """Encode and decode `seconds` of noise at each number of codebooks."""
    g = torch.Generator().manual_seed(0)
    wav = torch.randn(1, 1, int(seconds * codec.sample_rate), generator=g) * 0.1
    rows = []
    with torch.inference_mode():
        for n_q in n_qs:
            codes, gain = codec.encode_codes(wav, n_q)
            enc = _time(lambda n=n_q: codec.encode_codes(wav, n), repeats, warmup)
            dec = _time(
                lambda c=codes, g=gain: codec.decode_codes(c, wav.shape[-1], g), repeats, warmup
            )
            rows.append(
                Row(
                    name,
                    codec.num_parameters() / 1e6,
                    codec.sample_rate,
                    codec.bitrate(n_q) / 1000,
                    n_q,
                    _stat(enc, stat) / seconds,
                    _stat(dec, stat) / seconds,
                )
            )
    return rows


def import_encodec() -> types.ModuleType | None:
    """`import encodec`, with a stub for torchaudio when the real one cannot be imported."""
    try:
        import torchaudio  # noqa: F401
    except Exception:  # missing, or a build that does not match this torch
        for key in [k for k in sys.modules if k == "torchaudio" or k.startswith("torchaudio.")]:
            del sys.modules[key]
        stub = types.ModuleType("torchaudio")
        stub.transforms = types.ModuleType("torchaudio.transforms")  # only file I/O uses it
        sys.modules["torchaudio"] = stub
        sys.modules["torchaudio.transforms"] = stub.transforms
    try:
        import encodec
    except ImportError:
        return None
    return encodec


def bench_encodec(seconds: float, repeats: int, warmup: int, stat: str) -> Row | None:
    """EnCodec 24 kHz architecture, random weights, 6 kbps, weight norm removed."""
    encodec = import_encodec()
    if encodec is None:
        print("(encodec not installed: pip install --no-deps encodec einops; row skipped)")
        return None
    torch.manual_seed(0)
    model = encodec.EncodecModel.encodec_model_24khz(pretrained=False).eval()
    model.set_target_bandwidth(6.0)
    for module in model.modules():  # the same folding our codec gets
        if hasattr(module, "weight_g"):
            torch.nn.utils.remove_weight_norm(module)
    sr = model.sample_rate
    wav = torch.randn(1, 1, int(seconds * sr), generator=torch.Generator().manual_seed(0)) * 0.1
    with torch.inference_mode():
        frames = model.encode(wav)
        enc = _time(lambda: model.encode(wav), repeats, warmup)
        dec = _time(lambda: model.decode(frames), repeats, warmup)
    n_q = int(frames[0][0].shape[1])
    params = sum(p.numel() for p in model.parameters()) / 1e6
    return Row(
        "EnCodec 24 kHz",
        params,
        sr,
        6.0,
        n_q,
        _stat(enc, stat) / seconds,
        _stat(dec, stat) / seconds,
    )


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def markdown(rows: list[Row], reference: Row | None) -> str:
    head = (
        "| model | params (M) | rate (Hz) | kbps | n_q | encode RTF | decode RTF | enc+dec RTF "
        "| x real time | speed vs EnCodec |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows + ([reference] if reference else []):
        ratio = f"{reference.total_rtf / r.total_rtf:.2f}x" if reference else "-"
        lines.append(
            f"| {r.model} | {r.params_m:.2f} | {r.sample_rate} | {r.kbps:g} | {r.n_q} "
            f"| {r.encode_rtf:.4f} | {r.decode_rtf:.4f} | {r.total_rtf:.4f} "
            f"| {1 / r.total_rtf:.1f} | {ratio} |"
        )
    return head + "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    p.add_argument("--seconds", type=float, default=10.0, help="audio length per call")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    p.add_argument("--stat", choices=("median", "min"), default="median")
    p.add_argument("--presets", nargs="+", default=["default", "tiny"])
    p.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides")
    p.add_argument("--no-encodec", action="store_true", help="skip the EnCodec reference")
    p.add_argument(
        "--compile", action="store_true", help="torch.compile encoder/decoder (optional)"
    )
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    rows: list[Row] = []
    for preset in args.presets:
        codec = prepare_codec(preset, args.set, args.compile)
        n_qs = [n for n in (3, 6, 12) if n <= codec.max_n_q] or [codec.max_n_q]
        if preset != "default":  # other presets: their full bitrate only
            n_qs = [codec.max_n_q]
        rows += bench_codec(codec, preset, args.seconds, n_qs, args.repeats, args.warmup, args.stat)
    reference = None
    if not args.no_encodec:
        reference = bench_encodec(args.seconds, args.repeats, args.warmup, args.stat)
    load_after = os.getloadavg()

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {cpu_name()} "
        f"({os.cpu_count()} logical CPUs), {args.seconds:g} s of audio per call, "
        f"{args.stat} of {args.repeats} runs after {args.warmup} warm-up"
    )
    print(
        "load average (1/5/15 min) before: "
        + "/".join(f"{x:.2f}" for x in load_before)
        + ", after: "
        + "/".join(f"{x:.2f}" for x in load_after)
    )
    if args.set:
        print("overrides: " + " ".join(args.set))
    print()
    print(markdown(rows, reference))


if __name__ == "__main__":
    main()
