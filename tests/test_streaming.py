"""Streaming: chunked encode/decode equals offline for causal models, with normalisation on."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from telugu_codec.config import load_config
from telugu_codec.model.codec import Codec, build_codec
from telugu_codec.model.streaming import algorithmic_latency, receptive_field

from .conftest import initialised_codec, speechlike

# causal, `block` normalisation with 2-frame (40 ms) gain blocks so that a 1 s test signal
# crosses many blocks, and a fast (0.2 s) level so that the gain follows the quieter second half
STREAM = [
    "model.causal=true",
    "model.normalization=block",
    "model.norm_block_frames=2",
    "model.norm_time_constant=0.2",
]


def make_codec(*extra: str) -> Codec:
    return initialised_codec(*extra)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def codec() -> Codec:
    return make_codec(*STREAM)


def signal(seconds: float = 1.0) -> np.ndarray:
    wav = speechlike(seconds)
    wav[len(wav) // 2 :] *= 0.2  # a level change: later gain blocks differ
    return wav


def stream(codec: Codec, wav: np.ndarray, chunk: int, n_q: int = 4, gain: float | None = None):
    """Encode in `chunk`-sample pushes, decode each push's codes at once."""
    enc = codec.stream_encoder(n_q, gain=gain)
    dec = codec.stream_decoder(gain=1.0 if gain is None else gain)
    codes, gains, audio = [], [], []
    for i in range(0, len(wav), chunk):
        c = enc.push(wav[i : i + chunk])
        codes.append(c.codes)
        gains.append(c.gains)
        audio.append(dec.push(c))
    c = enc.flush()
    codes.append(c.codes)
    gains.append(c.gains)
    audio += [dec.push(c), dec.flush()]
    return np.concatenate(codes, 1), np.concatenate(gains), np.concatenate(audio)


@pytest.mark.parametrize("chunk", [1, 7, 160, 320, 4000])
def test_stream_equals_offline(codec, chunk):
    wav = signal(0.6 if chunk == 1 else 1.0)
    ref = codec.encode(wav, 16000, n_q=4)
    assert len(set(ref.block_gains.tolist())) > 2  # the gain really changes
    codes, gains, audio = stream(codec, wav, chunk)
    assert np.array_equal(codes, ref.codes)
    assert np.array_equal(gains, ref.block_gains)
    assert audio.shape == wav.shape
    assert np.abs(audio - codec.decode(ref).numpy()).max() < 1e-5


def test_stream_with_weight_norm_folded_equals_offline():
    codec = make_codec(*STREAM).remove_weight_norm()
    wav = signal(0.5)
    ref = codec.encode(wav, 16000, n_q=2)
    codes, _, audio = stream(codec, wav, 333, n_q=2)
    assert np.array_equal(codes, ref.codes)
    assert np.abs(audio - codec.decode(ref).numpy()).max() < 1e-5


def test_state_survives_across_calls(codec):
    a, b = signal(1.0), speechlike(1.0, seed=3)
    ea, eb = codec.stream_encoder(4), codec.stream_encoder(4)
    ca, cb = [], []
    rng = np.random.default_rng(0)
    i = j = 0
    while i < len(a) or j < len(b):  # interleave two streams and offline calls
        n = int(rng.integers(1, 700))
        ca.append(ea.push(a[i : i + n]).codes)
        i += n
        codec.encode(speechlike(0.1, seed=9), 16000)
        cb.append(eb.push(b[j : j + n // 2 + 1]).codes)
        j += n // 2 + 1
    ca.append(ea.flush().codes)
    cb.append(eb.flush().codes)
    assert np.array_equal(np.concatenate(ca, 1), codec.encode(a, 16000, 4).codes)
    assert np.array_equal(np.concatenate(cb, 1), codec.encode(b, 16000, 4).codes)


@pytest.mark.parametrize("n", [1, 319, 320, 321, 4001])
def test_flush_gives_the_exact_length(codec, n):
    wav = signal(1.0)[:n]
    _, _, audio = stream(codec, wav, 256)
    assert audio.shape == (n,)
    last = codec.stream_encoder(1)
    last.push(wav)
    tail = last.flush()
    assert tail.final and tail.trim == (-n) % codec.hop_length


def test_decoder_takes_any_frame_grouping(codec):
    wav = signal(1.0)
    ref = codec.encode(wav, 16000, n_q=3)
    dec = codec.stream_decoder()
    bf = codec.cfg.norm_block_frames
    out, f = [], 0
    for k in (1, 4, 0, 7, 13, 25):
        blocks = range(-(-f // bf), -(-(f + k) // bf))
        out.append(dec.push(ref.codes[:, f : f + k], ref.block_gains[list(blocks)]))
        f += k
    from telugu_codec.model.streaming import EncodedChunk

    trim = ref.frames * codec.hop_length - ref.length
    blocks = list(range(-(-f // bf), -(-ref.frames // bf)))
    last = EncodedChunk(ref.codes[:, f:], ref.block_gains[blocks], f, True, trim)
    out += [dec.push(last), dec.flush()]
    audio = np.concatenate(out)
    assert np.abs(audio - codec.decode(ref).numpy()).max() < 1e-5


def test_training_path_uses_the_same_normalisation(codec):
    x = torch.from_numpy(signal(1.0)).view(1, 1, -1)
    with torch.no_grad():
        train_out = codec(x, n_q=4).audio[0, 0]
    ref = codec.decode(codec.encode(x[0, 0].numpy(), 16000, n_q=4))
    assert torch.allclose(train_out, ref, atol=1e-5)


def test_causal_model_with_normalisation_does_not_look_ahead(codec):
    x = torch.from_numpy(signal(1.0)).view(1, 1, -1)
    y = x.clone()
    y[..., 9000:] *= 20  # the future gets 26 dB louder
    with torch.no_grad():
        a, b = codec(x).audio, codec(y).audio
    cut = (9000 // codec.hop_length) * codec.hop_length
    assert torch.equal(a[..., :cut], b[..., :cut])
    assert not torch.allclose(a[..., 9000:], b[..., 9000:])


def test_clip_normalisation_looks_ahead():
    # why the streaming preset needs `block`: a whole-clip gain moves the past
    codec = make_codec("model.causal=true", "model.normalization=clip")
    x = torch.from_numpy(signal(1.0)).view(1, 1, -1)
    y = x.clone()
    y[..., 9000:] *= 20
    with torch.no_grad():
        a, b = codec(x).audio, codec(y).audio
    assert not torch.allclose(a[..., :8000], b[..., :8000])


def test_streaming_preset_is_causal_with_20ms_latency():
    codec = build_codec(load_config("streaming")).eval()
    assert codec.cfg.causal and codec.normalization == "block"
    assert algorithmic_latency(codec) == pytest.approx(0.020)
    reach = receptive_field(codec)
    assert reach["encoder_right"] == 0 and reach["decoder_right"] == 0


def test_measured_latency_is_one_frame(codec):
    # push one sample at a time: frame f's codes appear with sample (f + 1) * hop - 1
    enc = codec.stream_encoder(1)
    hop = codec.hop_length
    seen = []
    for i, s in enumerate(signal(0.1)):
        if enc.push(np.array([s])).frames:
            seen.append(i)
    assert seen == [(f + 1) * hop - 1 for f in range(len(seen))]


def test_non_causal_model_streams_by_windows():
    codec = make_codec("model.normalization=clip")
    wav = signal(1.5)
    ref = codec.encode(wav, 16000, n_q=4)
    reach = receptive_field(codec)
    assert reach["encoder_right"] > 0 and reach["decoder_right"] > 0
    codes, _, audio = stream(codec, wav, 500, gain=ref.gain)
    # the frames a window keeps see their whole receptive field: offline up to float rounding
    # (measured: 0 to 1.4e-7 here and on the default preset, benchmarks/results_streaming.md)
    assert np.array_equal(codes, ref.codes)
    assert np.abs(audio - codec.decode(ref).numpy()).max() < 1e-5
    enc = codec.stream_encoder(4, gain=ref.gain, window_frames=8)
    assert enc.latency_samples == codec.hop_length * (8 + reach["encoder_right"])


def test_receptive_field_of_causal_model_has_no_future(codec):
    r = receptive_field(codec)
    assert r["encoder_right"] == 0 and r["decoder_right"] == 0
    assert r["encoder_left"] > 0 and r["decoder_left"] > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_stream_on_cuda_equals_offline_and_block_normalisation_trains():
    codec = make_codec(*STREAM).cuda()
    wav = signal(1.0)
    ref = codec.encode(wav, 16000, n_q=4)
    codes, gains, audio = stream(codec, wav, 320)
    assert np.array_equal(gains, ref.block_gains)
    assert (codes == ref.codes).mean() > 0.99  # GPU kernels may round differently
    assert np.abs(audio - codec.decode(ref).numpy()).max() < 1e-3
    codec.train()
    x = torch.from_numpy(wav).view(1, 1, -1).cuda().repeat(2, 1, 1)
    out = codec(x)
    (out.audio - x).abs().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in codec.parameters() if p.grad is not None)
