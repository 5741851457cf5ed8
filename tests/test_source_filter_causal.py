"""The causal source-filter decoder (`model.causal: true`) and the `streaming-sf` preset: no
look-ahead with the tracker, encoder and decoder all in the path; streams equal offline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from telugu_codec.config import load_config
from telugu_codec.errors import ConfigError
from telugu_codec.model.codec import Codec, build_codec
from telugu_codec.model.streaming import algorithmic_latency, receptive_field

from .conftest import initialised_codec, speechlike

SR, HOP = 16000, 320
# causal, `block` normalisation with 2-frame gain blocks (a 1 s signal crosses many), the
# source-filter decoder with two ConvNeXt blocks at twice the frame rate, n_fft = 2 x s
CAUSAL_SF = [
    "model.causal=true",
    "model.normalization=block",
    "model.norm_block_frames=2",
    "model.norm_time_constant=0.2",
    "model.decoder.kind=source_filter",
    "model.pitch.enabled=true",
    "model.decoder.istft.dim=32",
    "model.decoder.istft.intermediate_dim=64",
    "model.decoder.istft.layers=2",
    "model.decoder.istft.upsample=2",
    "model.decoder.istft.n_fft_factor=2",
]


def make_codec(*extra: str) -> Codec:
    return initialised_codec(*CAUSAL_SF, *extra)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec()


@pytest.fixture(scope="module")
def codec_ahead() -> Codec:
    """The same model with one frame of pitch look-ahead in the source (40 ms in all)."""
    return make_codec("model.decoder.source_filter.lookahead=1")


def tone(f0: float, n: int) -> np.ndarray:
    t = np.arange(n) / SR
    x = sum(0.6**k * np.sin(2 * np.pi * k * f0 * t + k) for k in range(1, 10))
    return (0.2 * x / np.abs(x).max()).astype(np.float32)


def signal(seconds: float = 1.0) -> np.ndarray:
    wav = speechlike(seconds)
    wav[len(wav) // 2 :] *= 0.2  # a level change: later gain blocks differ
    return wav


def run(codec: Codec, x: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """The whole path (block gain, tracker, encoder, quantizer, decoder): (audio, pitch codes)."""
    t = torch.from_numpy(x).view(1, 1, -1)
    with torch.no_grad():
        audio = codec(t).audio[0, 0]
        _, _, pitch = codec.encode_codes(t, return_pitch=True)
    return audio, pitch[0]


def future_changed(x: np.ndarray, n: int) -> np.ndarray:
    """`x` with everything from sample n on replaced by a louder tone at another pitch."""
    y = x.copy()
    y[n:] = 3 * tone(230.0, len(x) - n)
    return y


@pytest.mark.parametrize("n", [3000, 6400, 6719, 9001])
def test_causal_model_does_not_look_ahead(codec, n):
    """Audio before the frame holding sample n is bit-identical when the input from n on
    changes, while the pitch codes from that frame on do change."""
    x = signal(1.0)
    a, pa = run(codec, x)
    b, pb = run(codec, future_changed(x, n))
    cut = (n // HOP) * HOP
    assert torch.equal(a[:cut], b[:cut])
    assert not torch.equal(pa[n // HOP :], pb[n // HOP :])  # the tracker saw the change
    assert not torch.allclose(a[n:], b[n:])


@pytest.mark.parametrize("n", [6400, 9001])
def test_lookahead_is_bounded_by_its_setting(codec_ahead, n):
    """One frame of pitch look-ahead: the frame before n's changes (its pitch code does), the
    one before that does not."""
    x = signal(1.0)
    a, pa = run(codec_ahead, x)
    b, pb = run(codec_ahead, future_changed(x, n))
    assert pa[n // HOP] != pb[n // HOP]
    first = int(torch.nonzero(a != b).min())
    assert first // HOP == n // HOP - 1


def test_source_anchored_where_the_tracker_measured_looks_ahead():
    """Why the causal decoder moves the source's pitch anchor: at the tracker's own anchor
    (the non-causal decoder's), the pulses before a frame already read its pitch."""
    codec = make_codec()
    codec.decoder.source_anchor = codec.tracker.anchor_offset
    codec.decoder.source_context = 0
    x = signal(1.0)
    n = 6400
    a, _ = run(codec, x)
    b, _ = run(codec, future_changed(x, n))
    assert not torch.equal(a[: (n // HOP) * HOP], b[: (n // HOP) * HOP])


def test_receptive_field_counts_the_pitch(codec, codec_ahead):
    """Autograd sees only the latents (0 frames ahead in both); the pitch reach is measured
    by changing a pitch frame."""
    r0, r1 = receptive_field(codec), receptive_field(codec_ahead)
    assert r0["encoder_right"] == 0 and r0["decoder_right"] == 0
    assert r1["decoder_right"] == 1
    assert r0["decoder_left"] > 0
    assert algorithmic_latency(codec) == pytest.approx(0.020)
    assert algorithmic_latency(codec_ahead) == pytest.approx(0.040)


def stream(codec: Codec, wav: np.ndarray, chunk: int, n_q: int = 4, **dec_kw):
    """Encode in `chunk`-sample pushes, decode each push's codes at once."""
    enc = codec.stream_encoder(n_q)
    dec = codec.stream_decoder(**dec_kw)
    codes, gains, pitch, audio = [], [], [], []
    for i in range(0, len(wav), chunk):
        c = enc.push(wav[i : i + chunk])
        codes.append(c.codes)
        gains.append(c.gains)
        pitch.append(c.pitch)
        audio.append(dec.push(c))
    c = enc.flush()
    codes.append(c.codes)
    gains.append(c.gains)
    pitch.append(c.pitch)
    audio += [dec.push(c), dec.flush()]
    cat = np.concatenate
    return cat(codes, 1), cat(gains), cat(pitch), cat(audio)


@pytest.mark.parametrize("chunk", [1, 320, 592, 16000])  # 1 sample, 20 ms, 37 ms, 1 s
def test_stream_equals_offline(codec, chunk):
    wav = signal(0.5 if chunk == 1 else 1.3)
    ref = codec.encode(wav, SR, n_q=4)
    assert len(set(ref.block_gains.tolist())) > 2 and len(set(ref.pitch.tolist())) > 5
    codes, gains, pitch, audio = stream(codec, wav, chunk)
    assert np.array_equal(codes, ref.codes)
    assert np.array_equal(gains, ref.block_gains)
    assert np.array_equal(pitch, ref.pitch)
    assert audio.shape == wav.shape
    assert np.abs(audio - codec.decode(ref).numpy()).max() < 1e-4


@pytest.mark.parametrize("window", [1, 7])
def test_stream_with_pitch_lookahead_equals_offline(codec_ahead, window):
    wav = signal(1.0)
    ref = codec_ahead.encode(wav, SR, n_q=4)
    _, _, _, audio = stream(codec_ahead, wav, 333, window_frames=window)
    assert np.abs(audio - codec_ahead.decode(ref).numpy()).max() < 1e-4
    dec = codec_ahead.stream_decoder(window_frames=window)
    assert dec.latency_samples == HOP * (window - 1 + 1)


def test_stream_with_pitch_shift_equals_offline(codec):
    wav = signal(1.0)
    ref = codec.encode(wav, SR, n_q=4)
    _, _, _, audio = stream(codec, wav, 500, pitch_shift=-5.0)
    assert np.abs(audio - codec.decode(ref, pitch_shift=-5.0).numpy()).max() < 1e-4


@pytest.mark.parametrize("t", [1, 7, 319, 321, 1001, 3201])
def test_output_length_equals_input_length(codec, t):
    x = torch.from_numpy(signal(1.0)[:t]).view(1, 1, -1)
    with torch.no_grad():
        out = codec(x.repeat(2, 1, 1))
    assert out.audio.shape == (2, 1, t) and torch.isfinite(out.audio).all()
    assert codec.decode(codec.encode(x[0, 0].numpy(), SR)).shape == (t,)


def test_lookahead_needs_a_causal_model():
    with pytest.raises(ConfigError, match="lookahead"):
        load_config("tiny-sf", ["model.decoder.source_filter.lookahead=1"])


def measured_latency(codec: Codec, seconds: float) -> tuple[int, int]:
    """Push one sample at a time through a stream encoder and decoder: (the most input
    samples pushed after an output sample's own before it came out, the latency the stream
    classes report)."""
    enc, dec = codec.stream_encoder(2), codec.stream_decoder()
    lag = out = 0
    for i, s in enumerate(signal(seconds)):
        y = dec.push(enc.push(np.array([s])))
        if len(y):  # sample j came out after i + 1 inputs: it waited i - j samples
            lag = max(lag, i - out)
        out += len(y)
    return lag, enc.latency_samples + dec.latency_samples


def test_streaming_sf_preset_is_causal_with_pitch_and_20ms_latency():
    codec = build_codec(load_config("streaming-sf")).eval()
    cfg = codec.cfg
    assert cfg.causal and codec.normalization == "block" and codec.has_pitch
    assert cfg.decoder.kind == "source_filter" and cfg.decoder.source_filter.lookahead == 0
    assert codec.pitch_bitrate == 400 and codec.bitrate(5) == 2900  # the preset's comment
    reach = receptive_field(codec)
    assert reach["encoder_right"] == 0 and reach["decoder_right"] == 0
    lag, reported = measured_latency(codec, 0.2)
    # the first sample of a frame waits for the other hop - 1; the decoder adds nothing
    assert lag == HOP - 1 and reported == HOP
    assert reported <= 0.040 * SR and algorithmic_latency(codec) == pytest.approx(0.020)
