"""Tokens depend on the audio only: batched, single-file and 20 ms streamed encoding give the same
bits (issue 24), in fp32 and under bf16 autocast; a batch of streams equals each stream alone."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from telugu_codec.errors import CodecError
from telugu_codec.model.batch_encode import PAD_CODE
from telugu_codec.model.codec import Codec
from telugu_codec.nn import fixed_order

from .conftest import initialised_codec, speechlike

SR = 16000
HOP = 320
CAUSAL = ["model.causal=true", "model.normalization=block", "model.norm_block_frames=2"]
# awkward lengths: 1 sample, hop - 1, hop + 1, 0.37 s, 1.23 s
LENGTHS = [1, HOP - 1, HOP + 1, int(0.37 * SR), int(1.23 * SR)]


def make_codec(*extra: str) -> Codec:
    return initialised_codec(*extra)


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def causal() -> Codec:
    return make_codec(*CAUSAL)


@pytest.fixture(scope="module")
def centred() -> Codec:
    return make_codec("model.normalization=clip")


def files() -> list[np.ndarray]:
    out = []
    for i, n in enumerate(LENGTHS):
        wav = speechlike(1.3, seed=i)[:n].copy()
        wav[n // 2 :] *= 0.3  # a level change: block gains move
        out.append(wav)
    return out


def precision(bf16: bool):
    if bf16:
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def padded(wavs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    t = max(len(w) for w in wavs)
    x = torch.zeros(len(wavs), 1, t)
    for i, w in enumerate(wavs):
        x[i, 0, : len(w)] = torch.from_numpy(w)
    return x, torch.tensor([len(w) for w in wavs])


def streamed(codec: Codec, wav: np.ndarray, n_q: int, chunk: int = HOP):
    enc = codec.stream_encoder(n_q)
    parts = [enc.push(wav[i : i + chunk]) for i in range(0, len(wav), chunk)] + [enc.flush()]
    codes = np.concatenate([p.codes for p in parts], axis=1)
    return codes, np.concatenate([p.gains for p in parts])


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_batch_single_and_20ms_stream_give_the_same_codes(causal, bf16):
    wavs = files()
    with precision(bf16):
        x, lengths = padded(wavs + [speechlike(0.8, seed=7)] * 3)  # a batch of 8
        batch8 = causal.encode_batch(x, lengths, n_q=4)
        for i, wav in enumerate(wavs):
            single = causal.encode(wav, SR, n_q=4)
            alone = causal.encode_batch(torch.from_numpy(wav).view(1, 1, -1), [len(wav)], n_q=4)
            stream_codes, stream_gains = streamed(causal, wav, 4)
            n = -(-len(wav) // HOP)
            assert int(batch8.n_frames[i]) == n == single.frames == stream_codes.shape[1]
            assert np.array_equal(batch8.item(i).numpy(), single.codes)
            assert np.array_equal(alone.item(0).numpy(), single.codes)
            assert np.array_equal(stream_codes, single.codes)
            assert np.array_equal(batch8.gains[i].numpy(), single.block_gains)
            assert np.array_equal(stream_gains, single.block_gains)
            assert (batch8.codes[i, :, n:] == PAD_CODE).all()


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_latents_have_the_same_bits_in_a_batch_alone_and_in_20ms_steps(causal, bf16):
    # stricter than codes (a code flips only near a tie): the encoder's output itself
    x = torch.from_numpy(np.stack([speechlike(0.5, seed=s) for s in range(8)])).view(8, 1, -1)
    x = x[..., : 25 * HOP]
    with torch.inference_mode(), precision(bf16):
        batch = causal.encoder(x)
        alone = torch.cat([causal.encoder(x[i : i + 1]) for i in range(8)])
        shorter = causal.encoder(x[:1, :, : 7 * HOP])
        with causal.streaming(batch_size=8):
            steps = torch.cat(
                [causal.encoder(x[..., f * HOP : (f + 1) * HOP]) for f in range(25)], -1
            )
    assert torch.equal(batch, alone)
    assert torch.equal(batch[:1, :, :7], shorter)
    assert torch.equal(batch, steps)


@pytest.mark.parametrize("bf16", [False, True], ids=["fp32", "bf16"])
def test_non_causal_model_batch_equals_single(centred, bf16):
    wavs = files()
    with precision(bf16):
        x, lengths = padded(wavs)
        batch = centred.encode_batch(x, lengths, n_q=4)
        for i, wav in enumerate(wavs):
            single = centred.encode(wav, SR, n_q=4)
            assert np.array_equal(batch.item(i).numpy(), single.codes)
            assert float(batch.gains[i]) == single.gain  # over the valid samples only


def test_non_causal_windowed_stream_gives_the_offline_codes(centred):
    wav = files()[-1]
    ref = centred.encode(wav, SR, n_q=4)
    enc = centred.stream_encoder(4, gain=ref.gain, window_frames=8)
    parts = [enc.push(wav[i : i + HOP]) for i in range(0, len(wav), HOP)] + [enc.flush()]
    assert np.array_equal(np.concatenate([p.codes for p in parts], 1), ref.codes)


def test_gain_ignores_the_padding(centred):
    # a loud neighbour or a long zero tail must not move an item's `clip` gain
    wav = files()[3]
    x = torch.zeros(2, 1, 3 * len(wav))
    x[0, 0, : len(wav)] = torch.from_numpy(wav)
    x[1] = 0.9
    batch = centred.encode_batch(x, [len(wav), x.shape[-1]], n_q=2)
    assert float(batch.gains[0]) == centred.encode(wav, SR, n_q=2).gain


@pytest.mark.parametrize("chunks", [[1, 1, 1, 1], [3, 1, 5, 2, 4]])
def test_a_batch_of_3_streams_equals_3_single_streams(causal, chunks):
    frames = sum(chunks)
    x = torch.from_numpy(np.stack([speechlike(1.0, seed=s) for s in range(3)])).view(3, 1, -1)
    x = x[..., : frames * HOP] * 3
    bounds = np.cumsum([0] + chunks)
    with torch.inference_mode():
        offline = causal.quantizer.encode(causal.encoder(x), 4)
        with causal.streaming(batch_size=3):
            z = [causal.encoder(x[..., a * HOP : b * HOP]) for a, b in zip(bounds, bounds[1:])]
            codes = causal.quantizer.encode(torch.cat(z, -1), 4)
            q = causal.quantizer.decode(codes)
            audio = torch.cat([causal.decoder(q[..., a:b]) for a, b in zip(bounds, bounds[1:])], -1)
        for i in range(3):
            with causal.streaming(batch_size=1):
                zi = torch.cat([causal.encoder(x[i : i + 1, :, f * HOP : (f + 1) * HOP])
                                for f in range(frames)], -1)  # fmt: skip
                qi = causal.quantizer.decode(causal.quantizer.encode(zi, 4))
                ai = torch.cat([causal.decoder(qi[..., f : f + 1]) for f in range(frames)], -1)
            assert torch.equal(codes[i : i + 1], causal.quantizer.encode(zi, 4))
            assert torch.equal(audio[i : i + 1], ai)
        assert torch.equal(codes, offline)
        assert torch.equal(audio, causal.decoder(causal.quantizer.decode(offline)))


def test_streaming_needs_a_causal_model_and_one_stream_at_a_time(causal, centred):
    with pytest.raises(CodecError, match="causal"):
        with centred.streaming():
            pass
    with causal.streaming():
        with pytest.raises(CodecError, match="already open"):
            with causal.streaming():
                pass
    # closed: the layers are stateless again, offline calls pad with zeros
    x = torch.randn(1, 1, 4 * HOP) * 0.1
    with torch.inference_mode():
        a = causal.encoder(x)
        with causal.streaming():
            causal.encoder(x)
        assert torch.equal(causal.encoder(x), a)


@pytest.mark.parametrize(
    "lengths, match",
    [([0, 5], "lengths must be in"), ([5, 99], "lengths must be in"), ([5], "one per item")],
)
def test_encode_batch_refuses_bad_lengths(causal, lengths, match):
    with pytest.raises(CodecError, match=match):
        causal.encode_batch(torch.zeros(2, 1, 50), lengths)


def test_encode_batch_refuses_nan_in_valid_samples_only(causal):
    x = torch.zeros(2, 1, 700)
    x[1, 0, 600:] = float("nan")  # in the padding: ignored
    assert causal.encode_batch(x, [700, 500], n_q=1).codes.shape == (2, 1, 3)
    with pytest.raises(CodecError, match="item 0"):
        x[0, 0, 3] = float("nan")
        causal.encode_batch(x, [700, 500])


@pytest.mark.parametrize(
    "c_in, c_out, k, stride, dilation, groups",
    [(2, 16, 7, 1, 1, 1), (16, 8, 7, 1, 9, 1), (16, 32, 4, 2, 1, 1), (8, 8, 7, 1, 3, 8)],
)
def test_fixed_order_conv_computes_the_convolution(c_in, c_out, k, stride, dilation, groups):
    w = torch.randn(c_out, c_in // groups, k)
    b = torch.randn(c_out)
    x = torch.randn(3, c_in, 400)
    ref = F.conv1d(x, w, b, stride, 0, dilation, groups)
    got = fixed_order.conv1d(x, w, b, stride, dilation, groups)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-4)
    # tiles and short calls: the same bits per output sample
    old = fixed_order.TILE_VALUES
    try:
        fixed_order.TILE_VALUES = 64 * c_in * k  # tiles of 64 columns (the last one shorter)
        assert torch.equal(fixed_order.conv1d(x, w, b, stride, dilation, groups), got)
    finally:
        fixed_order.TILE_VALUES = old
    span = (k - 1) * dilation + 1
    one = fixed_order.conv1d(x[1:2, :, : span + 2 * stride], w, b, stride, dilation, groups)
    assert torch.equal(one, got[1:2, :, :3])


@pytest.mark.parametrize("rows, depth", [(1, 14), (2, 14), (3, 28), (16, 112)])
def test_fixed_order_gemm_sums_a_column_the_same_way_for_any_width(rows, depth):
    # MKL alone differs below 12 columns, and at 2-3 rows for many widths (bench_invariance.py)
    w, x = torch.randn(rows, depth), torch.randn(2, depth, 600)
    full = fixed_order._gemm(w, x)
    assert torch.allclose(full, torch.matmul(w, x), atol=1e-4)
    for n in list(range(1, 40)) + [97, 160, 333]:
        assert torch.equal(fixed_order._gemm(w, x[..., 7 : 7 + n]), full[..., 7 : 7 + n]), n
        assert torch.equal(fixed_order._gemm(w, x[1:, :, 7 : 7 + n]), full[1:, :, 7 : 7 + n]), n
