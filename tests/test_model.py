from __future__ import annotations

import pytest
import torch

from telugu_codec.config import load_config
from telugu_codec.model.codec import Codec, build_codec

from .conftest import TINY_OVERRIDES


def tiny(*extra: str) -> Codec:
    """A tiny codec whose codebooks have been k-means initialised on noise."""
    codec = build_codec(load_config(None, TINY_OVERRIDES + list(extra)))
    codec.train()
    codec(torch.randn(2, 1, 3200) * 0.1)
    return codec.eval()


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("patch", [1, 2])
def test_output_length_equals_input_length(causal, patch):
    codec = tiny(f"model.causal={causal}", f"model.patch_size={patch}").eval()
    for t in (1, 7, 319, 320, 321, 1000, 3201):
        with torch.no_grad():
            out = codec(torch.randn(2, 1, t) * 0.1)
        assert out.audio.shape == (2, 1, t)
        assert out.codes.shape[-1] == -(-t // codec.hop_length)


def test_causal_model_does_not_look_ahead():
    codec = tiny("model.causal=true", "model.normalize=false").eval()
    x = torch.randn(1, 1, 3200) * 0.1
    y = x.clone()
    y[..., 2000:] += torch.randn(1, 1, 1200)  # change only the future
    with torch.no_grad():
        a, b = codec(x).audio, codec(y).audio
    # with hop 320, samples before the frame containing 2000 must be identical
    cut = (2000 // codec.hop_length) * codec.hop_length
    assert torch.allclose(a[..., :cut], b[..., :cut], atol=1e-6)
    assert not torch.allclose(a[..., 2000:], b[..., 2000:])


def test_non_causal_model_does_look_ahead():
    codec = tiny("model.normalize=false").eval()
    x = torch.randn(1, 1, 3200) * 0.1
    y = x.clone()
    y[..., 2000:] += torch.randn(1, 1, 1200)
    with torch.no_grad():
        a, b = codec(x).audio, codec(y).audio
    assert not torch.allclose(a[..., 1500:2000], b[..., 1500:2000])


def test_features_are_returned_per_stage():
    codec = tiny()
    out = codec(torch.randn(1, 1, 640), return_features=True)
    assert len(out.encoder_features) == len(codec.cfg.strides)
    assert len(out.decoder_features) == len(codec.cfg.strides)
    assert out.encoder_features[-1].shape[-1] == 640 // codec.hop_length


def test_bitrate_arithmetic():
    codec = build_codec(load_config("default"))
    assert codec.frame_rate == 50
    assert [codec.n_q_for_bitrate(k) for k in (1.5, 3, 6)] == [3, 6, 12]
    assert codec.bitrate(12) == 6000


def test_loudness_is_restored_end_to_end():
    # with an identity-like path the decoder output is scaled back by the same gain
    codec = tiny("model.output_gain=0.5")
    quiet = torch.randn(1, 1, 1600) * 0.01
    loud = quiet * 10
    with torch.no_grad():
        a, b = codec.eval()(quiet).audio, codec(loud).audio
    # normalisation makes the decoder see the same input, so outputs differ by the gain
    assert torch.allclose(b, a * 10, rtol=1e-3, atol=1e-6)


def test_api_roundtrip_and_inference_mode(tmp_path):
    codec = tiny()
    path = codec.save(tmp_path)
    loaded = Codec.load(tmp_path)
    assert loaded.model_hash == codec.model_hash
    wav = torch.randn(2, 2000).numpy() * 0.1  # stereo, 2000 samples at 8 kHz
    with torch.inference_mode():
        enc = loaded.encode(wav, 8000, n_q=2)
        out = loaded.decode(enc)
    assert enc.codes.shape == (2, -(-4000 // 320))
    assert out.shape == (4000,)
    assert torch.isfinite(out).all()
    assert path.name == "codec.safetensors"


def test_remove_weight_norm_keeps_outputs():
    codec = tiny().eval()
    x = torch.randn(1, 1, 960) * 0.1
    with torch.no_grad():
        a = codec(x).audio
        h = codec.model_hash
        codec.remove_weight_norm()
        b = codec(x).audio
    assert torch.allclose(a, b, atol=1e-5)
    assert codec.model_hash == h


def test_mismatched_checkpoint_is_a_clear_error(tmp_path):
    from telugu_codec.checkpoint import load_tensors, save_tensors
    from telugu_codec.errors import CheckpointError

    path = tiny().save(tmp_path)
    tensors, meta = load_tensors(path)
    tensors.pop(next(iter(tensors)))
    save_tensors(path, tensors, meta)
    with pytest.raises(CheckpointError, match="does not match"):
        Codec.load(path)
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(CheckpointError):
        Codec.load(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="not found"):
        Codec.load(tmp_path / "missing")


def test_inference_fast_path_matches_training_path():
    codec = tiny().eval()
    x = torch.randn(1, 1, 4000) * 0.1
    with torch.no_grad():
        ref = codec(x).audio
    codec.remove_weight_norm()
    with torch.inference_mode():
        codes, gain = codec.encode_codes(x)
        fast = codec.decode_codes(codes, x.shape[-1], gain)
    assert torch.allclose(fast, ref, atol=1e-5)


def test_snake_backward_matches_autograd_of_its_formula():
    """The hand-written Snake backward (`_SnakeFn`) against autograd through the plain
    expression, in float64: values and both gradients, and torch's numerical gradcheck."""
    from telugu_codec.nn.activations import snake

    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 50, dtype=torch.float64, generator=gen).mul(3).requires_grad_()
    alpha = (torch.rand(1, 3, 1, dtype=torch.float64, generator=gen) + 0.2).requires_grad_()
    grad = torch.randn(2, 3, 50, dtype=torch.float64, generator=gen)

    def formula(x, a):
        return x + (a + 1e-9).reciprocal() * torch.sin(a * x).pow(2)

    got = snake(x, alpha)
    want = formula(x, alpha)
    assert got.grad_fn is not None and "SnakeFn" in type(got.grad_fn).__name__
    assert torch.allclose(got, want, atol=1e-12)
    for a, b in zip(
        torch.autograd.grad(got, (x, alpha), grad), torch.autograd.grad(want, (x, alpha), grad)
    ):
        # the formula's 1e-9 guard scales dy/dx by alpha / (alpha + 1e-9): 1e-8 apart at most
        assert torch.allclose(a, b, rtol=1e-7, atol=1e-8)
    assert torch.autograd.gradcheck(snake, (x[:, :, :8].detach().requires_grad_(), alpha))
    # only x needs a gradient (a frozen alpha): still correct
    x2 = x.detach().requires_grad_()
    (g,) = torch.autograd.grad(snake(x2, alpha.detach()), (x2,), grad)
    (w,) = torch.autograd.grad(formula(x2, alpha.detach()), (x2,), grad)
    assert torch.allclose(g, w, rtol=1e-7, atol=1e-8)
