"""Configuration: nested dataclasses with defaults, YAML presets and dotted overrides.

Every knob of the model, losses, data pipeline and trainer lives here with its default. A preset
is a YAML file holding only the values that differ from these defaults; `load_config("tiny")`
reads `configs/tiny.yaml`, merges it over the defaults and applies overrides such as
``model.encoder.channels=32``. Unknown keys and wrongly typed values raise `ConfigError`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config_checks import check_config

# the model's sections live in config_model.py; `config.X` still names them
from .config_model import (
    DecoderConfig,  # noqa: F401
    EncoderConfig,  # noqa: F401
    ISTFTConfig,  # noqa: F401
    ModelConfig,
    PitchConfig,  # noqa: F401
    QuantizerConfig,  # noqa: F401
    SEANetConfig,  # noqa: F401
    SourceFilterConfig,  # noqa: F401
    STFTEncoderConfig,  # noqa: F401
)
from .errors import ConfigError

PRESET_DIR = Path(__file__).parent / "configs"


# --------------------------------------------------------------------------------------------
# discriminators and losses
# --------------------------------------------------------------------------------------------


@dataclass
class MSDConfig:
    """MelGAN multi-scale discriminator, as our user specified it."""

    scales: int = 3
    width: float = 1.0  # multiplies every channel count (0.25 for CPU-sized runs)
    spectral_norm_first: bool = False  # HiFi-GAN: spectral norm on the first (raw) scale


@dataclass
class MPDConfig:
    periods: tuple[int, ...] = (2, 3, 5, 7, 11)
    channels: int = 32  # first layer width; grows x4 per layer up to max_channels
    max_channels: int = 1024
    kernel_size: int = 5  # along time, per period column (HiFi-GAN)
    stride: int = 3  # time stride of the four strided layers (HiFi-GAN)


@dataclass
class STFTDConfig:
    """EnCodec's multi-scale STFT discriminator (complex STFT input)."""

    n_ffts: tuple[int, ...] = (1024, 512, 256)  # EnCodec's (2048, 1024, 512) at 24 kHz, scaled
    channels: int = 32
    hop_factor: float = 0.25  # hop = n_fft * hop_factor
    kernel_size: tuple[int, int] = (3, 9)  # (time, frequency)
    dilations: tuple[int, ...] = (1, 2, 4)  # time dilations of the frequency-strided layers


@dataclass
class MRDConfig:
    """DAC's multi-band multi-resolution spectrogram discriminator."""

    n_ffts: tuple[int, ...] = (2048, 1024, 512)
    bands: tuple[tuple[float, float], ...] = (
        (0.0, 0.1),
        (0.1, 0.25),
        (0.25, 0.5),
        (0.5, 0.75),
        (0.75, 1.0),
    )  # fractions of the Nyquist band, each with its own conv stack
    channels: int = 32
    hop_factor: float = 0.25  # hop = n_fft * hop_factor


@dataclass
class DiscriminatorConfig:
    kinds: tuple[str, ...] = ("mpd", "mrd")  # any of: msd, mpd, stftd, mrd
    # input preprocessing, applied to real and generated audio alike before every family
    # (DAC's `Discriminator.preprocess`): subtract each clip's mean ...
    remove_dc: bool = False
    # ... and scale each clip to this peak (DAC: 0.8); 0 = off. D then judges the waveform's
    # shape, not its level (which the mel and loudness terms hold)
    peak_normalize: float = 0.0
    msd: MSDConfig = field(default_factory=MSDConfig)
    mpd: MPDConfig = field(default_factory=MPDConfig)
    stftd: STFTDConfig = field(default_factory=STFTDConfig)
    mrd: MRDConfig = field(default_factory=MRDConfig)


@dataclass
class MelLossConfig:
    n_ffts: tuple[int, ...] = (32, 64, 128, 256, 512, 1024, 2048)
    n_mels: tuple[int, ...] = (5, 10, 20, 40, 80, 160, 320)
    floor: float = 1e-5  # log-magnitude floor
    mag_weight: float = 1.0  # |mel_x - mel_y| term
    log_weight: float = 1.0  # |log mel_x - log mel_y| term
    mse_weight: float = 0.0  # (mel_x - mel_y)^2 term (EnCodec's l_f adds it to the L1 term)


@dataclass
class TeacherConfig:
    """Where the targets of `loss.distill` come from (data/teachers.py, docs/low-frame-rate.md).

    - ``phones``: the phone segments of a manifest (`path`: a TSV/CSV with a `phones` column of
      JSON ``[[end_s, "phone"], ...]``, as the synthetic corpora write), turned into one phone id
      per codec frame; cross-entropy through a linear projection of codebook 1's output;
    - ``features``: per-frame teacher features (`path`: a folder with ``teacher.json`` declaring
      ``frame_rate`` and ``dim``, and one ``KEY.npy`` (frames, dim) per audio file, KEY its path
      relative to the training files' common folder without the suffix), resampled to the
      codec's frame rate; cosine distance through a linear projection (Mimi).
    """

    kind: str = "phones"  # phones | features
    path: str = ""
    dim: int = 64  # phones: classes of the projection (>= the inventory); features: their size
    # a teacher whose length differs from the audio's by more than this is misaligned
    tolerance_s: float = 0.1
    # missing or misaligned teacher for a training file: error (one line, at start-up) or skip
    # (logged once per file; the file still trains reconstruction, without distillation)
    on_mismatch: str = "error"  # error | skip


@dataclass
class LossConfig:
    adversarial: str = "lsgan"  # hinge | lsgan | bce | hinge_g_bce_d (the seed's mismatch)
    feature_matching: str = "l1"  # l1 | relative (EnCodec)
    # weights of each term; 0 disables it
    adv: float = 1.0
    fm: float = 2.0
    mel: float = 15.0
    stft: float = 0.0
    l1: float = 0.0
    sisdr: float = 0.0
    loudness: float = 0.0  # |ln RMS(out) - ln RMS(in)|: holds the output level
    phase: float = 0.0  # APNet phase losses (instantaneous phase, group delay, frequency)
    phase_n_ffts: tuple[int, ...] = (512, 1024)  # their STFT sizes (hop n_fft / 4)
    # power-law compressed complex spectrum, |X|^c e^(i phase) (MP-SENet): magnitude and phase
    # in one term, loud and quiet bins alike
    complex: float = 0.0
    complex_n_ffts: tuple[int, ...] = (512, 1024)  # its STFT sizes (hop n_fft / 4)
    complex_power: float = 0.3  # the compression exponent c, in (0, 1]
    vq: float = 0.25  # multiplies the quantizer's commitment loss
    # distillation of `teacher` into codebook 1's quantised output (issue 25); 0 = off. Not a
    # decoder-output loss: added outside the balancer, like the commitment loss
    distill: float = 0.0
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    balancer: bool = False  # EnCodec sec. 3.4 gradient balancer over decoder-output losses
    balancer_ema: float = 0.999
    balancer_total_norm: float = 1.0
    # "mean" averages adversarial / feature-matching terms over sub-discriminators (and layers);
    # "sum" adds them up as DAC and HiFi-GAN do (their adv/fm weights assume sums)
    gan_reduction: str = "mean"
    stft_n_ffts: tuple[int, ...] = (512, 1024, 2048)  # MultiResolutionSTFTLoss, hop n_fft / 4
    mel_loss: MelLossConfig = field(default_factory=MelLossConfig)


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------


@dataclass
class DataSourceConfig:
    """One corpus of a mix (`data.sources`): where it is and how often it is drawn."""

    path: str = ""  # folder, manifest, Parquet/Arrow dataset, tar shards ('a-{000..009}.tar')
    weight: float = 1.0  # relative sampling weight (normalised over the sources)
    name: str = ""  # label in the data report and logs ("" = the path's last part)


@dataclass
class DataConfig:
    segment_seconds: float = 1.0
    batch_size: int = 8
    num_workers: int = -1  # loader processes; -1: auto (0 on a CPU, up to 8 per GPU process)
    val_fraction: float = 0.05  # held-out share when no separate validation data is given
    val_max_files: int = 16  # validation files at most (the first by path hash)
    # which files a hash split (no separate validation data, no manifest split) keeps out of
    # training: "fraction" = every file hashed into data.val_fraction, of which at most
    # val_max_files are validated (the split of runs before this option; on a large corpus the
    # rest is neither trained on nor validated); "validated" = only the files validated, the
    # rest of the fraction trains. Changing it changes the training set: keep it on resume.
    val_hold_out: str = "fraction"  # fraction | validated
    val_max_seconds: float = 5.0  # longest validation item (centre crop)
    speaker_disjoint: bool = False
    silence_db: float = -50.0  # reject training crops quieter than this (dBFS RMS)
    max_bad_fraction: float = 0.5  # stop when more than this share of the files is unusable
    normalize_db: float = -16.0  # loudness every crop is brought to before training
    silence_retries: int = 5  # re-draws of a training crop quieter than silence_db
    max_clipped_fraction: float = 0.01  # skip files with more full-scale samples than this share
    min_sample_rate: int = 0  # skip files below this rate (0: keep them, upsampled to the model)
    # -- large corpora and mixing (docs/data.md): these fields belong together
    # corpora mixed by weight; `--data` (given once or more) replaces them
    sources: tuple[DataSourceConfig, ...] = ()
    audio_column: str = ""  # Parquet/Arrow column holding the audio ("" = found by its type)
    # probe every file at start-up: auto (folders, and manifests without durations), always
    # (manifests with durations too), never (crop lengths read from file headers when used)
    scan: str = "auto"
    scan_workers: int = 0  # parallel probes of a folder scan (0 = one per CPU, at most 16)
    shuffle_buffer: int = 500  # tar shards: samples shuffled together in each loader worker
    # crops per file and epoch, files and rows (not tar shards; data/duration_sampler.py):
    # "one" = one crop of every file per epoch (a 30 s file is drawn as often as a 2 s one);
    # "duration" = crops in proportion to duration, the epoch about one pass over the audio
    crops_per_file: str = "one"  # one | duration


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


@dataclass
class OptimConfig:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.8, 0.99)
    weight_decay: float = 0.0
    schedule: str = "exponential"  # constant | exponential | cosine
    gamma: float = 0.999996  # per-step decay for the exponential schedule
    warmup_steps: int = 0
    grad_clip: float = 1000.0


@dataclass
class GuardConfig:
    enabled: bool = True
    action: str = "rollback"  # warn | stop | rollback
    min_amplitude: float = 0.5
    max_amplitude: float = 2.0
    patience: int = 3  # validations in a row of a worse SNR or mel distance before acting
    # "worse" is against the best so far: mel distance more than this share above its best ...
    mel_tolerance: float = 0.1
    # ... or SNR more than this many dB below its best (judged only before the adversarial
    # terms join: a GAN trades waveform SNR for perceptual quality)
    snr_tolerance: float = 1.0
    min_d_loss: float = 0.01  # discriminator loss below this ...
    d_loss_patience: int = 200  # ... for this many steps means D is overpowering G
    min_codebook_usage: float = 0.02  # share of the first codebook used at validation
    # codebook collapse: a codebook's validation perplexity below this share of K (or below 2,
    # one code doing all the work); 0 turns the check off
    min_perplexity: float = 0.01
    # the usage floor and the relative perplexity floor start this many steps after the first
    # validation that finds the codebooks initialised (fresh codebooks spread over the first few
    # hundred steps); the absolute floor (perplexity 2: one code does the work) judges at once
    codebook_grace_steps: int = 500
    # codebook churn: more than this share of K re-seeded per step (mean over the interval
    # since the previous validation, any codebook); healthy codebooks replace well under 1 %
    max_code_churn: float = 0.05
    lr_factor: float = 0.5  # multiply both learning rates by this after a rollback
    max_rollbacks: int = 3


@dataclass
class TrainConfig:
    max_steps: int = 100000
    seed: int = 0
    g_optim: OptimConfig = field(default_factory=OptimConfig)
    d_optim: OptimConfig = field(default_factory=OptimConfig)
    d_warmup_steps: int = 0  # adversarial terms start after this many steps
    d_update_every: int = 1
    grad_accum: int = 1
    # auto: bf16 on GPUs with native bf16, fp16 + loss scaling on older GPUs, fp32 on the CPU
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    # torch.compile the encoder, decoder and discriminators (their state-dict keys unchanged);
    # pays a compile time at the start, worth it on a GPU for long runs
    compile: bool = False
    compile_backend: str = "inductor"  # torch.compile backend ("eager" only traces: tests)
    fused_optimizer: bool = True  # AdamW's fused kernel (one launch per step) on CUDA
    tf32: bool = True  # TF32 matmuls and convolutions on Ampere+ GPUs for fp32 parts
    max_nonfinite: int = 10  # consecutive non-finite steps before stopping
    # DDP: how long a collective (a barrier, a gradient all-reduce) waits for the slowest rank
    # before the run fails instead of hanging; rank 0's start-up scan of a large corpus runs
    # while the others wait at a barrier, so allow for it
    dist_timeout_minutes: float = 30.0
    log_every: int = 10
    val_every: int = 500
    ckpt_every: int = 500
    keep_last: int = 3
    best_metric: str = "mel_distance"  # lower is better
    audio_samples: int = 2  # validation clips written to TensorBoard
    val_pesq: bool = False  # also compute PESQ-WB at each validation (slower)
    guard: GuardConfig = field(default_factory=GuardConfig)
    # -- fine-tuning (train/finetune.py; `train --init-from`)
    init_from: str = ""  # codec file, checkpoint or run whose weights start this run at step 0
    freeze: tuple[str, ...] = ()  # parts kept as loaded: any of encoder, quantizer, decoder


@dataclass
class Config:
    name: str = "default"
    model: ModelConfig = field(default_factory=ModelConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --------------------------------------------------------------------------------------------
# (de)serialisation
# --------------------------------------------------------------------------------------------


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a YAML/CLI value to the annotated type `tp`, or raise ConfigError."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{where}' expects a mapping, got {value!r}")
        return _from_dict(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(value, args[0], where)
    if origin is tuple:
        args = typing.get_args(tp)
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip().startswith("[") else value.split(",")
        if not isinstance(value, (list, tuple)):
            value = [value]
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"config key '{where}' expects {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"config key '{where}' expects true/false, got {value!r}")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{where}' expects an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{where}' expects an integer, got {value!r}")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"config key '{where}' expects a number, got {value!r}")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"config key '{where}' expects a number, got {value!r}")
    if tp is str:
        if isinstance(value, (dict, list)):
            raise ConfigError(f"config key '{where}' expects a string, got {value!r}")
        return str(value)
    return value


def _from_dict(cls: type, data: dict[str, Any], where: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        key = f"{where}.{unknown[0]}" if where else unknown[0]
        raise ConfigError(
            f"unknown config key '{key}' (known keys here: {', '.join(sorted(names))})"
        )
    kwargs = {}
    for name, value in data.items():
        sub = f"{where}.{name}" if where else name
        kwargs[name] = _coerce(value, hints[name], sub)
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain dict (lists instead of tuples) suitable for YAML/JSON."""

    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [conv(x) for x in v]
        return v

    return conv(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    """Build a `Config` from a (possibly partial) nested dict; missing keys keep defaults.

    Raises:
        ConfigError: an unknown key, a wrongly typed value or a value out of its range
            (`config_checks`), or `data` not being a mapping.
    """
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of keys to values, got {data!r:.80}")
    cfg = _from_dict(Config, _merge(to_dict(Config()), data))
    check_config(cfg)
    return cfg


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def parse_override(text: str) -> dict[str, Any]:
    """``"a.b.c=3"`` -> ``{"a": {"b": {"c": 3}}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override '{text}' must look like key.sub=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw != "" else ""
    except yaml.YAMLError:
        value = raw
    parts = key.strip().split(".")
    out: dict[str, Any] = {}
    cur = out
    for p in parts[:-1]:
        cur = cur.setdefault(p, {})
    cur[parts[-1]] = value
    return out


def list_presets() -> list[str]:
    return sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"cannot parse config {path}: {str(e).splitlines()[0]}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must hold a mapping at the top level")
    return data


def load_config(preset: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Resolve a preset name or YAML path plus dotted overrides into a `Config`.

    Args:
        preset: a preset name (``tiny``, ``seed``, ...; see `list_presets`) or a YAML path.
            A YAML file may say ``base: PRESET`` to start from another preset.
        overrides: ``key.sub=value`` strings applied last.
    """
    data: dict[str, Any] = {}
    if preset is not None:
        data = _load_preset_dict(str(preset), seen=set())
    for text in overrides or []:
        data = _merge(data, parse_override(text))
    return from_dict(data)


def _load_preset_dict(preset: str, seen: set[str]) -> dict[str, Any]:
    path = Path(preset)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = PRESET_DIR / f"{preset}.yaml"
        if not path.exists():
            raise ConfigError(
                f"no preset or YAML file '{preset}' (presets: {', '.join(list_presets())})"
            )
    if str(path.resolve()) in seen:
        raise ConfigError(f"config {path} includes itself through 'base'")
    seen.add(str(path.resolve()))
    data = _read_yaml(path)
    name = data.get("name", path.stem)
    base = data.pop("base", None)
    if base is not None:
        data = _merge(_load_preset_dict(str(base), seen), data)
    data["name"] = name
    return data
