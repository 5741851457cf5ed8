"""One optimizer step of the discriminators and the codec: `GANStep`, with no I/O.

One micro-batch (HiFi-GAN / DAC order):
1. the codec reconstructs the batch (the quantizer updates its EMA codebooks);
2. the discriminators are updated on real audio vs the *detached* reconstruction;
3. the codec is updated on reconstruction + adversarial + feature-matching + VQ losses, judged
   by the freshly updated discriminators (whose parameters are frozen for this pass).

With gradient accumulation each micro-batch runs its forward and both backwards before the
next, under DDP's `no_sync` but for the last. Under DDP every rank takes the same decisions:
the finite flags are all-reduced (`distributed.all_ranks_true`).

The step writes nothing (no log, no file, no lock) and returns a `StepResult`: the losses and
gradient norms as detached device tensors, so the caller decides when to bring them to the host
(the trainer: once per log interval). Its only host transfers are the finite flags, which
every update must wait for, and what the model and the balancer make themselves.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import losses as L
from ..config import Config
from ..model.codec import CodecOutput
from .distill import Distiller
from .distributed import DistInfo, all_ranks_true
from .precision import AUTOCAST_DTYPES, grad_scaler


@dataclass
class QuantizerRecord:
    """What `QuantizerStats` needs of a micro-batch's `CodecOutput` (no graph).

    Attributes:
        perplexity: (n_q,) on the device.
        replaced: (n_q,) int64 codes re-seeded (on the CPU), or None.
        warming_up: the quantizer passed latents through while gathering them for k-means.
    """

    perplexity: torch.Tensor
    replaced: torch.Tensor | None
    warming_up: bool


@dataclass
class StepResult:
    """What one step did; the flags are the same on every rank.

    Attributes:
        losses: ``loss/{term}``, ``loss/commit``, ``loss/g_total`` (weighted sum) and
            ``loss/d`` (when D was due): () fp32 tensors on the device, detached, the mean over
            the micro-batches.
        grad_norms: ``grad_norm/g`` and ``grad_norm/d``: () fp32 tensors, before clipping.
        perplexity: () the first codebook's perplexity on the first micro-batch.
        finite: the update was taken (or none was due); False: skipped, non-finite.
        overflow: fp16 only: skipped while the loss scaler lowers its scale (not a fault).
        d_updated: the discriminators stepped.
        d_loss_low: D stepped with a loss below ``d_loss_floor`` on every rank (None: D did
            not step, or no floor was given).
        balancer: the loss balancer's statistics (last micro-batch), floats.
        quantizer: one record per micro-batch, for the codebook statistics.
    """

    losses: dict[str, torch.Tensor]
    grad_norms: dict[str, torch.Tensor]
    perplexity: torch.Tensor
    finite: bool = True
    overflow: bool = False
    d_updated: bool = False
    d_loss_low: bool | None = None
    balancer: dict[str, float] = field(default_factory=dict)
    quantizer: list[QuantizerRecord] = field(default_factory=list)

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every logged tensor by its log name (losses, gradient norms, ``perplexity/q0``)."""
        return {**self.losses, **self.grad_norms, "perplexity/q0": self.perplexity}

    def scalars(self) -> dict[str, float]:
        """`tensors` and the balancer's statistics as floats: one host transfer."""
        t = self.tensors()
        names = list(t)
        values = torch.stack([t[k].float().reshape(()) for k in names]).tolist()
        return {**self.balancer, **dict(zip(names, values))}


@dataclass
class _Update:
    """What one optimizer's update did; every rank alike (the flags are reduced)."""

    finite: bool = True  # taken (or none was due)
    overflow: bool = False  # fp16: skipped while the loss scaler lowers its scale
    d_updated: bool = False  # the discriminators stepped
    d_loss_low: bool | None = None

    @property
    def allows_g(self) -> bool:
        """G may step after this (D's) update: it was taken, or only D's scale overflowed
        (G is then judged by the unchanged D)."""
        return self.finite or self.overflow


def _add(sums: dict[str, torch.Tensor], key: str, value: torch.Tensor, n: int) -> None:
    """sums[key] += value / n, detached, in fp32, on the device (no host transfer)."""
    v = value.detach().float() / n
    sums[key] = sums[key] + v if key in sums else v


def _scaled(loss: torch.Tensor, scaler: torch.amp.GradScaler | None) -> torch.Tensor:
    return loss if scaler is None else scaler.scale(loss)


def _unwrap(module: nn.Module) -> nn.Module:
    return module.module if hasattr(module, "module") else module


class GANStep:
    """One D + G optimizer step over a list of micro-batches (see the module docstring).

    Build it with `build_gan_step`. It holds the models, optimizers, loss scalers, losses and
    the balancer; the learning rates are set by the caller (`schedules.lr_factor`).

    Args:
        cfg: the run's config (``loss``, ``train``).
        codec, disc: the models (not DDP wrappers); `disc` None without discriminators.
        g_model, d_model: what runs forward and backward (DDP wrappers under DDP, else the
            models themselves).
        g_opt, d_opt: the optimizers.
        g_scaler, d_scaler: fp16's loss scalers (None in fp32 and bf16).
        recon: the reconstruction losses (`losses.build_generator_losses`).
        balancer: the loss balancer, or None.
        dist: the process group's description.
        device_type: "cuda" or "cpu" (autocast's device).
        autocast_dtype: bf16 / fp16, or None for fp32.
        d_loss_floor: D losses below it are flagged in `StepResult.d_loss_low` (the guard's
            ``min_d_loss``), or None.
    """

    def __init__(
        self,
        cfg: Config,
        codec: nn.Module,
        disc: nn.Module | None,
        g_model: nn.Module,
        d_model: nn.Module | None,
        g_opt: torch.optim.Optimizer,
        d_opt: torch.optim.Optimizer | None,
        g_scaler: torch.amp.GradScaler | None,
        d_scaler: torch.amp.GradScaler | None,
        recon: nn.Module,
        balancer: L.LossBalancer | None,
        dist: DistInfo,
        device_type: str,
        autocast_dtype: torch.dtype | None,
        d_loss_floor: float | None = None,
    ):
        self.cfg = cfg
        self.codec, self.disc = codec, disc
        self.g_model, self.d_model = g_model, d_model
        self.g_opt, self.d_opt = g_opt, d_opt
        self.g_scaler, self.d_scaler = g_scaler, d_scaler
        self.recon, self.balancer = recon, balancer
        self.weights = dict(recon.weights, adv=cfg.loss.adv, fm=cfg.loss.fm)
        self.dist = dist
        self.device_type, self.autocast_dtype = device_type, autocast_dtype
        self.d_loss_floor = d_loss_floor
        # distillation into codebook 1 (`train/distill.py`), set by the trainer; None: off
        self.distill: Distiller | None = None

    def autocast(self) -> AbstractContextManager:
        """The mixed-precision context of the step (nothing in fp32)."""
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device_type, dtype=self.autocast_dtype)

    def adversarial(self, step: int) -> bool:
        """The adversarial terms train the codec at `step` (after ``train.d_warmup_steps``)."""
        return self.disc is not None and step >= self.cfg.train.d_warmup_steps

    def __call__(self, xs: list[torch.Tensor], step: int) -> StepResult:
        """One optimizer step of D then G over the micro-batches `xs`, at step `step`.

        One micro-batch: HiFi-GAN / DAC order (the codec's forward, D updated on the detached
        reconstruction, G updated against the updated D). Several (``train.grad_accum``): each
        micro-batch runs its forward and both backwards and frees its graph before the next,
        so accumulation saves memory; D and G step after the last one, and G's adversarial
        terms are judged by D as it was at the start of the step (D's update needs every
        micro-batch's reconstruction, and keeping their graphs until then is what
        accumulation is meant to avoid). Under DDP the gradients are reduced on the last
        micro-batch only.

        Every process takes the same decisions: a process whose loss is not finite still runs
        its backward (the others' gradient reductions wait for it), and whether to update is
        decided on the finite flags of all processes together.

        Args:
            xs: micro-batches, each (B, 1, T) float32 on the models' device.
            step: the run's step (the adversarial warm-up and D's update period use it).
        """
        self.g_model.train()
        adversarial = self.adversarial(step)
        d_due = adversarial and step % self.cfg.train.d_update_every == 0
        if d_due:
            self.d_model.train()
            self.d_opt.zero_grad(set_to_none=True)
        self.g_opt.zero_grad(set_to_none=True)
        sums: dict[str, torch.Tensor] = {}
        balancer: dict[str, float] = {}
        records: list[QuantizerRecord] = []
        n = len(xs)
        d = _Update()
        if n == 1:  # alternating: D's update, then G's against the updated D
            with self.autocast():
                out = self.g_model(xs[0])
            if d_due:
                _add(sums, "loss/d", self._d_backward(xs[0], out.audio, 1), 1)
                d = self._update(self.d_opt, self.d_scaler, self.disc, "d", sums)
            self._g_backward(xs[0], out, adversarial, 1, sums, balancer)
            records.append(_record(out))
        else:  # each micro-batch's forward and backwards, then the updates
            for i, x in enumerate(xs):
                with self._no_sync(i < n - 1):
                    with self.autocast():
                        out = self.g_model(x)
                    if d_due:
                        _add(sums, "loss/d", self._d_backward(x, out.audio, n), n)
                    self._g_backward(x, out, adversarial, n, sums, balancer)
                records.append(_record(out))
            if d_due:
                d = self._update(self.d_opt, self.d_scaler, self.disc, "d", sums)
        g = self._update(self.g_opt, self.g_scaler, self.codec, "g", sums, allowed=d.allows_g)
        norms = {k: sums.pop(k) for k in list(sums) if k.startswith("grad_norm/")}
        return StepResult(
            losses=sums,
            grad_norms=norms,
            perplexity=records[0].perplexity[0],
            finite=g.finite,
            overflow=g.overflow,
            d_updated=d.d_updated,
            d_loss_low=d.d_loss_low if d.d_updated else None,
            balancer=balancer,
            quantizer=records,
        )

    def generator_losses(
        self, x: torch.Tensor, out: CodecOutput, adversarial: bool
    ) -> dict[str, torch.Tensor]:
        """Unweighted generator loss terms for one micro-batch (weights applied by the caller).

        Args:
            x: (B, 1, T) real audio; out: the codec's reconstruction of it.
        """
        w, lc = self.weights, self.cfg.loss
        terms = self.recon(out.audio.float(), x.float())
        if adversarial and (w["adv"] > 0 or w["fm"] > 0):
            d = _unwrap(self.d_model)
            with self.autocast():
                fake = d(out.audio)
                with torch.no_grad():
                    real = d(x)
            if w["adv"] > 0:
                terms["adv"] = L.generator_adversarial_loss(
                    [f.logits.float() for f in fake], lc.adversarial, reduction=lc.gan_reduction
                )
            if w["fm"] > 0:
                terms["fm"] = L.feature_matching_loss(
                    [[t.float() for t in r.features] for r in real],
                    [[t.float() for t in f.features] for f in fake],
                    relative=lc.feature_matching == "relative",
                    reduction=lc.gan_reduction,
                )
        return terms

    def _d_backward(self, x: torch.Tensor, fake: torch.Tensor, n: int) -> torch.Tensor:
        """D's loss on real `x` vs the detached `fake`, backpropagated divided by `n`.

        Returns:
            The loss, detached (no host transfer).
        """
        lc = self.cfg.loss
        with self.autocast():
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
        balancer: dict[str, float],
    ) -> None:
        """G's loss terms for one micro-batch, backpropagated divided by `n` (D frozen); the
        terms are added to `sums`. Runs even when a term is not finite (see `__call__`)."""
        lc = self.cfg.loss
        with self._frozen_disc():
            terms = self.generator_losses(x, out, adversarial)
            commit = out.commit_loss * lc.vq
            if self.distill is not None:
                distill = self.distill.loss(out)
                commit = commit + lc.distill * distill
                _add(sums, "loss/distill", distill.detach(), n)
            if self.balancer is not None and terms:
                grad, stats = self.balancer.combined_grad(terms, out.audio)
                surrogate = (out.audio.float() * grad).sum() + commit
                balancer.update({f"balancer/{k}": v for k, v in stats.items()})
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
        flags = [torch.isfinite(loss), torch.isfinite(norm)]
        low_due = name == "d" and self.d_loss_floor is not None
        if low_due:  # carried by the same transfer: the guard's view of D costs no sync
            flags.append(loss < self.d_loss_floor)
        reduced = all_ranks_true(torch.stack(flags), self.dist)
        loss_ok, grad_ok = reduced[0], reduced[1]
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
        return _Update(
            finite=finite,
            overflow=overflow,
            d_updated=name == "d" and finite,
            d_loss_low=reduced[2] if low_due else None,
        )

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

    def _no_sync(self, skip: bool) -> ExitStack:
        """Under DDP with `skip`: no gradient reduction in this block (an accumulated
        micro-batch that is not the last)."""
        stack = ExitStack()
        if skip and self.dist.enabled:
            for model in (self.g_model, self.d_model):
                if model is not None and hasattr(model, "no_sync"):
                    stack.enter_context(model.no_sync())
        return stack


def _record(out: CodecOutput) -> QuantizerRecord:
    return QuantizerRecord(out.perplexity.detach(), out.replaced, out.warming_up)


def build_gan_step(
    cfg: Config,
    codec: nn.Module,
    disc: nn.Module | None,
    device: torch.device,
    precision: str = "fp32",
    dist: DistInfo | None = None,
    d_loss_floor: float | None = None,
) -> GANStep:
    """The optimizers, loss scalers, losses and balancer of `cfg` around `codec` and `disc`,
    compiled (``train.compile``) and wrapped in DDP under torchrun, as a `GANStep`.

    Args:
        cfg: the run's config.
        codec, disc: the models, on `device` (`disc` None without discriminators).
        device: where they are.
        precision: "fp32", "bf16" or "fp16" (`precision.resolve_precision`).
        dist: the process group (None: one process).
        d_loss_floor: see `GANStep`.
    """
    tc, lc = cfg.train, cfg.loss
    dist = dist or DistInfo()
    fused = tc.fused_optimizer and device.type == "cuda"

    def adamw(params, oc) -> torch.optim.Optimizer:
        return torch.optim.AdamW(
            params, lr=oc.lr, betas=oc.betas, weight_decay=oc.weight_decay, fused=fused or None
        )

    g_opt = adamw(codec.parameters(), tc.g_optim)
    d_opt = adamw(disc.parameters(), tc.d_optim) if disc is not None else None
    # fp16 only: one loss scaler per optimizer (D's and G's losses differ in scale)
    g_scaler = grad_scaler(precision, device)
    d_scaler = grad_scaler(precision, device) if d_opt else None
    if tc.compile:  # in place: the state-dict keys (checkpoints) stay the same
        for module in (codec.encoder, codec.decoder, disc):
            if module is not None:
                module.compile(backend=tc.compile_backend)
    g_model, d_model = codec, disc
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [dist.local_rank] if device.type == "cuda" else None
        g_model = DDP(codec, device_ids=ids, broadcast_buffers=False)
        if disc is not None:
            d_model = DDP(disc, device_ids=ids, broadcast_buffers=False)
    recon = L.build_generator_losses(lc, cfg.model.sample_rate).to(device)
    balancer = L.LossBalancer.from_config(lc) if lc.balancer else None
    return GANStep(
        cfg,
        codec,
        disc,
        g_model,
        d_model,
        g_opt,
        d_opt,
        g_scaler,
        d_scaler,
        recon,
        balancer,
        dist,
        device.type,
        AUTOCAST_DTYPES[precision],
        d_loss_floor,
    )
