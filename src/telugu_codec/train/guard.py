"""Collapse guard: watches validation and step statistics and says when training is unhealthy.

Failure modes it detects (each tested by inducing it, see tests/test_guard.py):
- amplitude collapse or blow-up: validation output RMS / input RMS outside
  [min_amplitude, max_amplitude] (our user's run fell to 0.07 at epoch 35);
- quality degrading: validation mel distance more than `mel_tolerance` above its best so far,
  or SNR more than `snr_tolerance` dB below its best, for `patience` validations in a row.
  Trends are judged against the best so far, not the previous validation: a slow drift adds
  up, and one good validation does not hide a worse run. The SNR rule is off once the
  adversarial terms have joined (`adversarial_from`): GAN codecs trade waveform SNR for
  perceptual quality there, so a falling SNR is expected; amplitude, mel distance and the
  codebooks still watch for collapse in that phase;
- non-finite losses or gradients (counted by the trainer, reported here);
- the discriminator overpowering the generator: D loss below `min_d_loss` for
  `d_loss_patience` steps in a row;
- codebook collapse: the first codebook using less than `min_codebook_usage` of its codes on
  the validation set, or any codebook's validation perplexity below `min_perplexity` x its
  number of codes (and never below 2: one code doing all the work). For
  `codebook_grace_steps` after the first validation that finds the codebooks initialised only
  the absolute floor (perplexity 2) judges: freshly seeded codebooks start narrow and spread
  within a few hundred steps (a healthy `streaming` run sat below the relative floor at its
  first validation, step 250, and was rolled back), while one code doing all the work is a
  collapse at any age (an SI-SDR run's first codebook sat at perplexity 1 from step 250);
- codebook churn: any codebook re-seeding more than `max_code_churn` of its codes per step
  (mean over the interval since the previous validation): codes that never settle, which a
  loss curve does not show (the first RVQ re-seeded 95 % of its codes on every step);
- a validation that measured nothing (no items): never "healthy".

The guard only decides; the trainer acts (warn, stop, or roll back to the last healthy
checkpoint with lower learning rates) according to `GuardConfig.action`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from ..config import GuardConfig
from ..errors import ConfigError

ACTIONS = ("warn", "stop", "rollback")


@dataclass
class GuardEvent:
    """One detected problem."""

    kind: str  # amplitude_low | amplitude_high | degrading | nonfinite | d_overpowering |
    # codebook_collapse | codebook_churn | unmeasured
    message: str
    step: int


@dataclass
class GuardState:
    best_mel: float | None = None
    best_snr: float | None = None  # before the adversarial terms join
    mel_rising: int = 0  # validations in a row above the best mel distance (+ tolerance)
    snr_falling: int = 0  # validations in a row below the best SNR (- tolerance)
    d_low_steps: int = 0
    # the step of the first validation that found the codebooks initialised (grace starts)
    codebooks_ready: int | None = None
    history: list[dict] = field(default_factory=list)


class CollapseGuard:
    """Stateful detector; its state goes into checkpoints (plain JSON)."""

    def __init__(
        self,
        cfg: GuardConfig,
        num_codes: list[int] | None = None,
        adversarial_from: int | None = None,
    ):
        """Args:
        cfg: thresholds and action.
        num_codes: codes each quantizer stage can emit (for the perplexity floor).
        adversarial_from: the step from which the adversarial terms train the codec
            (``train.d_warmup_steps``), None without them; a validation after it does not
            judge SNR.
        """
        if cfg.action not in ACTIONS:
            raise ConfigError(f"train.guard.action must be one of {ACTIONS}, got '{cfg.action}'")
        self.cfg = cfg
        self.num_codes = list(num_codes or [])
        self.adversarial_from = adversarial_from
        self.state = GuardState()

    # ------------------------------------------------------------------ per step
    def observe_step(self, step: int, d_loss: float | None) -> list[GuardEvent]:
        """Track the discriminator loss; returns an event when D has been near zero too long."""
        if d_loss is None or not math.isfinite(d_loss):
            return []
        return self.observe_d_loss_low(step, d_loss < self.cfg.min_d_loss)

    def observe_d_loss_low(self, step: int, low: bool | None) -> list[GuardEvent]:
        """`observe_step` given only whether D's loss was below ``min_d_loss`` (None: D did not
        step). The training step computes the comparison on the device with its finite flags,
        so the guard costs no host transfer of its own."""
        if not self.cfg.enabled or low is None:
            return []
        if low:
            self.state.d_low_steps += 1
        else:
            self.state.d_low_steps = 0
        if self.state.d_low_steps == self.cfg.d_loss_patience:
            return [
                GuardEvent(
                    "d_overpowering",
                    f"discriminator loss below {self.cfg.min_d_loss} for "
                    f"{self.cfg.d_loss_patience} steps (D overpowers G)",
                    step,
                )
            ]
        return []

    def nonfinite(self, step: int, count: int) -> GuardEvent:
        return GuardEvent("nonfinite", f"{count} non-finite steps in a row", step)

    # ------------------------------------------------------------------ per validation
    def observe_validation(self, step: int, metrics: dict[str, float]) -> list[GuardEvent]:
        """Check one validation's metrics (keys as logged: val/amplitude_ratio, ...)."""
        if not self.cfg.enabled:
            return []
        events = []
        cfg, st = self.cfg, self.state
        if "val/amplitude_ratio" not in metrics and "val/mel_distance" not in metrics:
            # no item was measured: silence is not health
            events.append(
                GuardEvent("unmeasured", "the validation measured nothing (no items)", step)
            )
        amp = metrics.get("val/amplitude_ratio")
        if amp is not None and not math.isfinite(amp):
            events.append(GuardEvent("nonfinite", "validation output is not finite", step))
        elif amp is not None and amp < cfg.min_amplitude:
            events.append(
                GuardEvent(
                    "amplitude_low",
                    f"amplitude {amp:.2f} (output RMS / input RMS below {cfg.min_amplitude})",
                    step,
                )
            )
        elif amp is not None and amp > cfg.max_amplitude:
            events.append(
                GuardEvent(
                    "amplitude_high",
                    f"amplitude {amp:.2f} (output RMS / input RMS above {cfg.max_amplitude})",
                    step,
                )
            )
        events += self._trend_events(step, metrics)
        usage = metrics.get("val/usage/q0")
        if self._floors(step, metrics) != "full":
            usage = None
        if usage is not None and usage < cfg.min_codebook_usage:
            events.append(
                GuardEvent(
                    "codebook_collapse",
                    f"first codebook uses {usage:.1%} of its codes "
                    f"(below {cfg.min_codebook_usage:.0%})",
                    step,
                )
            )
        events += self._codebook_events(step, metrics)
        st.history.append({"step": step, "events": [e.kind for e in events]})
        st.history = st.history[-50:]
        return events

    def adversarial(self, step: int) -> bool:
        """True when the validation at `step` follows updates with the adversarial terms on
        (the trainer's step `s` is on from ``step >= adversarial_from``; a validation at `step`
        has seen steps ``0 .. step - 1``)."""
        return self.adversarial_from is not None and step > self.adversarial_from

    def _trend_events(self, step: int, metrics: dict[str, float]) -> list[GuardEvent]:
        """Mel distance and SNR against their best so far, `patience` validations in a row."""
        cfg, st = self.cfg, self.state
        # not judged during the quantizer's warm-up: latents pass unquantized then, so a best
        # from it would make every later validation look worse
        warming_up = bool(metrics.get("val/quantizer_warming_up"))
        mel, snr = metrics.get("val/mel_distance"), metrics.get("val/snr")
        mel_judged = mel is not None and math.isfinite(mel) and not warming_up
        # a GAN trades waveform SNR for perceptual quality: after it joins SNR only logs
        snr_judged = snr is not None and math.isfinite(snr) and not warming_up
        snr_judged = snr_judged and not self.adversarial(step)
        if mel_judged:
            if st.best_mel is not None:
                worse = mel > st.best_mel * (1 + cfg.mel_tolerance)
                st.mel_rising = st.mel_rising + 1 if worse else 0
            st.best_mel = mel if st.best_mel is None else min(st.best_mel, mel)
        if self.adversarial(step):
            st.snr_falling = 0
        elif snr_judged:
            if st.best_snr is not None:
                worse = snr < st.best_snr - cfg.snr_tolerance
                st.snr_falling = st.snr_falling + 1 if worse else 0
            st.best_snr = snr if st.best_snr is None else max(st.best_snr, snr)
        if cfg.patience <= 0:
            return []
        if mel_judged and st.mel_rising >= cfg.patience:
            what = (
                f"mel distance {mel:.3g} more than {cfg.mel_tolerance:.0%} above its best "
                f"{st.best_mel:.3g}"
            )
        elif snr_judged and st.snr_falling >= cfg.patience:
            what = (
                f"SNR {snr:.2f} dB more than {cfg.snr_tolerance:g} dB below its best "
                f"{st.best_snr:.2f} dB"
            )
        else:
            return []
        return [GuardEvent("degrading", f"{what} at {cfg.patience} validations in a row", step)]

    def _floors(self, step: int, metrics: dict[str, float]) -> str:
        """Which codebook floors judge the validation at `step`: "none" while the quantizer
        warms up, "absolute" (perplexity 2) within `codebook_grace_steps` of the first
        validation that found it initialised (recorded here), "full" after."""
        if metrics.get("val/quantizer_warming_up"):
            return "none"
        if self.state.codebooks_ready is None:
            self.state.codebooks_ready = step
        grace = step < self.state.codebooks_ready + self.cfg.codebook_grace_steps
        return "absolute" if grace else "full"

    def _codebook_events(self, step: int, metrics: dict[str, float]) -> list[GuardEvent]:
        """Collapse (perplexity floor) and churn (re-seeding rate) of every codebook."""
        cfg, events = self.cfg, []
        if metrics.get("val/quantizer_warming_up"):
            return events
        low, churn = [], []
        floors = self._floors(step, metrics)
        for q, k in enumerate(self.num_codes):
            perp = metrics.get(f"val/perplexity/q{q}")
            # below 2: one code does all the work; min_perplexity 0 turns the check off
            relative = cfg.min_perplexity * k if floors == "full" else 0.0
            floor = max(2.0, relative) if cfg.min_perplexity > 0 else 0.0
            if perp is not None and math.isfinite(perp) and perp < floor:
                low.append(f"q{q} perplexity {perp:.1f}")
            rate = metrics.get(f"val/replaced_per_step/q{q}")
            if rate is not None and math.isfinite(rate) and rate > cfg.max_code_churn:
                churn.append(f"q{q} {rate:.1%}")
        if low:
            events.append(
                GuardEvent(
                    "codebook_collapse",
                    f"codebook collapse: {', '.join(low)} (below {cfg.min_perplexity:.0%} of "
                    "its codes, or 2)",
                    step,
                )
            )
        if churn:
            events.append(
                GuardEvent(
                    "codebook_churn",
                    f"codebook churn: {', '.join(churn)} of the codes re-seeded per step "
                    f"(above {cfg.max_code_churn:.0%})",
                    step,
                )
            )
        return events

    def reset_trends(self) -> None:
        """After a rollback the trend counters start again (the best so far stays: the run
        rolled back to get back to it)."""
        self.state.mel_rising = self.state.snr_falling = self.state.d_low_steps = 0

    @staticmethod
    def summary(events: list[GuardEvent]) -> str:
        """One-line health: 'healthy' or 'warning: amplitude 0.41; ...'."""
        if not events:
            return "healthy"
        return "warning: " + "; ".join(e.message for e in events)

    def state_dict(self) -> dict:
        return asdict(self.state)

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict`'s output; keys of older versions (``prev_mel``, ``prev_snr``:
        the trends against the previous validation) are dropped, and the bests start again."""
        known = {f.name for f in fields(GuardState)}
        self.state = GuardState(**{k: v for k, v in state.items() if k in known})
