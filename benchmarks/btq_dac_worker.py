"""The DAC side of benchmarks/bench_train_quality.py: training and decoding with DAC's own code.

Runs inside DAC's own interpreter (`.venv-dac`), which the driver starts on
``bench_train_quality.py --dac-train SPEC`` / ``--dac-decode SPEC``; imports nothing from
telugu_codec, and torch, dac and audiotools only inside the functions.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DRIVER = HERE / "bench_train_quality.py"  # the script the DAC interpreter is started on


def speed_bench():
    """benchmarks/bench_train_speed.py: `dac_spec`, `dac_recipe`, `DAC_LAMBDAS`."""
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench_train_speed

    return bench_train_speed


def dac_command(python: str, flag: str, spec_path: Path) -> list[str]:
    """The command line that runs `COMMANDS[flag]` on `spec_path` in DAC's `python`."""
    return [python, str(DRIVER), flag, str(spec_path)]


def _patch_audiotools_info() -> None:
    """audiotools 0.7.2 reads file lengths with `torchaudio.info`, which torchaudio 2.9 no
    longer has (nor the fallback `torchaudio.backend`); read them with soundfile instead."""
    import soundfile
    from audiotools.core import util

    def info(audio_path: str) -> util.Info:
        i = soundfile.info(str(audio_path))
        return util.Info(sample_rate=i.samplerate, num_frames=i.frames)

    util.info = info


def dac_train(spec_path: str) -> None:
    """Train DAC's recipe for `spec["seconds"]` of wall-clock time; save the generator.

    Writes ``train.jsonl`` (one line per step: wall and CPU seconds, the loss terms),
    ``generator.pt`` (state dict) and ``result.json`` into ``spec["out"]``.

    Args:
        spec_path: JSON with `model`, `discriminator` (DAC kwargs), `train_dir`, `batch_size`,
            `segment_seconds`, `seconds`, `seed`, `out`.
    """
    import importlib.metadata as md

    import torch

    spec = json.loads(Path(spec_path).read_text())
    out = Path(spec["out"])
    torch.set_num_threads(1)
    torch.manual_seed(spec["seed"])
    generator, discriminator, train_loop = speed_bench().dac_recipe(spec)
    from audiotools.core import util
    from audiotools.data import transforms
    from audiotools.data.datasets import AudioDataset, AudioLoader

    _patch_audiotools_info()
    util.seed(spec["seed"])
    sr = spec["model"]["sample_rate"]
    # conf/base.yml: postprocess VolumeNorm(db=const -16), RescaleAudio, ShiftPhase; the
    # preprocess and augment stages are Identity (augment_prob 0)
    transform = transforms.Compose(
        transforms.VolumeNorm(db=("const", -16)), transforms.RescaleAudio(), transforms.ShiftPhase()
    )
    loader = AudioLoader(sources=[spec["train_dir"]], shuffle=True)
    dataset = AudioDataset(
        loader,
        sr,
        n_examples=10_000_000,
        duration=spec["segment_seconds"],
        transform=transform,
        without_replacement=True,
    )
    batches = torch.utils.data.DataLoader(
        dataset, batch_size=spec["batch_size"], num_workers=0, collate_fn=dataset.collate
    )
    log = (out / "train.jsonl").open("w")
    wall0, cpu0 = time.time(), time.process_time()
    steps, losses, data_s = 0, {}, 0.0
    it = iter(batches)
    while time.time() - wall0 < spec["seconds"]:
        t = time.time()
        batch = next(it)
        with torch.no_grad():
            signal = dataset.transform(batch["signal"].clone(), **batch["transform_args"])
        data_s += time.time() - t
        losses = train_loop(signal.audio_data)  # (B, 1, T)
        steps += 1
        rec = {"step": steps, "wall": time.time() - wall0, "cpu": time.process_time() - cpu0}
        rec["data_wall"] = data_s
        log.write(json.dumps(rec | losses) + "\n")
        log.flush()
    wall, cpu = time.time() - wall0, time.process_time() - cpu0
    log.close()
    torch.save(generator.state_dict(), out / "generator.pt")
    result = {
        "steps": steps,
        "train_wall_s": wall,
        "train_cpu_s": cpu,
        "data_wall_s": data_s,
        "last_losses": losses,
        "g_params": sum(p.numel() for p in generator.parameters()),
        "d_params": sum(p.numel() for p in discriminator.parameters()),
        "train_files": len(loader.audio_lists[0]),
        "torch": torch.__version__,
        "dac": md.version("descript-audio-codec"),
        "audiotools": md.version("descript-audiotools"),
        "threads": torch.get_num_threads(),
    }
    (out / "result.json").write_text(json.dumps(result, indent=1))


def dac_decode(spec_path: str) -> None:
    """Decode `spec["files"]` with the trained generator at each of `spec["n_qs"]`.

    DAC's own inference path: `compress` (loudness to -16 LUFS, one window per file) with the
    codes cut to n_q, then `decompress` (loudness back to the input's). Writes float32 wavs to
    ``spec["out"]/wavs/nq{N}/{index:03d}.wav``.
    """
    import soundfile as sf
    import torch
    from audiotools import AudioSignal
    from dac.model import DAC

    spec = json.loads(Path(spec_path).read_text())
    torch.set_num_threads(1)
    out = Path(spec["out"])
    generator = DAC(**spec["model"])
    generator.load_state_dict(torch.load(out / "generator.pt", weights_only=True))
    generator.eval()
    for n_q in spec["n_qs"]:
        folder = out / "wavs" / f"nq{n_q}"
        folder.mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(spec["files"]):
            signal = AudioSignal(path)
            if signal.sample_rate != generator.sample_rate:
                signal.resample(generator.sample_rate)
            length, input_db = signal.signal_length, signal.loudness()
            # DAC's decoder returns 8 samples fewer than its (hop-padded) input at these rates
            # (bench_train_speed), and `decompress` then fails to cut the original length:
            # one hop of zeros more, and the file's own length and loudness put back after
            signal.zero_pad(0, generator.hop_length)
            dac_file = generator.compress(signal, win_duration=None, n_quantizers=n_q)
            dac_file.original_length, dac_file.input_db = length, input_db
            dac_file.codes = dac_file.codes[:, :n_q, :]  # compress returns every codebook
            y = generator.decompress(dac_file).audio_data[0, 0]  # (T,)
            sf.write(folder / f"{i:03d}.wav", y.numpy(), dac_file.sample_rate, subtype="FLOAT")


COMMANDS = {"--dac-train": dac_train, "--dac-decode": dac_decode}  # flag -> f(spec_path)
