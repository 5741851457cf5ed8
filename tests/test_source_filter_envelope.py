"""The source-filter decoder's cepstral envelope (`source_filter.envelope: cepstrum`)."""

from __future__ import annotations

import torch

from telugu_codec.config import load_config
from telugu_codec.model.codec import build_codec

from .conftest import TINY_OVERRIDES
from .test_source_filter import SF, median_f0, tone

CEP = SF + [
    "model.decoder.source_filter.envelope=cepstrum",
    "model.decoder.source_filter.n_cepstrum=24",
]


def cep_codec(*extra: str):
    codec = build_codec(load_config(None, TINY_OVERRIDES + CEP + list(extra)))
    codec.train()
    codec(torch.randn(2, 1, 3200) * 0.1)
    return codec.eval()


def test_the_harmonic_filter_is_minimum_phase():
    """A minimum-phase filter's impulse response lies at non-negative times: almost none of its
    energy wraps to the end of the FFT buffer (negative times), unlike the zero-phase filter
    with the same magnitude, whose response is symmetric."""
    dec = cep_codec().decoder
    c = torch.zeros(1, dec.n_cep, 1)
    c[0, 1:6, 0] = torch.tensor([0.6, -0.4, 0.3, 0.2, -0.1])
    log_h = dec._cepstrum_to_log_spectrum(c)[0, :, 0]
    n = dec.n_fft
    minimum = torch.fft.irfft(torch.exp(log_h), n)
    zero = torch.fft.irfft(torch.exp(log_h.real).to(torch.complex64), n)

    def late(h):  # energy share in the second half of the buffer (negative times)
        return float(h[n // 2 :].square().sum() / h.square().sum())

    assert late(minimum) < 1e-3 and late(zero) > 0.1
    # and its magnitude is the cepstrum's smooth envelope: log|H| = 2 sum c_n cos(w n)
    w = torch.arange(dec.bins) * 2 * torch.pi / n
    ref = sum(2 * c[0, k, 0] * torch.cos(w * k) for k in range(1, 6))
    assert torch.allclose(log_h.real, ref, atol=1e-4)


def test_phase_residual_starts_at_zero_and_output_is_finite():
    codec = cep_codec()
    dec = codec.decoder
    b, nc = dec.bins, dec.n_cep
    assert dec.proj.weight[nc : nc + b].abs().sum() == 0
    with torch.no_grad():
        out = codec(torch.randn(2, 1, 4321) * 0.1)
    assert out.audio.shape == (2, 1, 4321) and torch.isfinite(out.audio).all()


def test_cepstrum_model_keeps_pitch_shift():
    codec = cep_codec("model.decoder.source_filter.free_level=1e-4")
    with torch.no_grad():
        codec.decoder.proj.weight.zero_()
    enc = codec.encode(tone(140), 16000)
    base = median_f0(codec.decode(enc))
    up = median_f0(codec.decode(enc, pitch_shift=12))
    assert abs(base / 140 - 1) < 0.02 and abs(up / base - 2) < 0.04
