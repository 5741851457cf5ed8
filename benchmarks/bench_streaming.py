"""Streaming: peak memory vs duration, real-time factor in 20 ms chunks, latency, ONNX speed.

    .venv/bin/python benchmarks/bench_streaming.py rss        # 1 / 10 / 60 min files, ~6 min
    .venv/bin/python benchmarks/bench_streaming.py rtf        # 60 s in 20 ms chunks, 1 thread
    .venv/bin/python benchmarks/bench_streaming.py latency    # one sample at a time
    .venv/bin/python benchmarks/bench_streaming.py offline    # streamed vs offline output
    .venv/bin/python benchmarks/bench_streaming.py onnx       # onnxruntime vs PyTorch, 1 thread

rss: synthetic speech-like audio (10 s of tests/conftest.speechlike, tiled with a different
gain per tile) written as 16 kHz PCM16 WAV; `telugu-codec encode` then `decode` run as
subprocesses (one intra-op thread) with random-weight checkpoints; peak RSS is the child's
ru_maxrss from os.wait4. The previous CLI's path (load the whole file, `Codec.encode`,
`Codec.decode`) is measured the same way for comparison (`offline` rows).

rtf: `codec.stream_encoder()` / `stream_decoder()` fed 320-sample (20 ms) chunks of 60 s of
audio, weight norm folded, `torch.set_num_threads(1)`: seconds of compute per second of audio.

latency: samples pushed one at a time through encoder and decoder; for every output sample,
how many input samples had been pushed when it came out, minus its own index + 1: the worst
case is the algorithmic latency (buffering only, no compute time).

offline: 20 s streamed in 20 ms or 1 s chunks vs `Codec.encode` / `decode` of the whole signal
(for `clip` models the stream gets the offline gain): share of equal codes, largest audio
difference.

onnx: `export_onnx` (torch.export), then the same inputs through onnxruntime and PyTorch on
one thread: whole 10 s signals (encoder, decoder graphs) and 20 ms steps (step graphs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def speech(seconds: float, seed: int = 0) -> np.ndarray:
    """Tiles of 10 s of speech-like audio, each at its own level (-6 to -30 dB)."""
    from conftest import speechlike

    tile = speechlike(10.0, 16000, seed)
    n = int(seconds * 16000)
    reps = -(-n // len(tile))
    gains = 10 ** (np.random.default_rng(seed).uniform(-24, 0, reps) / 20)
    return (np.concatenate([tile * g for g in gains])[:n]).astype(np.float32)


def run_child(argv: list[str]) -> tuple[float, float, int]:
    """Run a command; return (wall seconds, peak RSS in MB, exit code)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT / "src"))
    t = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    err = proc.stderr.read().decode()
    proc.stderr.close()
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        print(err, file=sys.stderr)
    return wall, usage.ru_maxrss / 1024, code


OFFLINE = """
import sys, torch
torch.set_num_threads(1)
from telugu_codec.audio import load_audio, write_audio
from telugu_codec.model.codec import Codec
codec = Codec.load(sys.argv[1]).remove_weight_norm()
audio = load_audio(sys.argv[2], codec.sample_rate)
enc = codec.encode(audio.wav, audio.sample_rate, n_q=3)
write_audio(sys.argv[3], codec.decode(enc).numpy(), codec.sample_rate)
"""


def bench_rss(minutes: list[float], presets: list[str], offline: list[float]) -> None:
    import soundfile as sf

    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="tcc-rss-"))
    print("| preset | audio | command | wall s | peak RSS MB |")
    print("|---|---|---|---|---|")
    for preset in presets:
        ck = tmp / preset
        subprocess.run(
            [py, "-m", "telugu_codec", "init", "--config", preset, "--out", str(ck)],
            env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
            check=True,
            capture_output=True,
        )
        for m in minutes:
            wav = tmp / f"{m:g}min.wav"
            if not wav.exists():
                with sf.SoundFile(wav, "w", 16000, 1, "PCM_16") as f:
                    for i in range(int(m * 6)):  # 10 s at a time
                        f.write(speech(10.0, seed=i))
            tcc, out = tmp / f"{preset}-{m:g}.tcc", tmp / f"{preset}-{m:g}.wav"
            base = [py, "-m", "telugu_codec"]
            for name, argv in (
                ("encode", [*base, "encode", str(wav), str(tcc), "--checkpoint", str(ck)]),
                ("decode", [*base, "decode", str(tcc), str(out), "--checkpoint", str(ck)]),
            ):
                wall, rss, code = run_child([*argv, "--force"])
                status = "" if code == 0 else f" (exit {code})"
                print(f"| {preset} | {m:g} min | {name}{status} | {wall:.1f} | {rss:.0f} |")
            out.unlink(missing_ok=True)
        for m in offline:
            wav = tmp / f"{m:g}min.wav"
            wall, rss, code = run_child([py, "-c", OFFLINE, str(ck), str(wav), str(tmp / "o.wav")])
            print(f"| {preset} | {m:g} min | offline encode + decode | {wall:.1f} | {rss:.0f} |")
    print(f"\nload average after: {os.getloadavg()}")


def make_codec(preset: str, overrides: list[str]):
    from telugu_codec.config import load_config
    from telugu_codec.model.codec import build_codec

    return build_codec(load_config(preset, overrides)).eval().remove_weight_norm()


def bench_rtf(seconds: float) -> None:
    import torch

    torch.set_num_threads(1)
    wav = speech(seconds)
    print("| model | chunk | encode RTF | decode RTF | x real time | chunk p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, preset, ov in (
        ("streaming", "streaming", []),
        ("streaming-sf (pitch, source-filter)", "streaming-sf", []),
        ("default + causal + block", "default", ["model.causal=true", "model.normalization=block"]),
    ):
        codec = make_codec(preset, ov)
        for chunk_ms in (20, 80):
            chunk = 16 * chunk_ms
            enc, dec = codec.stream_encoder(3), codec.stream_decoder()
            for i in range(0, 16000, chunk):  # 1 s warm-up
                dec.push(enc.push(wav[i : i + chunk]))
            enc, dec = codec.stream_encoder(3), codec.stream_decoder()
            te = td = 0.0
            per = []
            for i in range(0, len(wav), chunk):
                t0 = time.perf_counter()
                c = enc.push(wav[i : i + chunk])
                t1 = time.perf_counter()
                dec.push(c)
                t2 = time.perf_counter()
                te, td = te + t1 - t0, td + t2 - t1
                per.append((t2 - t0) * 1000)
            p50, p99 = np.percentile(per, [50, 99])
            x = seconds / (te + td)
            print(
                f"| {name} | {chunk_ms} ms | {te / seconds:.4f} | {td / seconds:.4f} | {x:.1f} | "
                f"{p50:.2f} | {p99:.2f} |"
            )
    print(f"\nload average after: {os.getloadavg()}")


def bench_latency() -> None:
    import torch

    from telugu_codec.model.streaming import algorithmic_latency

    torch.set_num_threads(1)
    print("| model | measured (encoder + decoder) | algorithmic_latency() |")
    print("|---|---|---|")
    for name, preset, ov, kw in (
        ("streaming", "streaming", [], {}),
        ("streaming-sf (pitch, source-filter)", "streaming-sf", [], {}),
        ("tiny (non-causal, windows of 1 frame)", "tiny", [], {"window_frames": 1}),
    ):
        codec = make_codec(preset, ov)
        wav = speech(2.0)
        enc = codec.stream_encoder(3, **kw)
        dec = codec.stream_decoder(**{k: v for k, v in kw.items()}, gain=1.0)
        lag, out = 0, 0
        for i, s in enumerate(wav):
            y = dec.push(enc.push(np.array([s])))
            for j in range(out, out + len(y)):  # output sample j exists after i + 1 inputs
                lag = max(lag, (i + 1) - (j + 1))
            out += len(y)
        ms = 1000 * lag / codec.sample_rate
        print(
            f"| {name} | {lag} samples = {ms:.1f} ms | {1000 * algorithmic_latency(codec):.1f} ms |"
        )


def bench_vs_offline(seconds: float) -> None:
    """Streamed vs offline output: identical codes, float-rounding differences in audio."""
    import torch

    torch.set_num_threads(1)
    wav = speech(seconds)
    print("| model | chunk | window frames | codes equal | max abs audio difference |")
    print("|---|---|---|---|---|")
    for preset in ("streaming", "streaming-sf", "tiny", "default"):
        codec = make_codec(preset, [])
        ref = codec.encode(wav, 16000, n_q=3)
        out = codec.decode(ref).numpy()
        for chunk_ms, window in ((20, 1), (20, 50), (1000, 500)):
            if codec.cfg.causal and window != 50:
                continue  # a causal model has no windows
            chunk = 16 * chunk_ms
            enc = codec.stream_encoder(3, gain=ref.gain, window_frames=window)
            dec = codec.stream_decoder(gain=ref.gain, window_frames=window)
            codes, audio = [], []
            for i in range(0, len(wav), chunk):
                c = enc.push(wav[i : i + chunk])
                codes.append(c.codes)
                audio.append(dec.push(c))
            c = enc.flush()
            codes.append(c.codes)
            audio += [dec.push(c), dec.flush()]
            same = np.mean(np.concatenate(codes, 1) == ref.codes)
            diff = np.abs(np.concatenate(audio) - out).max()
            w = "-" if codec.cfg.causal else str(window)
            print(f"| {preset} | {chunk_ms} ms | {w} | {same:.4f} | {diff:.2e} |")


def bench_onnx(seconds: float) -> None:
    import onnxruntime as ort
    import torch

    from telugu_codec.model.export import export_onnx

    torch.set_num_threads(1)
    codec = make_codec("streaming", [])
    tmp = Path(tempfile.mkdtemp(prefix="tcc-onnx-"))
    t = time.perf_counter()
    meta = export_onnx(codec, tmp, n_q=3)
    print(f"export (torch.export, 4 graphs): {time.perf_counter() - t:.1f} s\n")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = {p: ort.InferenceSession(str(tmp / f["file"]), opts) for p, f in meta["files"].items()}
    hop = codec.hop_length
    n = int(seconds * codec.sample_rate) // hop * hop
    x = torch.from_numpy(speech(seconds)[:n]).view(1, 1, -1)

    def best(fn, reps: int = 3) -> float:
        fn()
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    with torch.inference_mode():
        codes = codec.encode_codes(x, 3)[0]
        rows = [
            (
                "encoder, 10 s",
                best(lambda: codec.encode_codes(x, 3)),
                best(lambda: sess["encoder"].run(None, {"audio": x.numpy()})),
            ),
            (
                "decoder, 10 s",
                best(lambda: codec.decoder(codec.quantizer.decode(codes))),
                best(lambda: sess["decoder"].run(None, {"codes": codes.numpy()})),
            ),
        ]
        for part, first, data in (
            ("encoder_step", "audio", [x[..., i : i + hop] for i in range(0, n, hop)]),
            ("decoder_step", "codes", [codes[..., f : f + 1] for f in range(n // hop)]),
        ):
            module = codec.encoder if part == "encoder_step" else codec.decoder

            def torch_steps(module=module, data=data, part=part):
                with codec.streaming():  # the layers keep their state (nn/streaming.py)
                    for d in data:
                        z = codec.quantizer.decode(d) if part == "decoder_step" else d
                        y = module(z)
                        if part == "encoder_step":
                            codec.quantizer.encode(y, 3)

            s = sess[part]
            names = [i.name for i in s.get_inputs()]
            shapes = meta["files"][part]["states"]

            def ort_steps(s=s, names=names, shapes=shapes, data=data, first=first):
                st = {k: np.zeros(v, np.float32) for k, v in shapes.items()}
                for d in data:
                    out = s.run(None, {first: d.numpy(), **st})
                    st = dict(zip(names[1:], out[1:]))

            rows.append((f"{part}, 20 ms x {len(data)}", best(torch_steps, 1), best(ort_steps, 1)))
    print("| graph | PyTorch s | onnxruntime s | PyTorch RTF | onnxruntime RTF |")
    print("|---|---|---|---|---|")
    for name, a, b in rows:
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / seconds:.4f} | {b / seconds:.4f} |")
    print(f"\nload average after: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["rss", "rtf", "latency", "offline", "onnx", "all"])
    ap.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    ap.add_argument("--presets", nargs="+", default=["streaming", "default"])
    ap.add_argument("--offline", type=float, nargs="*", default=[1], help="minutes, old path")
    ap.add_argument("--seconds", type=float, default=60.0, help="rtf: audio length")
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}\n")
    if args.what in ("rss", "all"):
        bench_rss(args.minutes, args.presets, args.offline)
    if args.what in ("rtf", "all"):
        bench_rtf(args.seconds)
    if args.what in ("latency", "all"):
        bench_latency()
    if args.what in ("offline", "all"):
        bench_vs_offline(20.0)
    if args.what in ("onnx", "all"):
        bench_onnx(10.0)


if __name__ == "__main__":
    main()
