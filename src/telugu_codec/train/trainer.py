"""The GAN training loop: an explicit, step-based `Trainer`.

One step (HiFi-GAN / DAC order):
1. the codec reconstructs the batch (the quantizer updates its EMA codebooks);
2. the discriminators are updated on real audio vs the *detached* reconstruction;
3. the codec is updated on reconstruction + adversarial + feature-matching + VQ losses, judged
   by the freshly updated discriminators (whose parameters are frozen for this pass).

Around it: learning-rate schedules, gradient clipping, bf16 autocast on CUDA, gradient
accumulation, non-finite skipping, validation with health metrics, the collapse guard, atomic
checkpoints with exact resume, cost accounting, TensorBoard and metrics.jsonl.
"""

from __future__ import annotations

import math
import random
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import losses as L
from ..config import Config, to_yaml
from ..errors import TrainingError
from ..model.codec import Codec, CodecOutput
from ..model.discriminators import Discriminators
from .checkpoints import (
    export_best,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .distributed import DistInfo, barrier, broadcast_int, init_distributed
from .guard import CollapseGuard, GuardEvent
from .logging import MetricsLog, TensorBoard
from .schedules import lr_factor

# decisions broadcast from rank 0 each step
_CONTINUE, _SAVE_AND_STOP, _ROLLBACK, _GUARD_STOP = 0, 1, 2, 3


@dataclass
class TrainResult:
    """What a finished (or stopped) run reports."""

    run_dir: Path
    step: int
    reason: str  # max_steps | time_budget | interrupted | guard | nonfinite
    last_checkpoint: Path | None
    best_checkpoint: Path | None
    last_validation: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    audio_hours: float = 0.0
    cost: float | None = None
    events: list[dict] = field(default_factory=list)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({torch.get_num_threads()} threads)"


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module


def _finite(*values: torch.Tensor | float) -> bool:
    return all(math.isfinite(float(v)) for v in values)


class Trainer:
    """Trains a `Codec` (and its discriminators) into a run folder.

    Args:
        config: the resolved config (saved to RUN/config.yaml and into every checkpoint).
        run_dir: output folder; must not hold a previous run unless `resume`.
        data: training data (folder, manifest or corpus layout).
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
        data: str | Path,
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
        from ..data import build_datasets

        self.cfg = config
        self.run_dir = Path(run_dir)
        self.dist: DistInfo = init_distributed()
        self.log_fn = log
        self.cost_per_hour, self.currency = cost_per_hour, currency
        self.time_budget_s = time_budget_s
        self.progress = progress and self.dist.is_main
        if device is None:
            device = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        tc = config.train
        precision = tc.precision
        if precision == "auto":
            precision = "bf16" if self.device.type == "cuda" else "fp32"
        self.autocast_dtype = torch.bfloat16 if precision == "bf16" else None
        if self.dist.enabled and tc.grad_accum > 1:
            raise TrainingError(
                "gradient accumulation is not supported under torchrun; raise "
                "data.batch_size or add processes instead"
            )

        self._check_run_dir(resume)
        self._seed(tc.seed)

        # models
        self.codec = Codec(config.model, config).to(self.device)
        self.disc: Discriminators | None = None
        if config.discriminator.kinds and (config.loss.adv > 0 or config.loss.fm > 0):
            self.disc = Discriminators(config.discriminator, config.model.sample_rate).to(
                self.device
            )
        self.g_opt = torch.optim.AdamW(
            self.codec.parameters(),
            lr=tc.g_optim.lr,
            betas=tc.g_optim.betas,
            weight_decay=tc.g_optim.weight_decay,
        )
        self.d_opt = None
        if self.disc is not None:
            self.d_opt = torch.optim.AdamW(
                self.disc.parameters(),
                lr=tc.d_optim.lr,
                betas=tc.d_optim.betas,
                weight_decay=tc.d_optim.weight_decay,
            )
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
        self.guard = CollapseGuard(tc.guard)

        # data
        self.train_ds, self.val_ds, self.data_report = build_datasets(
            data,
            config.data,
            sr,
            val_data=val_data,
            log=self.log if self.dist.is_main else (lambda _m: None),
        )

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
        }
        self.nonfinite_streak = 0
        self.events: list[dict] = []
        self.last_val: dict = {}
        self.metrics = MetricsLog(self.run_dir, enabled=self.dist.is_main)
        self.tb = TensorBoard(self.run_dir / "tb", enabled=tensorboard and self.dist.is_main)
        self._stop_requested = False
        if resume and latest_checkpoint(self.run_dir) is not None:
            self._restore(latest_checkpoint(self.run_dir), restore_rng=True)
            self.metrics.truncate_after(self.state["step"])
            self._event("resume", f"resumed from step {self.state['step']}")

    # ------------------------------------------------------------------ setup helpers
    def log(self, msg: str) -> None:
        if self.dist.is_main:
            if self.progress and getattr(self, "_bar", None) is not None:
                self._bar.write(msg)
            else:
                self.log_fn(msg)

    def _check_run_dir(self, resume: bool) -> None:
        has_run = (self.run_dir / "checkpoints").exists() or (
            self.run_dir / "metrics.jsonl"
        ).exists()
        if has_run and not resume:
            raise TrainingError(
                f"{self.run_dir} already holds a training run; pass --resume to continue it "
                "or choose a new --out folder"
            )
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.yaml").write_text(to_yaml(self.cfg))
        barrier(self.dist)

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
        tc, step = self.cfg.train, self.state["step"]
        scale = self.state["lr_scale"]
        for opt, oc in ((self.g_opt, tc.g_optim), (self.d_opt, tc.d_optim)):
            if opt is None:
                continue
            lr = oc.lr * scale * lr_factor(step, oc, tc.max_steps)
            for group in opt.param_groups:
                group["lr"] = lr

    def _event(self, event: str, message: str) -> None:
        rec = self.metrics.write("event", self.state["step"], event=event, message=message)
        self.events.append(rec)

    # ------------------------------------------------------------------ data
    def _batches(self) -> Iterator[torch.Tensor]:
        from ..data import infinite_batches

        it = infinite_batches(
            self.train_ds,
            self.cfg.data,
            seed=self.cfg.train.seed,
            start_epoch=self.state["epoch"],
            start_batch=self.state["batch_in_epoch"],
            rank=self.dist.rank,
            world_size=self.dist.world_size,
        )
        for epoch, index, batch in it:
            self.state["epoch"], self.state["batch_in_epoch"] = epoch, index + 1
            yield batch

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
        """One optimizer step of D then G over `xs` (micro-batches). Returns logged values."""
        tc, lc = self.cfg.train, self.cfg.loss
        n = len(xs)
        self.g_model.train()
        self._set_lr()
        logs: dict[str, float] = {}
        with self._autocast():
            outs = [self.g_model(x) for x in xs]
        adversarial = self._adversarial_on()
        finite = True

        # 1) discriminator on real vs detached fake
        d_loss_value = None
        if adversarial and self.state["step"] % tc.d_update_every == 0:
            self.d_model.train()
            self.d_opt.zero_grad(set_to_none=True)
            d_total = 0.0
            for x, out in zip(xs, outs):
                with self._autocast():
                    real = self.d_model(x)
                    fake = self.d_model(out.audio.detach())
                loss_d = L.discriminator_loss(
                    [r.logits.float() for r in real],
                    [f.logits.float() for f in fake],
                    lc.adversarial,
                    reduction=lc.gan_reduction,
                )
                (loss_d / n).backward()
                d_total += float(loss_d.detach()) / n
            d_norm = torch.nn.utils.clip_grad_norm_(self.disc.parameters(), tc.d_optim.grad_clip)
            logs["loss/d"], logs["grad_norm/d"] = d_total, float(d_norm)
            if _finite(d_total, d_norm):
                self.d_opt.step()
                d_loss_value = d_total
            else:
                finite = False
                self.d_opt.zero_grad(set_to_none=True)

        # 2) generator against the updated (frozen) discriminator
        if self.disc is not None:
            self.disc.requires_grad_(False)
        self.g_opt.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        try:
            for x, out in zip(xs, outs):
                terms = self.generator_losses(x, out, adversarial)
                commit = out.commit_loss * lc.vq
                if self.balancer is not None and terms:
                    grad, stats = self.balancer.combined_grad(terms, out.audio)
                    surrogate = (out.audio.float() * grad).sum() + commit
                    logs.update({f"balancer/{k}": v for k, v in stats.items()})
                    total = sum(self.weights[k] * v.detach() for k, v in terms.items()) + commit
                else:
                    total = sum((self.weights[k] * v for k, v in terms.items()), commit)
                    surrogate = total
                if not _finite(total.detach()):
                    finite = False
                    break
                (surrogate / n).backward()
                for k, v in terms.items():
                    totals[f"loss/{k}"] = totals.get(f"loss/{k}", 0.0) + float(v.detach()) / n
                totals["loss/commit"] = (
                    totals.get("loss/commit", 0.0) + float(out.commit_loss.detach()) / n
                )
                totals["loss/g_total"] = totals.get("loss/g_total", 0.0) + float(total.detach()) / n
        finally:
            if self.disc is not None:
                self.disc.requires_grad_(True)
        g_norm = torch.nn.utils.clip_grad_norm_(self.codec.parameters(), tc.g_optim.grad_clip)
        logs.update(totals)
        logs["grad_norm/g"] = float(g_norm)
        if finite and _finite(g_norm):
            self.g_opt.step()
        else:
            finite = False
            self.g_opt.zero_grad(set_to_none=True)
        logs["lr/g"] = self.g_opt.param_groups[0]["lr"]
        if self.d_opt is not None:
            logs["lr/d"] = self.d_opt.param_groups[0]["lr"]
        logs["perplexity/q0"] = float(outs[0].perplexity[0])
        logs["finite"] = float(finite)
        logs["_d_loss"] = d_loss_value  # type: ignore[assignment]
        return logs

    # ------------------------------------------------------------------ validation
    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Health metrics on the held-out set at the model's full bitrate."""
        from .. import metrics as M

        codec = self.codec
        codec.eval()
        if self.disc is not None:
            self.disc.eval()
        k = codec.codebook_size
        counts = torch.zeros(codec.max_n_q, k, dtype=torch.long)
        vals: dict[str, list[float]] = {}
        d_real_ok, d_fake_ok, d_total = 0, 0, 0
        threshold = {"lsgan": 0.5}.get(self.cfg.loss.adversarial, 0.0)
        samples = []
        n_items = min(len(self.val_ds), self.cfg.data.val_max_files)
        for i in range(n_items):
            x = self.val_ds[i].to(self.device).view(1, 1, -1)
            with self._autocast():
                out = codec(x)
            y = out.audio.float()
            for c in range(out.codes.shape[1]):
                counts[c] += torch.bincount(out.codes[0, c].cpu(), minlength=k)
            xs, ys = x.view(-1).cpu(), y.view(-1).cpu()
            for name, fn in (
                ("snr", M.snr),
                ("sisdr", M.si_sdr),
                ("amplitude_ratio", M.amplitude_ratio),
                ("mel_distance", M.mel_distance),
            ):
                vals.setdefault(name, []).append(float(fn(ys, xs)))
            if self.cfg.train.val_pesq:
                p = M.pesq_wb(ys.numpy(), xs.numpy(), codec.sample_rate)
                if p is not None:
                    vals.setdefault("pesq", []).append(float(p))
            if self.disc is not None:
                with self._autocast():
                    real, fake = self.disc(x), self.disc(out.audio)
                for r, f in zip(real, fake):
                    d_real_ok += int(float(r.logits.float().mean()) > threshold)
                    d_fake_ok += int(float(f.logits.float().mean()) <= threshold)
                    d_total += 1
            if len(samples) < self.cfg.train.audio_samples:
                samples.append((xs, ys))
        result = {f"val/{k_}": float(np.mean(v)) for k_, v in vals.items()}
        dead_codes = codec.quantizer.dead_codes()
        for q in range(codec.max_n_q):
            c = counts[q].float()
            if c.sum() > 0:
                p = c / c.sum()
                result[f"val/perplexity/q{q}"] = float(torch.exp(-(p * torch.log(p + 1e-10)).sum()))
                result[f"val/usage/q{q}"] = float((c > 0).float().mean())
            if dead_codes[q] is not None:
                result[f"val/dead_codes/q{q}"] = dead_codes[q]
        if d_total:
            result["val/d_acc_real"] = d_real_ok / d_total
            result["val/d_acc_fake"] = d_fake_ok / d_total
        step = self.state["step"]
        for j, (xs, ys) in enumerate(samples):
            self.tb.audio(f"val/{j}/input", xs, step, codec.sample_rate)
            self.tb.audio(f"val/{j}/reconstruction", ys, step, codec.sample_rate)
            if j == 0:
                self.tb.spectrograms("val/spectrogram", xs, ys, step)
        return result

    # ------------------------------------------------------------------ checkpoints
    def _save(self, healthy: bool | None = None) -> Path:
        step = self.state["step"]
        if healthy is not None:
            self.state["healthy"] = healthy
            if healthy:
                self.state["last_healthy"] = f"step_{step:08d}"
        state = dict(self.state)
        state["guard"] = self.guard.state_dict()
        state["balancer"] = self.balancer.state_dict() if self.balancer is not None else None
        optimizers = {"g": self.g_opt} | ({"d": self.d_opt} if self.d_opt is not None else {})
        protect = {state["last_healthy"]} if state["last_healthy"] else set()
        if state.get("best_step") is not None:
            protect.add(f"step_{state['best_step']:08d}")
        return save_checkpoint(
            self.run_dir,
            step,
            self.codec,
            self.disc,
            optimizers,
            state,
            self.cfg.train.keep_last,
            protect,
        )

    def _restore(self, path: Path, restore_rng: bool) -> None:
        optimizers = {"g": self.g_opt} | ({"d": self.d_opt} if self.d_opt is not None else {})
        state = load_checkpoint(path, self.codec, self.disc, optimizers, restore_rng)
        self.guard.load_state_dict(state.pop("guard"))
        balancer_state = state.pop("balancer")
        if self.balancer is not None and balancer_state is not None:
            self.balancer.load_state_dict(balancer_state)
        state.pop("optimizers", None)
        state.pop("rng", None)
        self.state.update(state)

    def _rollback(self) -> bool:
        """Return to the last healthy checkpoint with lower learning rates; False if impossible."""
        gc = self.cfg.train.guard
        target = self.state.get("last_healthy")
        if target is None or self.state["rollbacks"] >= gc.max_rollbacks:
            return False
        path = self.run_dir / "checkpoints" / target
        if not path.exists():
            return False
        rollbacks, scale = self.state["rollbacks"] + 1, self.state["lr_scale"] * gc.lr_factor
        seconds, audio = self.state["train_seconds"], self.state["audio_seconds"]
        self._restore(path, restore_rng=False)
        self.state.update(
            rollbacks=rollbacks, lr_scale=scale, train_seconds=seconds, audio_seconds=audio
        )
        self.guard.reset_trends()
        self.nonfinite_streak = 0
        return True

    # ------------------------------------------------------------------ main loop
    def _on_sigint(self, signum, frame) -> None:  # noqa: ARG002
        if self._stop_requested:
            raise KeyboardInterrupt
        self._stop_requested = True

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

    def _cost(self, seconds: float) -> float | None:
        return None if self.cost_per_hour is None else self.cost_per_hour * seconds / 3600

    def train(self, max_steps: int | None = None) -> TrainResult:
        """Train until `max_steps` (default `train.max_steps`), the time budget, SIGINT or guard."""
        tc = self.cfg.train
        max_steps = tc.max_steps if max_steps is None else max_steps
        prev_handler = None
        try:
            prev_handler = signal.signal(signal.SIGINT, self._on_sigint)
        except ValueError:  # not the main thread
            pass
        reason = "max_steps"
        gb = self.cfg.data.batch_size * tc.grad_accum * self.dist.world_size
        seg = self.cfg.data.segment_seconds
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
                self._save(healthy=True)  # the rollback target of last resort
            barrier(self.dist)
        batches = self._batches()
        bar = None
        if self.progress:
            from tqdm import tqdm

            bar = tqdm(total=max_steps, initial=self.state["step"], unit="step", dynamic_ncols=True)
        self._bar = bar
        t_last = time.time()
        window_start, window_steps = time.time(), 0
        last_ckpt: Path | None = latest_checkpoint(self.run_dir)
        try:
            while self.state["step"] < max_steps:
                decision = _CONTINUE
                if self._stop_requested:
                    decision, reason = _SAVE_AND_STOP, "interrupted"
                if (
                    self.time_budget_s is not None
                    and self.state["train_seconds"] >= self.time_budget_s
                ):
                    decision, reason = _SAVE_AND_STOP, "time_budget"
                decision = broadcast_int(decision, self.dist, self.device)
                if decision == _SAVE_AND_STOP:
                    reason = reason if self.dist.is_main else "stopped"
                    break
                xs = [
                    next(batches).to(self.device, non_blocking=True) for _ in range(tc.grad_accum)
                ]
                logs = self.train_step(xs)
                d_loss = logs.pop("_d_loss")
                finite = bool(logs.pop("finite"))
                now = time.time()
                self.state["train_seconds"] += now - t_last
                t_last = now
                if finite:
                    self.nonfinite_streak = 0
                    self.state["step"] += 1
                    self.state["audio_seconds"] += gb * seg
                    window_steps += 1
                else:
                    self.nonfinite_streak += 1
                    self.state["nonfinite_total"] += 1
                    self._event(
                        "nonfinite",
                        "non-finite loss or gradient; update skipped "
                        f"({self.nonfinite_streak} in a row)",
                    )
                step = self.state["step"]
                events = self.guard.observe_step(step, d_loss)
                if self.nonfinite_streak >= tc.max_nonfinite:
                    events.append(self.guard.nonfinite(step, self.nonfinite_streak))
                    if tc.guard.action == "warn":  # NaNs cannot be trained through
                        events[-1].message += "; stopping"
                decision = self._act(events) if self.dist.is_main else _CONTINUE
                if self.nonfinite_streak >= tc.max_nonfinite and decision == _CONTINUE:
                    decision = _GUARD_STOP
                if finite and step % tc.log_every == 0 and self.dist.is_main:
                    elapsed = max(1e-9, time.time() - window_start)
                    sps = window_steps / elapsed
                    logs["steps_per_s"] = sps
                    logs["audio_seconds_per_s"] = sps * gb * seg
                    logs["audio_hours"] = self.state["audio_seconds"] / 3600
                    logs["wall_seconds"] = self.state["train_seconds"]
                    cost = self._cost(self.state["train_seconds"])
                    if cost is not None:
                        logs["cost"] = cost
                        logs["cost_projected"] = cost / max(1, step) * max_steps
                    self.metrics.write("train", step, **logs)
                    self.tb.scalars(logs, step)
                    window_start, window_steps = time.time(), 0
                    if bar is not None:
                        post = {
                            k.split("/")[-1]: f"{v:.3g}"
                            for k, v in logs.items()
                            if k.startswith("loss/")
                        }
                        post["it/s"] = f"{sps:.2f}"
                        if cost is not None:
                            post["cost"] = f"{cost:.1f} {self.currency}"
                        bar.set_postfix(post, refresh=False)
                if bar is not None and finite:
                    bar.update(1)
                if decision == _CONTINUE and finite and step % tc.val_every == 0:
                    decision = self._validate_and_checkpoint()
                elif (
                    decision == _CONTINUE
                    and finite
                    and step % tc.ckpt_every == 0
                    and self.dist.is_main
                ):
                    last_ckpt = self._save()
                decision = broadcast_int(decision, self.dist, self.device)
                if decision == _ROLLBACK:
                    ok = self._rollback()
                    if ok:
                        self._event(
                            "rollback",
                            f"rolled back to {self.state['last_healthy']} with learning rates x"
                            f"{self.state['lr_scale']:.3g}",
                        )
                        self.log(f"guard: rolled back to {self.state['last_healthy']}")
                        batches = self._batches()
                        if bar is not None:
                            bar.n = self.state["step"]
                        continue
                    decision = _GUARD_STOP
                if decision == _GUARD_STOP:
                    reason = "nonfinite" if self.nonfinite_streak >= tc.max_nonfinite else "guard"
                    if self.dist.is_main:
                        self._event("stop", f"stopped by the collapse guard ({reason})")
                    break
        finally:
            if bar is not None:
                bar.close()
            self._bar = None
            if prev_handler is not None:
                signal.signal(signal.SIGINT, prev_handler)
        if reason in ("max_steps", "time_budget", "interrupted") and self.dist.is_main:
            if self.state["step"] % tc.val_every != 0 or reason != "max_steps":
                self._validate_and_checkpoint()
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
        )

    def _validate_and_checkpoint(self) -> int:
        """Validate (rank 0), log the health line, checkpoint, update best; return a decision."""
        if not self.dist.is_main:
            return _CONTINUE
        step = self.state["step"]
        val = self.validate()
        events = self.guard.observe_validation(step, val)
        health = CollapseGuard.summary(events)
        self.last_val = dict(val, health=health)
        self.metrics.write("val", step, **val, health=health)
        self.tb.scalars(val, step)
        cost = self._cost(self.state["train_seconds"])
        self.log(
            f"step {step}: SNR {val.get('val/snr', float('nan')):.2f} dB, amplitude "
            f"{val.get('val/amplitude_ratio', float('nan')):.2f}, mel distance "
            f"{val.get('val/mel_distance', float('nan')):.3f}"
            + (f", PESQ {val['val/pesq']:.2f}" if "val/pesq" in val else "")
            + f", codebook-1 usage {val.get('val/usage/q0', 0):.0%}"
            + (f", cost {cost:.1f} {self.currency}" if cost is not None else "")
            + f" | {health}"
        )
        decision = self._act(events)
        metric = val.get(f"val/{self.cfg.train.best_metric}")
        best = self.state["best_value"]
        is_best = not events and metric is not None and (best is None or metric < best)
        if is_best:
            self.state["best_value"], self.state["best_step"] = metric, step
        ckpt = self._save(healthy=not events)
        if is_best:
            export_best(ckpt, self.run_dir)
        return decision
