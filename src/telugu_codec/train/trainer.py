"""The GAN training loop: an explicit, step-based `Trainer`.

One step (HiFi-GAN / DAC order):
1. the codec reconstructs the batch (the quantizer updates its EMA codebooks);
2. the discriminators are updated on real audio vs the *detached* reconstruction;
3. the codec is updated on reconstruction + adversarial + feature-matching + VQ losses, judged
   by the freshly updated discriminators (whose parameters are frozen for this pass).

With gradient accumulation each micro-batch runs forward and both backwards before the next
(`train_step`). Under DDP every rank takes the same decisions (finite flags all-reduced).

Around it: learning-rate schedules, gradient clipping, mixed precision (`precision.py`: bf16,
or fp16 with loss scaling), non-finite skipping, cost accounting, TensorBoard and
metrics.jsonl. The rest is
in its own module: validation (`validation.py`), the checkpoint and rollback policy
(`rollback.py`, on the format of `checkpoints.py`), Ctrl-C (`signals.py`), the collapse guard
(`guard.py`), the data position (`data.train_batches`).

Longer than ~500 lines on purpose (about 1,050): `Trainer` is the one object that holds a run's
state (models, optimizers, data position, bookkeeping) and each method is one short stage of the
loop; `_train()` itself fits on one screen. Splitting the class would only pass that state
around. What grew it since the layout issue (the run-folder lock and resume, bad-data handling,
quantizer statistics, DDP replica checks) is state-holding glue; the policies themselves live in
`runfolder.py`, `rollback.py`, `validation.py` and `guard.py`. The next candidate to move out is
the bad-data bookkeeping (`_check_data`), once the stream datasets report through the same log.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import losses as L
from ..config import Config
from ..config_checks import check_config
from ..data import Batch, build_datasets, train_batches
from ..errors import TrainingError
from ..model.codec import Codec, CodecOutput
from ..model.discriminators import Discriminators
from .checkpoints import latest_checkpoint, list_checkpoints
from .distill import build_distiller
from .distributed import (
    DistInfo,
    all_ranks_true,
    all_reduce_max,
    barrier,
    broadcast_int,
    init_distributed,
    replicas_agree,
)
from .finetune import freeze, init_weights
from .guard import CollapseGuard, GuardEvent
from .logging import MetricsLog, TensorBoard
from .precision import (
    AUTOCAST_DTYPES,
    configure_kernels,
    grad_scaler,
    native_bf16,
    no_autotune,
    resolve_precision,
)
from .rollback import PENDING_ROLLBACK, RunCheckpoints
from .runfolder import RunLock, has_run, record_config
from .schedules import lr_factor
from .signals import StopRequest
from .validation import QuantizerStats, health_line, validate

# decisions broadcast from rank 0 each step
_CONTINUE, _SAVE_AND_STOP, _ROLLBACK, _GUARD_STOP = 0, 1, 2, 3
# stops any rank can ask for (the largest wins, `_should_stop`): SIGTERM, unreadable data
_TERMINATE, _DATA_STOP = 4, 5
DATA_ERRORS_FILE = "data_errors.jsonl"  # training files that went bad during the run


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


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module


@dataclass
class _Update:
    """What a step's optimizer update did; every rank alike (the flags are reduced)."""

    finite: bool = True  # taken (or none was due)
    overflow: bool = False  # fp16: skipped while the loss scaler lowers its scale
    d_updated: bool = False  # the discriminators stepped

    @property
    def allows_g(self) -> bool:
        """G may step after this (D's) update: it was taken, or only D's scale overflowed
        (G is then judged by the unchanged D)."""
        return self.finite or self.overflow

    def after(self, d: _Update) -> _Update:
        """This (G's) update, preceded by D's `d`: the step's outcome."""
        return _Update(self.finite, self.overflow, d.d_updated)


@dataclass
class _QuantizerRecord:
    """What `QuantizerStats` and the log need of a micro-batch's `CodecOutput` (no graph)."""

    perplexity: torch.Tensor
    replaced: torch.Tensor | None
    warming_up: bool


def _add(sums: dict[str, torch.Tensor], key: str, value: torch.Tensor, n: int) -> None:
    """sums[key] += value / n, detached, in fp32, on the device (no host transfer)."""
    v = value.detach().float() / n
    sums[key] = sums[key] + v if key in sums else v


def _scaled(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    return loss if scaler is None else scaler.scale(loss)


@dataclass
class _Clock:
    """Wall-clock bookkeeping of the loop: the last step's end and the throughput window."""

    last: float
    window_start: float
    window_steps: int = 0


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
        self.dist: DistInfo = init_distributed()
        self.lock = RunLock(self.run_dir)  # taken by rank 0 before it writes into run_dir
        self.log_fn = log
        self._bar = None  # the progress bar while training
        self._estimated_at: int | None = None  # step of the last time-to-finish estimate
        self.cost_per_hour, self.currency = cost_per_hour, currency
        self.time_budget_s = time_budget_s
        self.progress = progress and self.dist.is_main
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        tc = config.train
        self.precision = resolve_precision(tc.precision, self.device.type, native_bf16(self.device))
        self.autocast_dtype = AUTOCAST_DTYPES[self.precision]

        self._check_run_dir(resume)
        self._seed(tc.seed)

        # models
        self.codec = Codec(config.model, config).to(self.device)
        self.disc: Discriminators | None = None
        if config.discriminator.kinds and (config.loss.adv > 0 or config.loss.fm > 0):
            self.disc = Discriminators(config.discriminator, config.model.sample_rate).to(
                self.device
            )
        # fine-tuning (finetune.py): another run's weights at step 0, parts kept fixed
        if tc.init_from and not (resume and latest_checkpoint(self.run_dir) is not None):
            init_weights(self.codec, self.disc, tc.init_from, self.log)
        freeze(self.codec, tc.freeze)
        fused = tc.fused_optimizer and self.device.type == "cuda"
        self.g_opt = torch.optim.AdamW(
            self.codec.parameters(),
            lr=tc.g_optim.lr,
            betas=tc.g_optim.betas,
            weight_decay=tc.g_optim.weight_decay,
            fused=fused or None,
        )
        self.d_opt = None
        if self.disc is not None:
            self.d_opt = torch.optim.AdamW(
                self.disc.parameters(),
                lr=tc.d_optim.lr,
                betas=tc.d_optim.betas,
                weight_decay=tc.d_optim.weight_decay,
                fused=fused or None,
            )
        # fp16 only: one loss scaler per optimizer (D's and G's losses differ in scale)
        self.g_scaler = grad_scaler(self.precision, self.device)
        self.d_scaler = grad_scaler(self.precision, self.device) if self.d_opt else None
        configure_kernels(self.device, tc.tf32, fixed_shapes=True)  # training crops: one length
        if tc.compile:  # in place: the state-dict keys (checkpoints) stay the same
            for module in (self.codec.encoder, self.codec.decoder, self.disc):
                if module is not None:
                    module.compile(backend=tc.compile_backend)
        self.g_model: nn.Module = self.codec
        self.d_model: nn.Module | None = self.disc
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            ids = [self.dist.local_rank] if self.device.type == "cuda" else None
            self.g_model = DDP(self.codec, device_ids=ids, broadcast_buffers=False)
            if self.disc is not None:
                self.d_model = DDP(self.disc, device_ids=ids, broadcast_buffers=False)

        # losses
        lc = config.loss
        sr = config.model.sample_rate
        self.recon = L.build_generator_losses(lc, sr).to(self.device)
        self.weights = dict(self.recon.weights, adv=lc.adv, fm=lc.fm)
        self.balancer = L.LossBalancer.from_config(lc) if lc.balancer else None
        self.guard = CollapseGuard(
            tc.guard,
            num_codes=self.codec.quantizer.num_codes,
            adversarial_from=tc.d_warmup_steps if self.disc is not None else None,
        )
        self.quantizer_stats = QuantizerStats(self.codec.quantizer.num_codes)

        # data
        self.train_ds, self.val_ds, self.data_report = build_datasets(
            data,
            config.data,
            sr,
            val_data=val_data,
            log=self.log if self.dist.is_main else (lambda _m: None),
        )
        self.distill = build_distiller(config, self.codec, self.log)  # issue 25: None when off
        if self.distill is not None:
            self.train_ds = self.distill.wrap(self.train_ds)

        # bookkeeping (all JSON-able; saved in checkpoints)
        self.state = {
            "step": 0,
            "epoch": 0,
            "batch_in_epoch": 0,
            "lr_scale": 1.0,
            "rollbacks": 0,
            "best_value": None,
            "best_step": None,
            "last_healthy": None,
            "audio_seconds": 0.0,
            "train_seconds": 0.0,
            "nonfinite_total": 0,
            "healthy": True,
            "horizon": None,  # the step the run ends at (the LR schedule's length)
            "data_stream": None,  # tar shards: every loader worker's position (data.batches)
            "data_seen": {},  # crops used per corpus
            "data_skipped": {},  # unreadable items passed over, by reason
        }
        self.nonfinite_streak = 0
        self.events: list[dict] = []
        self.last_val: dict = {}
        self.bad_files: dict[str, str] = {}  # training files that went bad: path -> error
        if self.dist.is_main:
            self.lock.acquire()
        self.metrics = MetricsLog(self.run_dir, enabled=self.dist.is_main)
        self.tb = TensorBoard(self.run_dir / "tb", enabled=tensorboard and self.dist.is_main)
        optimizers = {"g": self.g_opt} | ({"d": self.d_opt} if self.d_opt is not None else {})
        self.checkpoints = RunCheckpoints(
            self.run_dir,
            self.codec,
            self.disc,
            optimizers,
            self.guard,
            self.balancer,
            tc,
            metrics_file=self.metrics.path if self.dist.is_main else None,
            scalers={"g": self.g_scaler, "d": self.d_scaler},
        )
        self.stop = StopRequest()
        self._prepare_run(resume)

    # ------------------------------------------------------------------ setup helpers
    def log(self, msg: str) -> None:
        if self.dist.is_main:
            if self.progress and self._bar is not None:
                self._bar.write(msg)
            else:
                self.log_fn(msg)

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
        try:
            if resume and list_checkpoints(self.run_dir):
                path = self.checkpoints.restore_latest(self.state, self.log)
                self.metrics.truncate_to(self.state.get("metrics_bytes"), self.state["step"])
                self._event("resume", f"resumed from {path.name} (step {self.state['step']})")
                self.log(f"resuming from {path.name} (step {self.state['step']})")
                if self.state.get("pending") == PENDING_ROLLBACK and not self._rollback():
                    self.state["pending"] = None
            elif resume:
                self.log(f"warning: {self.run_dir} has no complete checkpoint; starting at step 0")
            if len(self.val_ds) == 0 and self.cfg.train.guard.enabled:
                raise TrainingError(
                    "no validation files, so the collapse guard would see nothing and call "
                    "every validation healthy; pass --val-data, raise data.val_fraction, or set "
                    "train.guard.enabled=false"
                )
            log_file = self.run_dir / DATA_ERRORS_FILE
            for ds in (self.train_ds, self.val_ds):  # streams and mixes count `skipped` instead
                if getattr(ds, "failures", None) is not None:
                    ds.failures.log_file = log_file
            if self.dist.is_main:
                self._check_data(announce=False)  # files that went bad before a resume
                changes = record_config(self.run_dir, self.cfg, self.state["step"])
                if changes:
                    keys = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())
                    self._event("config", f"config changed on resume ({keys})")
            barrier(self.dist)
        except BaseException:
            self.lock.release()
            raise

    @staticmethod
    def _seed(seed: int) -> None:
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _set_lr(self) -> None:
        """Learning rates for this step: the schedule runs over the run's real length, i.e.
        `train(max_steps)` (not the config's default) and, with a time budget, the budget."""
        tc, step = self.cfg.train, self.state["step"]
        scale = self.state["lr_scale"]
        horizon = self.state.get("horizon") or tc.max_steps
        progress = None
        if self.time_budget_s:
            progress = self.state["train_seconds"] / self.time_budget_s
        for opt, oc in ((self.g_opt, tc.g_optim), (self.d_opt, tc.d_optim)):
            if opt is None:
                continue
            lr = oc.lr * scale * lr_factor(step, oc, horizon, progress)
            for group in opt.param_groups:
                group["lr"] = lr

    def _event(self, event: str, message: str) -> None:
        rec = self.metrics.write("event", self.state["step"], event=event, message=message)
        self.events.append(rec)

    def _cost(self, seconds: float) -> float | None:
        return None if self.cost_per_hour is None else self.cost_per_hour * seconds / 3600

    def _global_batch(self) -> tuple[int, float]:
        """(items per optimizer step over all ranks, seconds per item)."""
        gb = self.cfg.data.batch_size * self.cfg.train.grad_accum * self.dist.world_size
        return gb, self.cfg.data.segment_seconds

    # ------------------------------------------------------------------ data
    def _batches(self) -> Iterator[torch.Tensor]:
        it = train_batches(
            self.train_ds,
            self.cfg.data,
            seed=self.cfg.train.seed,
            start_epoch=self.state["epoch"],
            start_batch=self.state["batch_in_epoch"],
            stream=self.state.get("data_stream"),
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        if self.distill is not None:  # issue 25
            self.distill.reset()
        for batch in it:
            self.state["epoch"], self.state["batch_in_epoch"] = batch.epoch, batch.index + 1
            self._count_data(batch)
            yield batch.audio if self.distill is None else self.distill.take(batch.audio)

    def _count_data(self, batch: Batch) -> None:
        """Crops per corpus and items passed over (all processes), kept in the state."""
        self.state["data_stream"] = batch.stream
        for key, counts in (("data_seen", batch.seen), ("data_skipped", batch.skipped)):
            total = self.state.setdefault(key, {})
            for k, v in counts.items():
                total[k] = total.get(k, 0) + v
        if batch.skipped:
            self.log(f"data: passed over {batch.skipped} (unreadable or corrupt)")

    def _data_hours(self) -> dict[str, float]:
        seg = self.cfg.data.segment_seconds
        return {k: v * seg / 3600 for k, v in self.state.get("data_seen", {}).items()}

    # ------------------------------------------------------------------ one step
    def _adversarial_on(self) -> bool:
        return self.disc is not None and self.state["step"] >= self.cfg.train.d_warmup_steps

    def generator_losses(
        self, x: torch.Tensor, out: CodecOutput, adversarial: bool
    ) -> dict[str, torch.Tensor]:
        """Unweighted generator loss terms for one micro-batch (weights applied by the caller).

        Args:
            x: (B, 1, T) real audio; out: the codec's reconstruction of it.
        """
        w = self.weights
        terms = self.recon(out.audio.float(), x.float())
        if adversarial and (w["adv"] > 0 or w["fm"] > 0):
            d = _unwrap(self.d_model)
            with self._autocast():
                fake = d(out.audio)
                with torch.no_grad():
                    real = d(x)
            if w["adv"] > 0:
                terms["adv"] = L.generator_adversarial_loss(
                    [f.logits.float() for f in fake],
                    self.cfg.loss.adversarial,
                    reduction=self.cfg.loss.gan_reduction,
                )
            if w["fm"] > 0:
                terms["fm"] = L.feature_matching_loss(
                    [[t.float() for t in r.features] for r in real],
                    [[t.float() for t in f.features] for f in fake],
                    relative=self.cfg.loss.feature_matching == "relative",
                    reduction=self.cfg.loss.gan_reduction,
                )
        return terms

    def train_step(self, xs: list[torch.Tensor]) -> dict[str, float]:
        """One optimizer step of D then G over `xs` (micro-batches). Returns logged values.

        One micro-batch: HiFi-GAN / DAC order (the codec's forward, D updated on the detached
        reconstruction, G updated against the updated D). Several (``train.grad_accum``): each
        micro-batch runs its forward and both backwards and frees its graph before the next, so
        accumulation saves memory; D and G step after the last one, and G's adversarial terms
        are judged by D as it was at the start of the step (D's update needs every
        micro-batch's reconstruction, and keeping their graphs until then is what accumulation
        is meant to avoid). Under DDP the gradients are reduced on the last micro-batch only.

        Every process takes the same decisions: a process whose loss is not finite still runs
        its backward (the others' gradient reductions wait for it), and whether to update is
        decided on the finite flags of all processes together.
        """
        self.g_model.train()
        self._set_lr()
        adversarial = self._adversarial_on()
        d_due = adversarial and self.state["step"] % self.cfg.train.d_update_every == 0
        if d_due:
            self.d_model.train()
            self.d_opt.zero_grad(set_to_none=True)
        self.g_opt.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        logs: dict[str, float] = {}
        if len(xs) == 1:
            step = self._alternating_step(xs[0], adversarial, d_due, sums, logs)
        else:
            step = self._accumulating_step(xs, adversarial, d_due, sums, logs)
        # one host transfer for every logged number of the step
        names = list(sums)
        logs.update(zip(names, torch.stack([sums[k] for k in names]).tolist()))
        logs["lr/g"] = self.g_opt.param_groups[0]["lr"]
        if self.d_opt is not None:
            logs["lr/d"] = self.d_opt.param_groups[0]["lr"]
        if self.g_scaler is not None:
            logs["amp/scale_g"] = self.g_scaler.get_scale()
        logs["finite"] = float(step.finite)
        logs["_overflow"] = float(step.overflow)
        logs["_d_loss"] = logs.get("loss/d") if step.d_updated else None  # type: ignore[assignment]
        return logs

    def _alternating_step(
        self,
        x: torch.Tensor,
        adversarial: bool,
        d_due: bool,
        sums: dict[str, torch.Tensor],
        logs: dict[str, float],
    ) -> _Update:
        """One micro-batch: forward, D's update, then G's against the updated D."""
        with self._autocast():
            out = self.g_model(x)
        d = _Update()
        if d_due:
            _add(sums, "loss/d", self._d_backward(x, out.audio, 1), 1)
            d = self._update(self.d_opt, self.d_scaler, self.disc, "d", sums)
        self._g_backward(x, out, adversarial, 1, sums, logs)
        self._record_quantizer([out], logs)
        g = self._update(self.g_opt, self.g_scaler, self.codec, "g", sums, allowed=d.allows_g)
        return g.after(d)

    def _accumulating_step(
        self,
        xs: list[torch.Tensor],
        adversarial: bool,
        d_due: bool,
        sums: dict[str, torch.Tensor],
        logs: dict[str, float],
    ) -> _Update:
        """Micro-batches one after the other (forward, D's and G's backward), then the updates."""
        n = len(xs)
        kept = []  # what the quantizer statistics need, without the graphs
        for i, x in enumerate(xs):
            with self._no_sync(i < n - 1):
                with self._autocast():
                    out = self.g_model(x)
                if d_due:
                    _add(sums, "loss/d", self._d_backward(x, out.audio, n), n)
                self._g_backward(x, out, adversarial, n, sums, logs)
            kept.append(_QuantizerRecord(out.perplexity.detach(), out.replaced, out.warming_up))
        self._record_quantizer(kept, logs)
        d = _Update()
        if d_due:
            d = self._update(self.d_opt, self.d_scaler, self.disc, "d", sums)
        g = self._update(self.g_opt, self.g_scaler, self.codec, "g", sums, allowed=d.allows_g)
        return g.after(d)

    def _d_backward(self, x: torch.Tensor, fake: torch.Tensor, n: int) -> torch.Tensor:
        """D's loss on real `x` vs the detached `fake`, backpropagated divided by `n`.

        Returns:
            The loss, detached (no host transfer).
        """
        lc = self.cfg.loss
        with self._autocast():
            real_out = self.d_model(x)
            fake_out = self.d_model(fake.detach())
        loss = L.discriminator_loss(
            [r.logits.float() for r in real_out],
            [f.logits.float() for f in fake_out],
            lc.adversarial,
            reduction=lc.gan_reduction,
        )
        _scaled(loss / n, self.d_scaler).backward()
        return loss.detach()

    def _g_backward(
        self,
        x: torch.Tensor,
        out: CodecOutput,
        adversarial: bool,
        n: int,
        sums: dict[str, torch.Tensor],
        logs: dict[str, float],
    ) -> None:
        """G's loss terms for one micro-batch, backpropagated divided by `n` (D frozen); the
        terms are added to `sums`. Runs even when a term is not finite (see `train_step`)."""
        lc = self.cfg.loss
        with self._frozen_disc():
            terms = self.generator_losses(x, out, adversarial)
            commit = out.commit_loss * lc.vq
            if self.distill is not None:  # issue 25: outside the balancer, like commit
                distill = self.distill.loss(out)
                commit = commit + lc.distill * distill
                _add(sums, "loss/distill", distill.detach(), n)
            if self.balancer is not None and terms:
                grad, stats = self.balancer.combined_grad(terms, out.audio)
                surrogate = (out.audio.float() * grad).sum() + commit
                logs.update({f"balancer/{k}": v for k, v in stats.items()})
                total = sum(self.weights[k] * v.detach() for k, v in terms.items()) + commit
            else:
                total = sum((self.weights[k] * v for k, v in terms.items()), commit)
                surrogate = total
            _scaled(surrogate / n, self.g_scaler).backward()
        for k, v in terms.items():
            _add(sums, f"loss/{k}", v, n)
        _add(sums, "loss/commit", out.commit_loss, n)
        _add(sums, "loss/g_total", total, n)

    def _update(
        self,
        opt: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler | None,
        model: nn.Module,
        name: str,
        sums: dict[str, torch.Tensor],
        allowed: bool = True,
    ) -> _Update:
        """Clip and step `opt` when the loss and the gradient norm are finite on every rank.

        Args:
            name: "d" or "g"; the loss checked is ``sums["loss/d"]`` or ``sums["loss/g_total"]``,
                and ``grad_norm/{name}`` is added to `sums`.
            allowed: False when the step is skipped already (D's loss or gradient was not
                finite).
        """
        if scaler is not None:
            scaler.unscale_(opt)
        clip = (self.cfg.train.d_optim if name == "d" else self.cfg.train.g_optim).grad_clip
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        sums[f"grad_norm/{name}"] = norm.detach().float()
        loss = sums["loss/d" if name == "d" else "loss/g_total"]
        flags = torch.stack([torch.isfinite(loss), torch.isfinite(norm)])
        loss_ok, grad_ok = all_ranks_true(flags, self.dist)
        finite = allowed and loss_ok and grad_ok
        if finite:
            if scaler is not None:
                scaler.step(opt)
            else:
                opt.step()
        else:
            opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.update()  # an overflow lowers the scale
        # fp16: a finite loss with an infinite gradient is the scaler finding its scale
        overflow = scaler is not None and allowed and loss_ok and not grad_ok
        return _Update(finite=finite, overflow=overflow, d_updated=name == "d" and finite)

    def _record_quantizer(self, outs: list, logs: dict[str, float]) -> None:
        self.quantizer_stats.add(outs)
        logs["perplexity/q0"] = float(outs[0].perplexity[0])

    @contextmanager
    def _frozen_disc(self) -> Iterator[None]:
        """D's parameters frozen: G's adversarial terms reach G only."""
        if self.disc is None:
            yield
            return
        self.disc.requires_grad_(False)
        try:
            yield
        finally:
            self.disc.requires_grad_(True)

    def _no_sync(self, skip: bool):
        """Under DDP with `skip`: no gradient reduction in this block (an accumulated micro-batch
        that is not the last)."""
        stack = ExitStack()
        if skip and self.dist.enabled:
            for model in (self.g_model, self.d_model):
                if model is not None and hasattr(model, "no_sync"):
                    stack.enter_context(model.no_sync())
        return stack

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
        tc = self.cfg.train
        if max_steps is None:
            max_steps = self.state.get("horizon") or tc.max_steps
        self.state["horizon"] = max_steps
        reason = "max_steps"
        with self.stop:  # the first Ctrl-C or SIGTERM stops after this step, with a checkpoint
            self._start()
            batches = self._batches()
            self._bar = self._progress_bar(max_steps)
            clock = _Clock(time.time(), time.time())
            try:
                while self.state["step"] < max_steps:
                    stop, reason = self._should_stop(reason)
                    if stop:
                        break
                    xs = [
                        next(batches).to(self.device, non_blocking=True)
                        for _ in range(tc.grad_accum)
                    ]
                    logs = self.train_step(xs)
                    d_loss, finite = logs.pop("_d_loss"), bool(logs.pop("finite"))
                    self._count_step(finite, clock, overflow=bool(logs.pop("_overflow")))
                    decision = self._guard_decision(d_loss)
                    if finite:
                        self._log_step(logs, max_steps, clock)
                    decision = self._validate_or_checkpoint(decision, finite)
                    decision = broadcast_int(decision, self.dist, self.device)
                    if self.dist.enabled and self.state["step"] % tc.val_every == 0:
                        self._check_replicas()
                    if decision == _ROLLBACK:
                        if self._rollback():
                            batches = self._batches()
                            continue
                        decision = _GUARD_STOP
                    if decision == _GUARD_STOP:
                        reason = self._guard_stop()
                        break
            finally:
                if self._bar is not None:
                    self._bar.close()
                self._bar = None
        return self._finish(reason)

    def _start(self) -> None:
        """Log what is trained, and checkpoint step 0 (the rollback target of last resort)."""
        gb, seg = self._global_batch()
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
        if self.state["step"] == 0 and not list_checkpoints(self.run_dir):
            if self.dist.is_main:
                self.checkpoints.save(self.state, healthy=True)
            barrier(self.dist)

    def _progress_bar(self, max_steps: int):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=max_steps, initial=self.state["step"], unit="step", dynamic_ncols=True)

    def expected_steps(self, max_steps: int, steps_per_s: float | None) -> int:
        """The step the run will end at: `max_steps`, or earlier when the time budget ends it
        first (estimated from the measured speed)."""
        if self.time_budget_s is None or not steps_per_s:
            return max_steps
        left = max(0.0, self.time_budget_s - self.state["train_seconds"])
        return min(max_steps, self.state["step"] + int(round(left * steps_per_s)))

    def _should_stop(self, reason: str) -> tuple[bool, str]:
        """Ctrl-C, SIGTERM, the time budget or too many unreadable files.

        A signal may reach any rank (the largest request wins); the time budget and the data
        are judged by rank 0. Every rank stops at the same step.
        """
        decision = _CONTINUE
        if self.stop.requested:
            decision = _TERMINATE if self.stop.terminated else _SAVE_AND_STOP
            reason = "terminated" if self.stop.terminated else "interrupted"
        if self.time_budget_s is not None and self.state["train_seconds"] >= self.time_budget_s:
            if self.dist.is_main and decision == _CONTINUE:
                decision, reason = _SAVE_AND_STOP, "time_budget"
        if self.dist.is_main and self._check_data():
            decision, reason = _DATA_STOP, "data"
        decision = all_reduce_max(decision, self.dist, self.device)
        if decision != _CONTINUE:
            names = {_TERMINATE: "terminated", _DATA_STOP: "data"}
            return True, reason if self.dist.is_main else names.get(decision, "stopped")
        return False, reason

    def _check_data(self, announce: bool = True) -> bool:
        """Log each training or validation file that went bad (once); True when more than
        ``data.max_bad_fraction`` of them have. (Streams and mixes of corpora pass over bad
        items themselves and count them in ``data_skipped``.)"""
        failures = next(
            (d.failures for d in (self.train_ds, self.val_ds) if getattr(d, "failures", None)),
            None,
        )
        if failures is None:
            return False
        for rec in failures.new_records():
            path = str(rec.get("path"))
            if path in self.bad_files:
                continue
            self.bad_files[path] = str(rec.get("error"))
            if not announce:
                continue
            self._event("data", f"skipping {path}: {rec.get('error')}")
            self.log(
                f"data: skipping {path} ({rec.get('error')}); {len(self.bad_files)} file(s) "
                "unreadable so far"
            )
        try:
            total = len(self.train_ds) + len(self.val_ds)
        except TypeError:  # a stream has no length
            total = len(self.val_ds) + len(self.bad_files)
        limit = self.cfg.data.max_bad_fraction * total
        if len(self.bad_files) <= limit:
            return False
        path, error = next(iter(self.bad_files.items()))
        self._event(
            "stop",
            f"{len(self.bad_files)} of {total} data files became unreadable during training "
            f"(more than data.max_bad_fraction = {self.cfg.data.max_bad_fraction}; e.g. "
            f"{path}: {error}); fix the data (list in {DATA_ERRORS_FILE}), then --resume",
        )
        return True

    def _count_step(self, finite: bool, clock: _Clock, overflow: bool = False) -> None:
        """Advance the step, training time and audio seen; count a skipped non-finite update
        (but not an fp16 overflow: the loss scaler skips those by design while it lowers its
        scale; the step is simply taken again)."""
        gb, seg = self._global_batch()
        now = time.time()
        self.state["train_seconds"] += now - clock.last
        clock.last = now
        if finite:
            self.nonfinite_streak = 0
            self.state["step"] += 1
            self.state["audio_seconds"] += gb * seg
            clock.window_steps += 1
        elif not overflow:
            self.nonfinite_streak += 1
            self.state["nonfinite_total"] += 1
            self._event(
                "nonfinite",
                f"non-finite loss or gradient; update skipped ({self.nonfinite_streak} in a row)",
            )

    def _guard_decision(self, d_loss: float | None) -> int:
        """The guard's view of this step (D overpowering, non-finite streaks) as a decision."""
        tc = self.cfg.train
        step = self.state["step"]
        events = self.guard.observe_step(step, d_loss)
        if self.nonfinite_streak >= tc.max_nonfinite:
            events.append(self.guard.nonfinite(step, self.nonfinite_streak))
            if tc.guard.action == "warn":  # NaNs cannot be trained through
                events[-1].message += "; stopping"
        decision = self._act(events) if self.dist.is_main else _CONTINUE
        if self.nonfinite_streak >= tc.max_nonfinite and decision == _CONTINUE:
            decision = _GUARD_STOP
        return decision

    def _act(self, events: list[GuardEvent]) -> int:
        """Turn guard events into a decision according to the configured action."""
        if not events:
            return _CONTINUE
        for e in events:
            self._event("warning", f"{e.kind}: {e.message}")
        action = self.cfg.train.guard.action
        if action == "stop":
            return _GUARD_STOP
        if action == "rollback":
            return _ROLLBACK
        return _CONTINUE

    def _log_step(self, logs: dict[str, float], max_steps: int, clock: _Clock) -> None:
        """Every `train.log_every` steps: metrics.jsonl, TensorBoard, the progress bar."""
        step = self.state["step"]
        bar = self._bar
        if step % self.cfg.train.log_every == 0 and self.dist.is_main:
            gb, seg = self._global_batch()
            elapsed = max(1e-9, time.time() - clock.window_start)
            sps = clock.window_steps / elapsed
            logs["steps_per_s"] = sps
            logs["audio_seconds_per_s"] = sps * gb * seg
            logs["audio_hours"] = self.state["audio_seconds"] / 3600
            logs.update({f"data_hours/{k}": v for k, v in self._data_hours().items()})
            logs["wall_seconds"] = self.state["train_seconds"]
            cost = self._cost(self.state["train_seconds"])
            if cost is not None:
                logs["cost"] = cost
                logs["cost_projected"] = cost / max(1, step) * max_steps
            logs.update(self.quantizer_stats.window())
            self.metrics.write("train", step, **logs)
            self._estimate(max_steps, sps)
            self.tb.scalars(logs, step)
            clock.window_start, clock.window_steps = time.time(), 0
            if bar is not None:
                bar.total = self.expected_steps(max_steps, sps)  # the ETA follows the budget
                post = {
                    k.split("/")[-1]: f"{v:.3g}" for k, v in logs.items() if k.startswith("loss/")
                }
                post["it/s"] = f"{sps:.2f}"
                if cost is not None:
                    post["cost"] = f"{cost:.1f} {self.currency}"
                bar.set_postfix(post, refresh=False)
        if bar is not None:
            bar.update(1)

    def _estimate(self, max_steps: int, steps_per_s: float) -> None:
        """Once the speed is measured (20 steps in), and again 20 steps into the adversarial
        phase (whose steps cost more), log when the run will end."""
        step, start = self.state["step"], self._estimated_at
        d_start = self.cfg.train.d_warmup_steps if self.disc is not None else 0
        due = (start is None and step >= 20) or (start is not None and start < d_start + 20 <= step)
        if not due or steps_per_s <= 0:
            return
        self._estimated_at = step
        end = self.expected_steps(max_steps, steps_per_s)
        minutes = (end - step) / steps_per_s / 60
        why = "the time budget" if end < max_steps else f"--max-steps {max_steps}"
        note = ""
        if step < d_start < end:
            note = f"; the discriminators join at step {d_start} and cost more per step"
        self.log(
            f"speed: {1 / steps_per_s:.2f} s/step; training ends at step {end} ({why}) in about "
            f"{minutes:.1f} min{note}"
        )

    def _validate_or_checkpoint(self, decision: int, finite: bool) -> int:
        """Validate every `train.val_every` steps, else checkpoint every `train.ckpt_every`."""
        tc, step = self.cfg.train, self.state["step"]
        if decision == _CONTINUE and finite and step % tc.val_every == 0:
            return self._validate_and_checkpoint(acted_on=True)
        if decision == _CONTINUE and finite and step % tc.ckpt_every == 0 and self.dist.is_main:
            self.checkpoints.save(self.state)
        return decision

    def _rollback(self) -> bool:
        """Roll back to the last healthy checkpoint (every rank); False if that is impossible.

        The decision is saved first (rank 0: a checkpoint with ``pending: rollback``, unless the
        validation's checkpoint carries it), so a kill from here on resumes into the rollback.
        """
        if self.dist.enabled:  # only rank 0 saves, so only it knows the target and the count
            target = self.state.get("last_healthy")
            step = broadcast_int(int(target[5:]) if target else -1, self.dist, self.device)
            self.state["last_healthy"] = f"step_{step:08d}" if step >= 0 else None
            self.state["rollbacks"] = broadcast_int(self.state["rollbacks"], self.dist, self.device)
        if not self.checkpoints.can_rollback(self.state):
            return False
        if self.dist.is_main and self.state.get("pending") != PENDING_ROLLBACK:
            self.state["pending"] = PENDING_ROLLBACK
            self.checkpoints.save(self.state)
        if not self.checkpoints.rollback(self.state):
            return False
        self.nonfinite_streak = 0
        self._event(
            "rollback",
            f"rolled back to {self.state['last_healthy']} with learning rates x"
            f"{self.state['lr_scale']:.3g}",
        )
        self.log(f"guard: rolled back to {self.state['last_healthy']}")
        if self._bar is not None:
            self._bar.n = self.state["step"]
        return True

    def _check_replicas(self) -> None:
        """Under DDP: every process must hold rank 0's weights and codebooks (all ranks call)."""
        if not replicas_agree(self.codec, self.dist, self.device):
            raise TrainingError(
                f"step {self.state['step']}: the processes' models differ (a buffer update that "
                "is not reduced across processes); stopping before the runs drift apart"
            )
        self._event("replicas", f"{self.dist.world_size} processes hold identical models")

    def _guard_stop(self) -> str:
        """The stop reason when the guard (or a non-finite streak) ends the run."""
        reason = "nonfinite" if self.nonfinite_streak >= self.cfg.train.max_nonfinite else "guard"
        if self.dist.is_main:
            self._event("stop", f"stopped by the collapse guard ({reason})")
        return reason

    def _finish(self, reason: str) -> TrainResult:
        """Validate and checkpoint where the run stopped (unless just done), and report."""
        if reason in ("max_steps", "time_budget", "interrupted") and self.dist.is_main:
            if self.state["step"] % self.cfg.train.val_every != 0 or reason != "max_steps":
                self._validate_and_checkpoint()
        if reason in ("terminated", "data") and self.dist.is_main:
            # preemption leaves seconds: save only (no validation), as fast as a checkpoint
            self.checkpoints.save(self.state)
            if reason == "terminated":
                self.log(f"terminated: saved step {self.state['step']}; resume with --resume")
        barrier(self.dist)
        last_ckpt = latest_checkpoint(self.run_dir)
        best = self.run_dir / "checkpoints" / "best"
        self.tb.close()
        seconds = self.state["train_seconds"]
        return TrainResult(
            run_dir=self.run_dir,
            step=self.state["step"],
            reason=reason,
            last_checkpoint=last_ckpt,
            best_checkpoint=best if best.exists() else None,
            last_validation=self.last_val,
            wall_seconds=seconds,
            audio_hours=self.state["audio_seconds"] / 3600,
            cost=self._cost(seconds),
            events=self.events,
            data_hours=self._data_hours(),
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> dict[str, float]:
        """Health metrics on the held-out set at the model's full bitrate (see `validation.py`)."""
        with no_autotune():  # whole files, of many lengths
            result = validate(
                self.codec, self.disc, self.val_ds, self.cfg, self.device, self._autocast
            )
        step = self.state["step"]
        for j, (xs, ys) in enumerate(result.samples):
            self.tb.audio(f"val/{j}/input", xs, step, self.codec.sample_rate)
            self.tb.audio(f"val/{j}/reconstruction", ys, step, self.codec.sample_rate)
            if j == 0:
                self.tb.spectrograms("val/spectrogram", xs, ys, step)
        return result.metrics

    def _validate_and_checkpoint(self, acted_on: bool = False) -> int:
        """Validate (rank 0), log the health line, checkpoint, update best; return a decision.

        With `acted_on` (in the loop, not at the end of a run) a rollback decision is saved
        with the checkpoint, so that a kill before it is done cannot lose it.
        """
        if not self.dist.is_main:
            return _CONTINUE
        step = self.state["step"]
        val = self.validate()
        val.update(self.quantizer_stats.since_validation())
        events = self.guard.observe_validation(step, val)
        health = CollapseGuard.summary(events)
        self.last_val = dict(val, health=health)
        self.metrics.write("val", step, **val, health=health)
        self.tb.scalars(val, step)
        cost = self._cost(self.state["train_seconds"])
        self.log(health_line(step, val, health, cost, self.currency))
        decision = self._act(events)
        if acted_on and decision == _ROLLBACK and self.checkpoints.can_rollback(self.state):
            self.state["pending"] = PENDING_ROLLBACK  # the decision is saved with the checkpoint
        self.checkpoints.save_validated(self.state, val, healthy=not events)
        return decision
