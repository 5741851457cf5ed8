"""Metrics on constructed signals whose answers are known in closed form."""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from telugu_codec import metrics as M
from tests.conftest import speechlike

SR = 16000
DEMO = Path(__file__).resolve().parents[1] / "data" / "demo-te"
SENTENCES_TE = ("నమస్కారం, మీరు ఎలా ఉన్నారు? ఈ రోజు వాతావరణం చాలా బాగుంది.", "తెలుగు భాష చాలా అందమైనది.")


def real_speech_files(tmp_dir: Path, n: int = 2, seconds: float = 3.0) -> list[Path]:
    """`n` Telugu speech files of about `seconds`: the bundled demo-te val files closest to that
    length, else espeak-ng sentences rendered into `tmp_dir`; skips the test if neither exists."""
    manifest = DEMO / "manifest.tsv"
    if manifest.is_file():
        with manifest.open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f, delimiter="\t") if r.get("split") == "val"]
        rows.sort(key=lambda r: abs(float(r["duration"]) - seconds))
        files = [DEMO / r["path"] for r in rows[:n]]
        if len(files) == n and all(p.is_file() for p in files):
            return files
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs data/demo-te or espeak-ng for real speech")
    files = []
    for i in range(n):
        path = tmp_dir / f"espeak_{i}.wav"
        text = SENTENCES_TE[i % len(SENTENCES_TE)]
        subprocess.run(["espeak-ng", "-v", "te", "-w", str(path), text], check=True)
        files.append(path)
    return files


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    return speechlike(seconds=3.0, sample_rate=SR, seed=1)


def _noisy(x: np.ndarray, snr_db: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = rng.standard_normal(x.shape)
    n *= np.sqrt(np.mean(x**2) / np.mean(n**2)) / 10 ** (snr_db / 20)
    return (x + n).astype(np.float32)


# ------------------------------------------------------------------ signal metrics
def test_snr_of_half_amplitude_is_6_02_db(speech):
    assert M.snr(0.5 * speech, speech) == pytest.approx(20 * math.log10(2), abs=1e-6)


def test_snr_matches_the_noise_that_was_added(speech):
    assert M.snr(_noisy(speech, 10.0), speech) == pytest.approx(10.0, abs=0.05)


def test_snr_of_an_exact_copy_is_large_but_finite(speech):
    value = M.snr(speech, speech)
    assert math.isfinite(value) and value > 100


def test_si_sdr_is_invariant_to_gain(speech):
    y = _noisy(speech, 5.0)
    ref = M.si_sdr(y, speech)
    for gain in (0.01, 0.5, 3.0, -2.0):
        assert M.si_sdr(gain * y, speech) == pytest.approx(ref, abs=1e-6)
    assert M.si_sdr(0.5 * speech, speech) > 100  # a scaled copy is perfect for SI-SDR


def test_si_sdr_of_orthogonal_distortion_is_the_energy_ratio():
    # sin and cos over whole periods are orthogonal and zero-mean: SI-SDR = 10 log10(|s|^2/|n|^2)
    t = np.arange(SR) / SR
    s, n = np.sin(2 * np.pi * 100 * t), 0.1 * np.cos(2 * np.pi * 100 * t)
    assert M.si_sdr(s + n, s) == pytest.approx(20.0, abs=1e-6)


def test_amplitude_ratio(speech):
    assert M.amplitude_ratio(0.5 * speech, speech) == pytest.approx(0.5, abs=1e-9)
    assert M.amplitude_ratio(2 * speech, speech) == pytest.approx(2.0, abs=1e-9)


def test_batched_and_tensor_inputs_give_the_mean_of_items(speech):
    a, b = 0.5 * speech, 0.25 * speech
    batched = M.amplitude_ratio(np.stack([a, b]), np.stack([speech, speech]))
    assert batched == pytest.approx(0.375, abs=1e-9)
    pred = torch.from_numpy(np.stack([a, b]))[:, None]  # (B, 1, T)
    target = torch.from_numpy(np.stack([speech, speech]))[:, None]
    expected = (M.snr(a, speech) + M.snr(b, speech)) / 2
    assert M.snr(pred, target) == pytest.approx(expected, abs=1e-6)
    assert M.mel_distance(pred, target) == pytest.approx(
        (M.mel_distance(a, speech) + M.mel_distance(b, speech)) / 2, rel=1e-5
    )


def test_shape_mismatch_is_an_error(speech):
    with pytest.raises(ValueError, match="differ"):
        M.snr(speech[:-1], speech)
    with pytest.raises(ValueError, match="differ"):
        M.mel_distance(speech[:-1], speech)


@pytest.mark.parametrize("fn", [M.log_spectral_distance, M.mel_distance, M.mrstft_distance])
def test_spectral_distances_are_zero_on_copies_and_grow_with_noise(fn, speech):
    assert fn(speech, speech) == pytest.approx(0.0, abs=1e-6)
    values = [fn(_noisy(speech, snr), speech) for snr in (30.0, 15.0, 0.0)]
    assert all(math.isfinite(v) for v in values)
    assert 0 < values[0] < values[1] < values[2]


def test_mel_distance_of_a_tenfold_gain_is_one():
    # every mel bin of white noise at this level is far above the 1e-5 floor
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.05
    assert M.mel_distance(10 * x, x) == pytest.approx(1.0, abs=1e-4)


# ------------------------------------------------------------------ perceptual metrics
def test_pesq_of_a_copy_is_near_the_top_and_noise_lowers_it(speech):
    clean = M.pesq_wb(speech, speech, SR)
    noisy = M.pesq_wb(_noisy(speech, 5.0), speech, SR)
    assert clean is not None and clean > 4.0
    assert noisy is not None and 1.0 <= noisy < clean - 1.0


def test_pesq_split_names_the_part_of_the_spectrum_that_is_wrong(speech):
    """Smeared magnitudes on the exact phase -> `magnitude` far below `phase`; jittered phase on
    the exact magnitudes -> `phase` below `magnitude`, both well above the signal's own PESQ."""
    window = torch.hann_window(512)
    x = torch.from_numpy(speech.astype(np.float32))
    spec = torch.stft(x, 512, 128, window=window, return_complex=True)

    def wave(s: torch.Tensor) -> np.ndarray:
        return torch.istft(s, 512, 128, window=window, length=len(x)).numpy()

    kernel = torch.ones(1, 1, 15) / 15
    smeared = torch.nn.functional.conv1d(spec.abs().T.unsqueeze(1), kernel, padding=7)
    smeared = wave(torch.polar(smeared.squeeze(1).T, spec.angle()))
    noise = torch.rand(spec.shape, generator=torch.Generator().manual_seed(0)) * 2 - 1
    jittered = wave(torch.polar(spec.abs(), spec.angle() + noise))

    bad_magnitude = M.pesq_split(smeared, speech, SR)
    assert bad_magnitude["magnitude"] < bad_magnitude["phase"] - 1.0
    bad_phase = M.pesq_split(jittered, speech, SR)
    assert bad_phase["phase"] < bad_phase["magnitude"]
    assert min(bad_phase.values()) > M.pesq_wb(jittered, speech, SR) + 0.5
    # optional: only when asked for, with one key per part
    assert "pesq_split_magnitude" not in M.metric_keys(M.resolve_metrics(None))
    got = M.compute_metrics(smeared, speech, SR, "pesq_split")
    assert got["pesq_split_magnitude"] == pytest.approx(bad_magnitude["magnitude"])


def test_pesq_resamples_other_rates(speech):
    x8 = speech[::2].copy()  # content is below 4 kHz already
    assert M.pesq_wb(x8, x8, 8000) > 4.0


def test_pesq_of_silence_is_unavailable_not_zero():
    z = np.zeros(SR, dtype=np.float32)
    assert M.pesq_wb(z, z, SR) is None
    assert "silent" in M.unavailable_reason("pesq_wb")
    x = speechlike(seconds=1.0, sample_rate=SR)
    assert M.pesq_wb(1e-3 * np.sign(x), x, SR) is not None


def test_stoi_of_a_copy_is_one_and_noise_lowers_it(speech):
    assert M.stoi(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    assert M.estoi(speech, speech, SR) == pytest.approx(1.0, abs=1e-6)
    assert M.stoi(_noisy(speech, -5.0), speech, SR) < 0.9


def test_stoi_of_a_too_short_signal_is_unavailable():
    x = speechlike(seconds=0.1, sample_rate=SR)
    assert M.stoi(x, x, SR) is None


@pytest.mark.parametrize(
    ("module", "call", "name"),
    [
        ("pesq", lambda x: M.pesq_wb(x, x, SR), "pesq_wb"),
        ("pystoi", lambda x: M.stoi(x, x, SR), "stoi"),
        ("speechmos", lambda x: M.dnsmos(x, SR), "dnsmos"),
    ],
)
def test_a_missing_dependency_gives_none(monkeypatch, speech, module, call, name):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    assert call(speech) is None
    assert "install" in M.unavailable_reason(name) or "missing" in M.unavailable_reason(name)


def test_compute_metrics_marks_missing_values_none_not_zero(monkeypatch, speech):
    monkeypatch.setitem(sys.modules, "pesq", None)
    out = M.compute_metrics(0.5 * speech, speech, SR)
    assert list(out) == M.metric_keys(M.DEFAULT_METRICS)
    assert out["pesq_wb"] is None
    assert out["snr"] == pytest.approx(20 * math.log10(2), abs=1e-6)
    assert all(v is not None and math.isfinite(v) for k, v in out.items() if k != "pesq_wb")


def test_metric_selection():
    assert M.resolve_metrics("snr, stoi") == ("snr", "stoi")
    assert set(M.resolve_metrics("all")) == set(M.METRICS)
    assert "dnsmos_ovrl" in M.metric_keys(M.resolve_metrics("all"))
    with pytest.raises(ValueError, match="unknown metric"):
        M.resolve_metrics("snr,bogus")


def test_real_bitrate():
    assert M.real_bitrate(1500, 1.0) == 12000.0
    assert M.real_bitrate(750, 2.0) == 3000.0
    with pytest.raises(ValueError):
        M.real_bitrate(10, 0.0)


# ------------------------------------------------------------------ optional metrics
def test_dnsmos_scores_in_range(speech):
    pytest.importorskip("speechmos")
    pytest.importorskip("onnxruntime")
    out = M.dnsmos(speech, SR)
    assert out is not None and set(out) == set(M.DNSMOS_KEYS)
    assert all(1.0 <= v <= 5.0 for v in out.values())


def test_visqol_ranks_clean_above_opus_12k_above_opus_6k(tmp_path):
    pytest.importorskip("visqol")
    from telugu_codec.audio import load_audio
    from telugu_codec.evaluation.baselines import opus, opus_unavailable

    if opus_unavailable():
        pytest.skip(opus_unavailable())
    pytest.importorskip("ai_edge_litert")  # the lattice mapper (visqol-python[lattice])
    # On real (espeak-ng) speech; ViSQOL's speech mode ranks the synthetic pulse train oddly.
    for path in real_speech_files(tmp_path, n=2):
        x = load_audio(path, SR).wav
        clean = M.visqol(x, x, SR)
        hi = M.visqol(opus(x, SR, 12).audio, x, SR)
        lo = M.visqol(opus(x, SR, 6).audio, x, SR)
        assert None not in (clean, hi, lo)
        assert clean > hi > lo
