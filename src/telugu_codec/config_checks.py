"""Range checks of every config value, run when a config is loaded (`config.from_dict`).

A value of the right type can still be impossible (``train.val_every=0`` divides by zero,
``train.g_optim.lr=nan`` trains nothing, ``model.quantizer.codebook_size=0`` builds nothing);
without these checks each one surfaced as a traceback somewhere inside training. Every field of
every config dataclass has a rule here, looked up by class and field name (a subclass inherits
its base's rules); `tests/test_config.py` fails when a new field has none. Cross-field rules
(`_CROSS`) follow.

To add a field: one line in `RULES` under its dataclass, e.g. ``"warmup_steps": NONNEG``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from .errors import ConfigError

# a rule returns None when the value is fine, else what it must be ("must be positive")
Rule = Callable[[Any], "str | None"]


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _finite(v: Any) -> bool:
    return _num(v) and math.isfinite(v)


def _rule(test: Callable[[Any], bool], what: str) -> Rule:
    return lambda v: None if test(v) else what


ANY = _rule(lambda v: True, "")  # free-form (names, booleans)
FINITE = _rule(_finite, "must be a finite number")
POS = _rule(lambda v: _finite(v) and v > 0, "must be positive")
NONNEG = _rule(lambda v: _finite(v) and v >= 0, "must be >= 0")
FRACTION = _rule(lambda v: _finite(v) and 0 <= v <= 1, "must be in [0, 1]")
OPEN_FRACTION = _rule(lambda v: _finite(v) and 0 < v <= 1, "must be in (0, 1]")
DECAY = _rule(lambda v: _finite(v) and 0 <= v < 1, "must be in [0, 1)")
AT_LEAST_2 = _rule(lambda v: _finite(v) and v >= 2, "must be >= 2")
BOOL = _rule(lambda v: isinstance(v, bool), "must be true or false")


def choice(*options: str) -> Rule:
    return _rule(lambda v: v in options, f"must be one of {', '.join(options)}")


def each(rule: Rule, nonempty: bool = False) -> Rule:
    """Every element of a tuple passes `rule` (and the tuple is not empty if `nonempty`)."""

    def check(v: Any) -> str | None:
        if nonempty and len(v) == 0:
            return "must not be empty"
        for i, x in enumerate(v):
            why = rule(x)
            if why:
                return f"[{i}] = {x!r} {why}"
        return None

    return check


def _band(v: Any) -> bool:
    return len(v) == 2 and all(_finite(x) for x in v) and 0.0 <= v[0] < v[1] <= 1.0


SCHEDULES = ("constant", "exponential", "cosine")

RULES: dict[str, dict[str, Rule]] = {
    "SEANetConfig": {
        "channels": POS,
        "max_channels": POS,
        "kernel_size": POS,
        "last_kernel_size": POS,
        "residual_kernel_size": POS,
        "dilations": each(POS),
        "stage_dilations": each(each(POS)),
        "stage_kernel_sizes": each(POS),
        "bottleneck_dilations": each(POS),
        "residual_compress": POS,
        "depthwise_residual": BOOL,
    },
    "STFTEncoderConfig": {
        "dim": POS,
        "intermediate_dim": POS,
        "layers": NONNEG,
        "kernel_size": POS,
        "downsample": POS,
        "n_fft_factor": POS,
        "compress": OPEN_FRACTION,
    },
    "EncoderConfig": {"kind": choice("seanet", "stft"), "stft": ANY},
    "ISTFTConfig": {
        "dim": POS,
        "intermediate_dim": POS,
        "layers": NONNEG,
        "kernel_size": POS,
        "upsample": POS,
        "n_fft_factor": POS,
        "max_log_magnitude": POS,
    },
    "DecoderConfig": {
        "kind": choice("seanet", "istft", "source_filter"),
        "istft": ANY,
        "source_filter": ANY,
    },
    "SourceFilterConfig": {
        "harmonic_level": POS,
        "noise_level": POS,
        "free_level": POS,
        "envelope": choice("bins", "cepstrum"),
        "n_cepstrum": _rule(lambda v: isinstance(v, int) and 2 <= v <= 512, "must be 2..512"),
        "lookahead": _rule(lambda v: isinstance(v, int) and 0 <= v <= 8, "must be 0..8 frames"),
    },
    "PitchConfig": {
        "enabled": BOOL,
        "fmin": _rule(lambda v: _finite(v) and 20 <= v <= 1000, "must be in [20, 1000] Hz"),
        "fmax": _rule(lambda v: _finite(v) and 40 <= v <= 2000, "must be in [40, 2000] Hz"),
        "threshold": OPEN_FRACTION,
        "voicing_threshold": OPEN_FRACTION,
        "silence_db": _rule(lambda v: _finite(v) and -120 <= v <= 0, "must be in [-120, 0] dB"),
        "zero": BOOL,
    },
    "QuantizerConfig": {
        "kind": choice("ema", "factorized", "fsq"),
        "n_q": POS,
        "codebook_size": AT_LEAST_2,
        "dropout": FRACTION,
        "commitment_weight": NONNEG,
        "decay": DECAY,
        "epsilon": POS,
        "kmeans_init": BOOL,
        "kmeans_iters": NONNEG,
        "init_vectors": NONNEG,
        "buffer_size": POS,
        "dead_code_window": NONNEG,
        "replace_every": POS,
        "reseed_backoff": _rule(lambda v: _finite(v) and 1 <= v <= 100, "must be in [1, 100]"),
        "factorized_dim": POS,
        "codebook_weight": NONNEG,
        "fsq_levels": each(AT_LEAST_2),
        "split_first": BOOL,
    },
    "ModelConfig": {
        "sample_rate": POS,
        "strides": each(POS, nonempty=True),
        "patch_size": POS,
        "latent_dim": POS,
        "causal": BOOL,
        "weight_norm": BOOL,
        "tanh_output": BOOL,
        "output_gain": POS,
        "normalize": BOOL,
        "normalization": choice("clip", "block", "none"),
        "norm_block_frames": _rule(lambda v: _finite(v) and 1 <= v <= 255, "must be in 1..255"),
        "norm_time_constant": POS,
        "norm_gate_db": FINITE,
        "target_rms": OPEN_FRACTION,
        "max_gain_db": NONNEG,
        "encoder": ANY,
        "decoder": ANY,
        "quantizer": ANY,
        "pitch": ANY,
    },
    "MSDConfig": {"scales": POS, "width": POS, "spectral_norm_first": BOOL},
    "MPDConfig": {
        "periods": each(POS, nonempty=True),
        "channels": POS,
        "max_channels": POS,
        "kernel_size": POS,
        "stride": POS,
    },
    "STFTDConfig": {
        "n_ffts": each(POS, nonempty=True),
        "channels": POS,
        "hop_factor": OPEN_FRACTION,
        "kernel_size": each(POS),
        "dilations": each(POS),
    },
    "MRDConfig": {
        "n_ffts": each(POS, nonempty=True),
        "bands": each(_rule(_band, "must be (lo, hi) with 0 <= lo < hi <= 1"), nonempty=True),
        "channels": POS,
        "hop_factor": OPEN_FRACTION,
    },
    "DiscriminatorConfig": {
        "kinds": each(choice("msd", "mpd", "stftd", "mrd")),
        "msd": ANY,
        "mpd": ANY,
        "stftd": ANY,
        "mrd": ANY,
        "remove_dc": BOOL,
        "peak_normalize": _rule(
            lambda v: _finite(v) and 0 <= v <= 1, "must be in [0, 1] (0 = off)"
        ),
    },
    "MelLossConfig": {
        "n_ffts": each(POS, nonempty=True),
        "n_mels": each(POS, nonempty=True),
        "floor": POS,
        "mag_weight": NONNEG,
        "log_weight": NONNEG,
        "mse_weight": NONNEG,
    },
    "LossConfig": {
        "adversarial": choice("hinge", "lsgan", "bce", "hinge_g_bce_d"),
        "feature_matching": choice("l1", "relative"),
        "adv": NONNEG,
        "fm": NONNEG,
        "mel": NONNEG,
        "stft": NONNEG,
        "l1": NONNEG,
        "sisdr": NONNEG,
        "loudness": NONNEG,
        "phase": NONNEG,
        "phase_n_ffts": each(POS),
        "complex": NONNEG,
        "complex_n_ffts": each(POS),
        "complex_power": OPEN_FRACTION,
        "vq": NONNEG,
        "balancer": BOOL,
        "balancer_ema": DECAY,
        "balancer_total_norm": POS,
        "gan_reduction": choice("mean", "sum"),
        "stft_n_ffts": each(POS),
        "mel_loss": ANY,
        "distill": NONNEG,
        "teacher": ANY,
    },
    "TeacherConfig": {
        "kind": choice("phones", "features"),
        "path": ANY,
        "dim": _rule(lambda v: _finite(v) and 2 <= v <= 65536, "must be in 2..65536"),
        "tolerance_s": NONNEG,
        "on_mismatch": choice("error", "skip"),
    },
    "DataSourceConfig": {
        "path": ANY,
        "weight": _rule(lambda v: _finite(v) and v > 0, "must be positive"),
        "name": ANY,
    },
    "DataConfig": {
        "segment_seconds": POS,
        "batch_size": POS,
        "num_workers": _rule(lambda v: _finite(v) and v >= -1, "must be >= 0, or -1 (auto)"),
        "sources": ANY,  # each entry is a DataSourceConfig (checked below)
        "audio_column": ANY,
        "scan": choice("auto", "always", "never"),
        "scan_workers": NONNEG,
        "shuffle_buffer": POS,
        "crops_per_file": choice("one", "duration"),
        "val_fraction": DECAY,
        # 0 would validate on nothing, and a validation that measured nothing looked healthy
        "val_max_files": POS,
        "val_hold_out": choice("fraction", "validated"),
        "val_max_seconds": POS,
        "speaker_disjoint": BOOL,
        "silence_db": FINITE,
        "max_bad_fraction": FRACTION,
        "normalize_db": FINITE,
        "silence_retries": NONNEG,
        "max_clipped_fraction": FRACTION,
        "min_sample_rate": NONNEG,
    },
    "OptimConfig": {
        "lr": POS,
        "betas": each(DECAY),
        "weight_decay": NONNEG,
        "schedule": choice(*SCHEDULES),
        "gamma": OPEN_FRACTION,
        "warmup_steps": NONNEG,
        "grad_clip": POS,
    },
    "GuardConfig": {
        "enabled": BOOL,
        "action": choice("warn", "stop", "rollback"),
        "min_amplitude": NONNEG,
        "max_amplitude": POS,
        "patience": NONNEG,
        "mel_tolerance": NONNEG,
        "snr_tolerance": NONNEG,
        "min_d_loss": NONNEG,
        "d_loss_patience": POS,
        "min_codebook_usage": FRACTION,
        "min_perplexity": FRACTION,
        "codebook_grace_steps": NONNEG,
        "max_code_churn": FRACTION,
        "lr_factor": OPEN_FRACTION,
        "max_rollbacks": NONNEG,
    },
    "TrainConfig": {
        "max_steps": POS,
        "seed": NONNEG,  # numpy's generators take no negative seeds
        "g_optim": ANY,
        "d_optim": ANY,
        "d_warmup_steps": NONNEG,
        "d_update_every": POS,
        "grad_accum": POS,
        "precision": choice("auto", "fp32", "bf16", "fp16"),
        "max_nonfinite": POS,
        "dist_timeout_minutes": _rule(
            lambda v: _finite(v) and 1 <= v <= 24 * 60, "must be in [1, 1440] minutes"
        ),
        "log_every": POS,
        "val_every": POS,
        "ckpt_every": POS,
        "keep_last": POS,
        "best_metric": choice("mel_distance"),  # validation metrics where lower is better
        "audio_samples": NONNEG,
        "val_pesq": BOOL,
        "guard": ANY,
        "compile": BOOL,
        "compile_backend": ANY,
        "fused_optimizer": BOOL,
        "tf32": BOOL,
        "init_from": ANY,
        "freeze": each(choice("encoder", "quantizer", "decoder")),
    },
    "Config": {
        "name": ANY,
        "model": ANY,
        "discriminator": ANY,
        "loss": ANY,
        "data": ANY,
        "train": ANY,
    },
}


def rule_for(cls: type, name: str) -> Rule | None:
    """The rule of field `name` of dataclass `cls` (or of a base class), None if it has none."""
    for klass in cls.__mro__:
        rules = RULES.get(klass.__name__, {})
        if name in rules:
            return rules[name]
    return None


def _cross(cfg: Any) -> list[tuple[str, str]]:
    """Rules between fields: (dotted key, what is wrong)."""
    out = []
    m = cfg.model
    n_stages = len(m.strides)
    for side in ("encoder", "decoder"):
        s = getattr(m, side)
        for key in ("stage_dilations", "stage_kernel_sizes"):
            value = getattr(s, key)
            if value and len(value) != n_stages:
                out.append(
                    (
                        f"model.{side}.{key}",
                        f"has {len(value)} entries but model.strides has {n_stages} stages "
                        "(give one per stage, or [] for the same everywhere)",
                    )
                )
    mel = cfg.loss.mel_loss
    if len(mel.n_ffts) != len(mel.n_mels):
        out.append(
            ("loss.mel_loss.n_mels", f"needs one value per n_fft ({len(mel.n_ffts)} of them)")
        )
    p = m.pitch
    if p.fmax <= 2 * p.fmin:
        out.append(("model.pitch.fmax", "must be above twice model.pitch.fmin"))
    if p.enabled and p.fmax >= m.sample_rate / 4:
        out.append(("model.pitch.fmax", f"must be below a quarter of {m.sample_rate} Hz"))
    if m.decoder.kind == "source_filter" and not p.enabled:
        out.append(("model.decoder.kind", "source_filter needs model.pitch.enabled: true"))
    if m.decoder.source_filter.lookahead and not m.causal:
        out.append(
            ("model.decoder.source_filter.lookahead", "applies to causal models only (0 here)")
        )
    q = m.quantizer
    if q.split_first and q.n_q < 2:
        out.append(("model.quantizer.split_first", "needs model.quantizer.n_q >= 2"))
    if cfg.loss.distill > 0 and not cfg.loss.teacher.path:
        out.append(("loss.teacher.path", "must name the teacher when loss.distill > 0"))
    g = cfg.train.guard
    if g.max_amplitude <= g.min_amplitude:
        out.append(("train.guard.max_amplitude", "must be above train.guard.min_amplitude"))
    return out


def check_config(cfg: Any) -> None:
    """Check every value of a `config.Config` against `RULES` and the cross-field rules.

    Raises:
        ConfigError: naming the first bad key, its value and what it must be.
    """

    def walk(obj: Any, where: str) -> None:
        for f in dataclasses.fields(obj):
            key = f"{where}.{f.name}" if where else f.name
            value = getattr(obj, f.name)
            if dataclasses.is_dataclass(value):
                walk(value, key)
                continue
            if isinstance(value, (tuple, list)) and value and dataclasses.is_dataclass(value[0]):
                for i, item in enumerate(value):  # e.g. data.sources
                    walk(item, f"{key}[{i}]")
                continue
            rule = rule_for(type(obj), f.name)
            why = rule(value) if rule is not None else None
            if why:
                raise ConfigError(f"config key '{key}' = {value!r} {why}")

    walk(cfg, "")
    problems = _cross(cfg)
    if problems:
        key, why = problems[0]
        raise ConfigError(f"config key '{key}' {why}")
