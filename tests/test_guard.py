"""The collapse guard on its own: each failure mode detected from hand-made statistics."""

from __future__ import annotations

import pytest

from telugu_codec.config import GuardConfig
from telugu_codec.errors import ConfigError
from telugu_codec.train.guard import CollapseGuard


def val(amp=1.0, mel=1.0, snr=5.0, usage=0.5):
    return {
        "val/amplitude_ratio": amp,
        "val/mel_distance": mel,
        "val/snr": snr,
        "val/usage/q0": usage,
    }


def kinds(events):
    return [e.kind for e in events]


def test_healthy_run_raises_nothing():
    g = CollapseGuard(GuardConfig())
    for i, mel in enumerate([1.0, 0.9, 0.8, 0.85, 0.7]):
        assert g.observe_validation(i, val(mel=mel)) == []
    assert CollapseGuard.summary([]) == "healthy"


@pytest.mark.parametrize("amp,kind", [(0.28, "amplitude_low"), (2.5, "amplitude_high")])
def test_amplitude_out_of_band_is_caught_at_the_first_validation(amp, kind):
    g = CollapseGuard(GuardConfig())
    events = g.observe_validation(10, val(amp=amp))
    assert kinds(events) == [kind]
    assert CollapseGuard.summary(events).startswith(f"warning: amplitude {amp:.2f}")


def test_non_finite_validation_is_caught():
    g = CollapseGuard(GuardConfig())
    assert kinds(g.observe_validation(1, val(amp=float("nan")))) == ["nonfinite"]


def test_degrading_mel_needs_patience_validations_in_a_row():
    g = CollapseGuard(GuardConfig(patience=3, mel_tolerance=0.1))
    seq = [1.0, 1.15, 1.2, 1.3]
    out = [kinds(g.observe_validation(i, val(mel=m))) for i, m in enumerate(seq)]
    assert out == [[], [], [], ["degrading"]]
    g2 = CollapseGuard(GuardConfig(patience=3, mel_tolerance=0.1))
    seq = [1.0, 1.15, 1.0, 1.15, 1.2]  # interrupted streak
    assert all(g2.observe_validation(i, val(mel=m)) == [] for i, m in enumerate(seq))


def test_falling_snr_is_degrading():
    g = CollapseGuard(GuardConfig(patience=2))
    out = [kinds(g.observe_validation(i, val(snr=s))) for i, s in enumerate([5, 3, 1])]
    assert out[-1] == ["degrading"]


def test_trends_are_judged_against_the_best_so_far():
    """A slow SNR drift (0.4 dB per validation) never fell 0.5 dB from one validation to the
    next, so the old rule never saw it; against the best it is caught. And a run that rises a
    little from its best and stays near it is healthy (the old rule counted rises in a row)."""
    g = CollapseGuard(GuardConfig(patience=3, snr_tolerance=1.0))
    drift = [10.0, 9.6, 9.2, 8.8, 8.4, 8.0]  # 1.2, 1.6, 2.0 dB below the best at the end
    out = [kinds(g.observe_validation(i, val(snr=s))) for i, s in enumerate(drift)]
    assert out == [[], [], [], [], [], ["degrading"]]
    assert "below its best 10.00 dB" in g.observe_validation(6, val(snr=7.0))[0].message
    near_best = CollapseGuard(GuardConfig(patience=3, mel_tolerance=0.1))
    plateau = [1.0, 0.7, 0.72, 0.74, 0.76, 0.75]  # each of 0.72 -> 0.76 above the previous
    assert all(near_best.observe_validation(i, val(mel=m)) == [] for i, m in enumerate(plateau))


# a run with a discriminator from step 1000, validated every 500 steps: positive SNR before it
GAN_FROM = 1000
STEPS = [500, 1000, 1500, 2000, 2500, 3000, 3500]


def _history(guard, snr, mel=None, amp=None):
    mel = mel or [1.0] * len(snr)
    amp = amp or [1.0] * len(snr)
    return [
        kinds(guard.observe_validation(step, val(amp=a, mel=m, snr=s)))
        for step, s, m, a in zip(STEPS, snr, mel, amp)
    ]


def test_snr_falling_after_the_gan_joins_is_not_a_collapse():
    """GAN codecs trade waveform SNR for perceptual quality once the adversarial terms join:
    SNR falls 6 dB there while mel distance and amplitude hold. Not a collapse."""
    snr = [8.0, 9.0, 6.5, 5.0, 4.0, 3.0, 3.0]
    mel = [1.0, 0.9, 0.92, 0.9, 0.88, 0.89, 0.87]
    gan = CollapseGuard(GuardConfig(patience=3), adversarial_from=GAN_FROM)
    assert _history(gan, snr, mel) == [[]] * len(STEPS)
    # the same history without a GAN phase is a degrading run
    plain = CollapseGuard(GuardConfig(patience=3))
    assert ["degrading"] in _history(plain, snr, mel)
    # the validation at the step the GAN joins has seen no adversarial update yet
    assert not gan.adversarial(GAN_FROM) and gan.adversarial(GAN_FROM + 1)


def test_a_collapse_inside_the_gan_phase_is_still_caught():
    snr = [8.0, 9.0, 5.0, 3.0, 2.0, 1.0, 1.0]
    # amplitude collapse: caught at once
    g = CollapseGuard(GuardConfig(patience=3), adversarial_from=GAN_FROM)
    amp = [1.0, 1.0, 1.0, 0.1, 1.0, 1.0, 1.0]
    assert _history(g, snr, amp=amp)[3] == ["amplitude_low"]
    # mel distance doubling (against the pre-GAN best) for `patience` validations
    g = CollapseGuard(GuardConfig(patience=3), adversarial_from=GAN_FROM)
    mel = [1.0, 0.9, 1.8, 1.8, 1.9, 1.9, 1.9]
    out = _history(g, snr, mel=mel)
    assert out[:4] == [[], [], [], []] and out[4] == ["degrading"]
    message = g.observe_validation(4000, val(mel=1.9, snr=1.0))[0].message
    assert "mel distance 1.9 more than 10% above its best 0.9" in message
    # a validation that measured nothing says so (the streak is not judged without a value)
    assert kinds(g.observe_validation(4500, {})) == ["unmeasured"]


def test_the_quantizer_warm_up_sets_no_best():
    """Latents pass unquantized while the quantizer gathers its k-means data: a best mel
    distance from then would make the quantized model look degraded ever after."""
    g = CollapseGuard(GuardConfig(patience=2))
    warm = val(mel=0.2) | {"val/quantizer_warming_up": 1.0}
    assert g.observe_validation(1, warm) == []
    assert all(g.observe_validation(i, val(mel=0.5)) == [] for i in range(2, 6))
    assert g.state.best_mel == 0.5


def test_discriminator_overpowering_after_patience_steps():
    g = CollapseGuard(GuardConfig(min_d_loss=0.01, d_loss_patience=5))
    fired = [kinds(g.observe_step(i, 0.001)) for i in range(7)]
    assert fired[4] == ["d_overpowering"] and sum(map(len, fired)) == 1
    g.observe_step(8, 0.5)  # recovery resets the count
    assert g.state.d_low_steps == 0


def test_codebook_collapse():
    g = CollapseGuard(GuardConfig(min_codebook_usage=0.05, codebook_grace_steps=0))
    assert kinds(g.observe_validation(1, val(usage=0.01))) == ["codebook_collapse"]


def test_disabled_guard_sees_nothing_and_bad_action_is_rejected():
    g = CollapseGuard(GuardConfig(enabled=False))
    assert g.observe_validation(1, val(amp=0.01)) == []
    with pytest.raises(ConfigError):
        CollapseGuard(GuardConfig(action="panic"))


def test_state_roundtrip():
    g = CollapseGuard(GuardConfig())
    g.observe_validation(1, val(mel=1.0))
    g.observe_validation(2, val(mel=2.0))
    h = CollapseGuard(GuardConfig())
    h.load_state_dict(g.state_dict())
    assert h.state == g.state
    # a checkpoint of the previous version (trends against the previous validation) loads
    old = {"prev_mel": 1.0, "prev_snr": 5.0, "mel_rising": 1, "d_low_steps": 0, "history": []}
    h.load_state_dict(old)
    assert h.state.best_mel is None and h.state.mel_rising == 1


def test_codebook_collapse_is_flagged_on_any_codebook():
    g = CollapseGuard(
        GuardConfig(min_perplexity=0.01, codebook_grace_steps=0), num_codes=[1024, 1024, 1024]
    )
    healthy = val() | {f"val/perplexity/q{q}": 300.0 for q in range(3)}
    assert g.observe_validation(1, healthy) == []
    collapsed = healthy | {"val/perplexity/q2": 3.0}
    events = g.observe_validation(2, collapsed)
    assert kinds(events) == ["codebook_collapse"]
    assert "q2 perplexity 3.0" in events[0].message


def test_min_perplexity_zero_turns_the_collapse_check_off():
    """0 means off, as for the other thresholds: the floor of 2 must not stay behind (it did,
    and `benchmarks/fault_injection.py` with quantizer upkeep stopped at step 3 with it "off")."""
    one_code = val() | {"val/perplexity/q0": 1.0}
    on = CollapseGuard(GuardConfig(min_perplexity=0.01, codebook_grace_steps=0), num_codes=[64])
    assert kinds(on.observe_validation(1, one_code)) == ["codebook_collapse"]
    off = CollapseGuard(GuardConfig(min_perplexity=0.0, codebook_grace_steps=0), num_codes=[64])
    assert off.observe_validation(1, one_code) == []


def test_codebook_churn_is_flagged():
    g = CollapseGuard(GuardConfig(max_code_churn=0.05), num_codes=[1024, 1024])
    calm = val() | {"val/replaced_per_step/q0": 0.002, "val/replaced_per_step/q1": 0.0}
    assert g.observe_validation(1, calm) == []
    churning = calm | {"val/replaced_per_step/q1": 0.95}
    events = g.observe_validation(2, churning)
    assert kinds(events) == ["codebook_churn"]
    assert "q1 95.0%" in events[0].message


def test_codebooks_are_not_judged_during_the_quantizer_warm_up():
    g = CollapseGuard(GuardConfig(codebook_grace_steps=0), num_codes=[1024])
    warming = val(usage=0.001) | {"val/perplexity/q0": 1.0, "val/quantizer_warming_up": 1.0}
    assert g.observe_validation(1, warming) == []
    assert kinds(g.observe_validation(2, val(usage=0.001))) == ["codebook_collapse"]


def test_codebook_floors_wait_their_grace_after_the_codebooks_are_initialised():
    """A healthy `streaming` run sat below the floor at its first validation (step 250, fresh
    codebooks) and was rolled back; the floors now start `codebook_grace_steps` later, and a
    collapse that lasts is still caught."""
    g = CollapseGuard(GuardConfig(codebook_grace_steps=500), num_codes=[1024])
    narrow = val(usage=0.001) | {"val/perplexity/q0": 5.0}  # below 1 % of 1024, above 2
    warming = narrow | {"val/quantizer_warming_up": 1.0}
    assert g.observe_validation(250, warming) == []
    assert g.observe_validation(500, narrow) == []  # initialised here: grace until 1000
    assert g.observe_validation(750, narrow) == []
    # one code doing all the work is a collapse even within the grace
    one_code = narrow | {"val/perplexity/q0": 1.0}
    events = g.observe_validation(750, one_code)
    assert kinds(events) == ["codebook_collapse"] and "q0 perplexity 1.0" in events[0].message
    assert kinds(g.observe_validation(1000, narrow)) == ["codebook_collapse"] * 2
    # the grace is remembered across a checkpoint
    h = CollapseGuard(GuardConfig(codebook_grace_steps=500), num_codes=[1024])
    h.load_state_dict(g.state_dict())
    assert h.state.codebooks_ready == 500
    assert kinds(h.observe_validation(1250, narrow)) == ["codebook_collapse"] * 2
    # churn is not part of the grace: re-seeding every code is never a warm-up
    c = CollapseGuard(GuardConfig(codebook_grace_steps=500), num_codes=[1024])
    churn = val() | {"val/replaced_per_step/q0": 0.9}
    assert kinds(c.observe_validation(250, churn)) == ["codebook_churn"]


def test_a_validation_that_measured_nothing_is_not_healthy():
    g = CollapseGuard(GuardConfig())
    events = g.observe_validation(1, {})
    assert kinds(events) == ["unmeasured"]
    assert CollapseGuard.summary(events) != "healthy"


@pytest.fixture
def speech_dir(tmp_path):
    import soundfile as sf

    from .conftest import speechlike

    d = tmp_path / "speech"
    d.mkdir()
    for i in range(4):
        sf.write(d / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    return d


def _guarded_run(tmp_path, speech_dir, monkeypatch, history):
    """Six steps with the discriminators from step 2, validated after every step; the
    validations report `history[step]` = (amplitude, mel distance, SNR)."""
    from .test_trainer import make_trainer

    t = make_trainer(
        tmp_path / "run",
        speech_dir,
        "model.quantizer.kind=fsq",  # no warm-up: every validation is judged
        "train.d_warmup_steps=2",
        "train.val_every=1",
        "train.guard.action=rollback",
        "train.guard.patience=2",
        "train.guard.max_rollbacks=1",
    )
    assert t.guard.adversarial_from == 2

    def validate():
        amp, mel, snr = history[t.state.step]
        return val(amp=amp, mel=mel, snr=snr)

    monkeypatch.setattr(t, "validate", validate)
    result = t.train(6)
    return result, [e["event"] for e in result.events]


def test_trainer_tells_the_guard_when_the_gan_joins(tmp_path, speech_dir, monkeypatch):
    """SNR falls 7 dB once the adversarial terms train the codec; mel distance and amplitude
    hold: no warning, no rollback."""
    history = {s: (1.0, 1.0, snr) for s, snr in zip(range(1, 7), [9.0, 9.5, 6.0, 4.0, 3.0, 2.5])}
    result, events = _guarded_run(tmp_path, speech_dir, monkeypatch, history)
    assert result.reason == "max_steps" and result.step == 6
    assert "rollback" not in events and "warning" not in events


def test_trainer_still_rolls_back_a_collapse_inside_the_gan_phase(
    tmp_path, speech_dir, monkeypatch
):
    history = {s: (1.0 if s < 4 else 0.1, 1.0, 9.0) for s in range(1, 7)}
    result, events = _guarded_run(tmp_path, speech_dir, monkeypatch, history)
    assert "rollback" in events and result.reason == "guard"
