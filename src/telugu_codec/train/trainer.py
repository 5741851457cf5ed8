"""The training loop: an explicit, step-based `Trainer`.

`Trainer` builds a run (models, the step, the data, the run folder) and runs its loop
(`_train`, one screen). Each role around the loop is a module of its own:

- `gan_step.py`: one D + G optimizer step, no I/O, returning a `StepResult`;
- `state.py`: the run's bookkeeping (`TrainState`), saved in every checkpoint;
- `feed.py`: the micro-batches at the run's data position, and the bad-data account;
- `supervisor.py`: the guard's events, non-finite streaks, signals and the time budget as one
  decision per step, the same on every rank, and the rollback;
- `telemetry.py`: log lines, metrics.jsonl, TensorBoard, the progress bar, speed, ETA, cost;
- `validation.py`, `rollback.py` (on the format of `checkpoints.py`), `runfolder.py` (the lock,
  config.yaml), `signals.py`, `guard.py`, `precision.py`, `schedules.py`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import Config
from ..config_checks import check_config
from ..data import build_datasets
from ..errors import TrainingError
from ..model.codec import Codec
from ..model.discriminators import Discriminators
from .checkpoints import latest_checkpoint, list_checkpoints
from .distill import build_distiller
from .distributed import DistInfo, barrier, init_distributed, rank0_first
from .feed import DataFeed
from .finetune import freeze, init_weights
from .gan_step import GANStep, StepResult, build_gan_step
from .guard import CollapseGuard
from .precision import configure_kernels, native_bf16, no_autotune, resolve_precision
from .rollback import PENDING_ROLLBACK, RunCheckpoints
from .runfolder import RunLock, has_run, record_config
from .schedules import lr_factor
from .signals import StopRequest
from .state import TrainState
from .supervisor import CONTINUE, GUARD_STOP, ROLLBACK, Supervisor
from .telemetry import Telemetry, device_name
from .validation import QuantizerStats, health_line, validate


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    reason: str  # max_steps | time_budget | interrupted | terminated | guard | nonfinite | data
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    last_validation: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    audio_hours: float = 0.0
    cost: float | None = None
    events: list[dict] = field(default_factory=list)
    data_hours: dict[str, float] = field(default_factory=dict)  # audio seen, per corpus


class Trainer:
    """Trains a `Codec` (and its discriminators) into a run folder.

    Args:
        config: the resolved config (saved to RUN/config.yaml and into every checkpoint).
        run_dir: output folder; must not hold a previous run unless `resume`.
        data: training data (folder, manifest, corpus layout, Parquet/Arrow dataset, tar
            shards), or several to mix (paths or `DataSourceConfig`s with weights); None:
            ``data.sources`` of the config.
        val_data: validation data (default: a deterministic held-out split of `data`).
        resume: continue from the last complete checkpoint in `run_dir`.
        cost_per_hour: price of the machine per hour, for cost accounting.
        time_budget_s: stop (with a checkpoint) after this much wall-clock training time.
        log: where one-line messages go (rank 0 only).
    """

    def __init__(
        self,
        config: Config,
        run_dir: str | Path,
        data: str | Path | list | None,
        val_data: str | Path | None = None,
        resume: bool = False,
        device: str | torch.device | None = None,
        cost_per_hour: float | None = None,
        currency: str = "INR",
        time_budget_s: float | None = None,
        progress: bool = True,
        tensorboard: bool = True,
        log: Callable[[str], None] = print,
    ):
        check_config(config)
        self.cfg = config
        self.run_dir = Path(run_dir)
        self.dist: DistInfo = init_distributed(config.train.dist_timeout_minutes)
        self.lock = RunLock(self.run_dir)  # taken by rank 0 before it writes into run_dir
        self.time_budget_s = time_budget_s
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        tc = config.train
        self.precision = resolve_precision(tc.precision, self.device.type, native_bf16(self.device))
        self.state = TrainState()
        self.telemetry = Telemetry(
            self.run_dir,
            config,
            self.dist,
            self.state,
            log_fn=log,
            progress=progress,
            cost_per_hour=cost_per_hour,
            currency=currency,
            time_budget_s=time_budget_s,
        )

        self._check_run_dir(resume)
        self._seed(tc.seed)

        # models and the step
        self.codec = Codec(config.model, config).to(self.device)
        self.disc: Discriminators | None = None
        if config.discriminator.kinds and (config.loss.adv > 0 or config.loss.fm > 0):
            self.disc = Discriminators(config.discriminator, config.model.sample_rate).to(
                self.device
            )
        self.telemetry.adversarial_from = tc.d_warmup_steps if self.disc is not None else 0
        # fine-tuning (finetune.py): another run's weights at step 0, parts kept fixed
        if tc.init_from and not (resume and latest_checkpoint(self.run_dir) is not None):
            init_weights(self.codec, self.disc, tc.init_from, self.log)
        freeze(self.codec, tc.freeze)
        configure_kernels(self.device, tc.tf32, fixed_shapes=True)  # training crops: one length
        self.gan: GANStep = build_gan_step(
            config,
            self.codec,
            self.disc,
            self.device,
            self.precision,
            self.dist,
            d_loss_floor=tc.guard.min_d_loss if tc.guard.enabled else None,
        )
        self.guard = CollapseGuard(
            tc.guard,
            num_codes=self.codec.quantizer.num_codes,
            adversarial_from=tc.d_warmup_steps if self.disc is not None else None,
        )
        self.quantizer_stats = QuantizerStats(self.codec.quantizer.num_codes)

        # data (rank 0 scans and caches the corpus first; the other ranks then read its cache)
        with rank0_first(self.dist):
            train_ds, val_ds, self.data_report = build_datasets(
                data,
                config.data,
                config.model.sample_rate,
                val_data=val_data,
                log=self.log if self.dist.is_main else (lambda _m: None),
            )
        # distillation into codebook 1 (loss.distill > 0): crops carry teacher targets
        self.distill = build_distiller(config, self.codec, self.log)
        if self.distill is not None:
            train_ds = self.distill.wrap(train_ds)
        self.gan.distill = self.distill
        self.feed = DataFeed(
            train_ds,
            val_ds,
            config,
            self.state,
            self.dist,
            self.device,
            self.telemetry,
            distill=self.distill,
        )
        self.last_val: dict = {}
        if self.dist.is_main:
            self.lock.acquire()
        self.telemetry.open_tensorboard(tensorboard)  # writes into the run: after the lock
        optimizers = {"g": self.gan.g_opt} | ({"d": self.gan.d_opt} if self.gan.d_opt else {})
        self.checkpoints = RunCheckpoints(
            self.run_dir,
            self.codec,
            self.disc,
            optimizers,
            self.guard,
            self.gan.balancer,
            tc,
            metrics_file=self.telemetry.metrics.path if self.dist.is_main else None,
            scalers={"g": self.gan.g_scaler, "d": self.gan.d_scaler},
        )
        self.stop = StopRequest()
        self.supervisor = Supervisor(
            tc,
            self.state,
            self.dist,
            self.device,
            self.guard,
            self.checkpoints,
            self.telemetry,
            self.stop,
            time_budget_s,
            self.feed.failed,
        )
        self._prepare_run(resume)

    # ------------------------------------------------------------------ setup helpers
    @property
    def train_ds(self):
        return self.feed.train_ds

    @property
    def val_ds(self):
        return self.feed.val_ds

    def log(self, msg: str) -> None:
        self.telemetry.log(msg)

    def _check_run_dir(self, resume: bool) -> None:
        """Refuse a folder that holds a run (without --resume), a --resume with nothing to
        resume, and a folder another trainer holds (checked again when the lock is taken)."""
        has_started = (self.run_dir / "checkpoints").exists() or (
            self.run_dir / "metrics.jsonl"
        ).exists()
        if has_started and not resume:
            raise TrainingError(
                f"{self.run_dir} already holds a training run; pass --resume to continue it "
                "or choose a new --out folder"
            )
        if resume and not has_run(self.run_dir):
            raise TrainingError(
                f"--resume: nothing to resume in {self.run_dir} (no checkpoint, no config.yaml);"
                " drop --resume to start a new run there, or check the --out path"
            )
        if self.dist.is_main:  # fail fast, before models and data are built
            self.lock.acquire()
            self.lock.release()

    def _prepare_run(self, resume: bool) -> None:
        """Resume from the newest intact checkpoint (redoing a rollback that was decided but
        not done), check the validation set, write config.yaml (a change recorded in
        overrides.log). Nothing is written into the run before the lock is held; on an error
        the lock is let go."""
        state = self.state
        try:
            if resume and list_checkpoints(self.run_dir):
                path = self.checkpoints.restore_latest(state, self.log)
                self.telemetry.metrics.truncate_to(state.metrics_bytes, state.step)
                self.telemetry.event("resume", f"resumed from {path.name} (step {state.step})")
                self.log(f"resuming from {path.name} (step {state.step})")
                if state.pending == PENDING_ROLLBACK and not self.supervisor.rollback():
                    state.pending = None
            elif resume:
                self.log(f"warning: {self.run_dir} has no complete checkpoint; starting at step 0")
            if len(self.val_ds) == 0 and self.cfg.train.guard.enabled:
                raise TrainingError(
                    "no validation files, so the collapse guard would see nothing and call "
                    "every validation healthy; pass --val-data, raise data.val_fraction, or set "
                    "train.guard.enabled=false"
                )
            self.feed.attach_error_log(self.run_dir)
            if self.dist.is_main:
                self.feed.failed(announce=False)  # files that went bad before a resume
                changes = record_config(self.run_dir, self.cfg, state.step)
                if changes:
                    keys = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
                    self.telemetry.event("config", f"config changed on resume ({keys})")
            barrier(self.dist)
        except BaseException:
            self.lock.release()
            raise

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _autocast(self) -> AbstractContextManager:
        return self.gan.autocast()

    def _set_lr(self) -> None:
        """Learning rates for this step: the schedule runs over the run's real length, i.e.
        `train(max_steps)` (not the config's default) and, with a time budget, the budget."""
        tc, state = self.cfg.train, self.state
        horizon = state.horizon or tc.max_steps
        progress = None
        if self.time_budget_s:
            progress = state.train_seconds / self.time_budget_s
        for opt, oc in ((self.gan.g_opt, tc.g_optim), (self.gan.d_opt, tc.d_optim)):
            if opt is None:
                continue
            lr = oc.lr * state.lr_scale * lr_factor(state.step, oc, horizon, progress)
            for group in opt.param_groups:
                group["lr"] = lr

    # ------------------------------------------------------------------ one step
    def train_step(self, xs: list[torch.Tensor]) -> dict[str, float]:
        """One optimizer step at the current step (not counted), outside the loop: for tests
        and benchmarks. Returns every logged number as a float (one host transfer) and
        ``finite`` (1.0: the update was taken)."""
        self._set_lr()
        result = self.gan(xs, self.state.step)
        self.quantizer_stats.add(result.quantizer)
        return {**result.scalars(), **self._step_info(), "finite": float(result.finite)}

    def _step_info(self) -> dict[str, float]:
        """The learning rates and loss scale now (host values, no transfer but fp16's scale)."""
        info = {"lr/g": self.gan.g_opt.param_groups[0]["lr"]}
        if self.gan.d_opt is not None:
            info["lr/d"] = self.gan.d_opt.param_groups[0]["lr"]
        if self.gan.g_scaler is not None:
            info["amp/scale_g"] = self.gan.g_scaler.get_scale()
        return info

    def _count_step(self, result: StepResult) -> None:
        """Advance the step, training time and audio seen (a taken update only)."""
        self.state.train_seconds += self.telemetry.tick(counted=result.finite)
        if result.finite:
            gb, seg = self.telemetry.global_batch()
            self.state.step += 1
            self.state.audio_seconds += gb * seg

    # ------------------------------------------------------------------ the loop
    def train(self, max_steps: int | None = None) -> TrainResult:
        """Train until `max_steps`, the time budget, SIGINT / SIGTERM, the guard or too many
        unreadable files. The run folder's lock is let go at the end, however it ends.

        `max_steps` defaults to where the run was headed before (a resumed run) or
        `train.max_steps`; the learning-rate schedule ends there.
        """
        if self.dist.is_main:
            self.lock.acquire()  # held since __init__; taken again by a second train()
        if self.device.type == "cpu":
            # Adam states of weights that get no gradient for a while decay into denormals,
            # and every step slowed to 0.69 s (FINDINGS: the pitch prototype); flushed, no cost
            torch.set_flush_denormal(True)
        try:
            return self._train(max_steps)
        finally:
            self.lock.release()

    def _train(self, max_steps: int | None) -> TrainResult:
        tc, state, sup = self.cfg.train, self.state, self.supervisor
        if max_steps is None:
            max_steps = state.horizon or tc.max_steps
        state.horizon = max_steps
        reason = "max_steps"
        with self.stop:  # the first Ctrl-C or SIGTERM stops after this step, with a checkpoint
            self._start()
            self.feed.restart()
            self.telemetry.start(max_steps)
            try:
                while state.step < max_steps:
                    stop, reason = sup.should_stop(reason)
                    if stop:
                        break
                    self._set_lr()
                    result = self.gan(self.feed.next_step(), state.step)
                    self.quantizer_stats.add(result.quantizer)
                    self._count_step(result)
                    decision = sup.observe_step(result)
                    if result.finite:  # one host transfer per log interval, none between
                        self.telemetry.log_step(result, max_steps, self._log_info)
                    decision = sup.agree(self._validate_or_checkpoint(decision, result.finite))
                    if self.dist.enabled and state.step % tc.val_every == 0:
                        sup.check_replicas(self.codec)
                    if decision == ROLLBACK:
                        if sup.rollback():
                            self.feed.restart()
                            continue
                        decision = GUARD_STOP
                    if decision == GUARD_STOP:
                        reason = sup.guard_stop()
                        break
            finally:
                self.telemetry.close()
        return self._finish(reason)

    def _log_info(self) -> dict[str, float]:
        """What a log step adds to the step's numbers: learning rates, codebook statistics."""
        return {**self._step_info(), **self.quantizer_stats.window()}

    def _start(self) -> None:
        """Log what is trained, and checkpoint step 0 (the rollback target of last resort)."""
        gb, seg = self.telemetry.global_batch()
        self.log(
            f"training {self.cfg.name}: codec {self.codec.num_parameters() / 1e6:.2f} M params"
            + (
                f", discriminators {sum(p.numel() for p in self.disc.parameters()) / 1e6:.2f} M"
                if self.disc is not None
                else ""
            )
            + f", global batch {gb} x {seg:g} s on {device_name(self.device)}"
            + (f" x {self.dist.world_size} processes" if self.dist.enabled else "")
        )
        if self.state.step == 0 and not list_checkpoints(self.run_dir):
            if self.dist.is_main:
                self.checkpoints.save(self.state, healthy=True)
            barrier(self.dist)

    def _validate_or_checkpoint(self, decision: int, finite: bool) -> int:
        """Validate every `train.val_every` steps, else checkpoint every `train.ckpt_every`."""
        tc, step = self.cfg.train, self.state.step
        if decision == CONTINUE and finite and step % tc.val_every == 0:
            return self._validate_and_checkpoint(acted_on=True)
        if decision == CONTINUE and finite and step % tc.ckpt_every == 0 and self.dist.is_main:
            self.checkpoints.save(self.state)
        return decision

    def _finish(self, reason: str) -> TrainResult:
        """Validate and checkpoint where the run stopped (unless just done), and report."""
        state, telemetry = self.state, self.telemetry
        if reason in ("max_steps", "time_budget", "interrupted") and self.dist.is_main:
            if state.step % self.cfg.train.val_every != 0 or reason != "max_steps":
                self._validate_and_checkpoint()
        if reason in ("terminated", "data") and self.dist.is_main:
            # preemption leaves seconds: save only (no validation), as fast as a checkpoint
            self.checkpoints.save(state)
            if reason == "terminated":
                self.log(f"terminated: saved step {state.step}; resume with --resume")
        barrier(self.dist)
        best = self.run_dir / "checkpoints" / "best"
        telemetry.tb.close()
        return TrainResult(
            run_dir=self.run_dir,
            step=state.step,
            reason=reason,
            last_checkpoint=latest_checkpoint(self.run_dir),
            best_checkpoint=best if best.exists() else None,
            last_validation=self.last_val,
            wall_seconds=state.train_seconds,
            audio_hours=state.audio_seconds / 3600,
            cost=telemetry.cost(state.train_seconds),
            events=telemetry.events,
            data_hours=telemetry.data_hours(),
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Health metrics on the held-out set at the model's full bitrate (see `validation.py`)."""
        with no_autotune():  # whole files, of many lengths
            result = validate(
                self.codec, self.disc, self.val_ds, self.cfg, self.device, self._autocast
            )
        step, tb = self.state.step, self.telemetry.tb
        for j, (xs, ys) in enumerate(result.samples):
            tb.audio(f"val/{j}/input", xs, step, self.codec.sample_rate)
            tb.audio(f"val/{j}/reconstruction", ys, step, self.codec.sample_rate)
            if j == 0:
                tb.spectrograms("val/spectrogram", xs, ys, step)
        return result.metrics

    def _validate_and_checkpoint(self, acted_on: bool = False) -> int:
        """Validate (rank 0), log the health line, checkpoint, update best; return a decision.

        With `acted_on` (in the loop, not at the end of a run) a rollback decision is saved
        with the checkpoint, so that a kill before it is done cannot lose it.
        """
        if not self.dist.is_main:
            return CONTINUE
        step, telemetry = self.state.step, self.telemetry
        val = self.validate()
        val.update(self.quantizer_stats.since_validation())
        events = self.guard.observe_validation(step, val)
        health = CollapseGuard.summary(events)
        self.last_val = dict(val, health=health)
        telemetry.metrics.write("val", step, **val, health=health)
        telemetry.tb.scalars(val, step)
        cost = telemetry.cost(self.state.train_seconds)
        self.log(health_line(step, val, health, cost, telemetry.currency))
        decision = self.supervisor.act(events)
        if acted_on and decision == ROLLBACK and self.checkpoints.can_rollback(self.state):
            self.state.pending = PENDING_ROLLBACK  # the decision is saved with the checkpoint
        self.checkpoints.save_validated(self.state, val, healthy=not events)
        return decision
