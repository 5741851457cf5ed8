from __future__ import annotations

import pytest
import torch

from telugu_codec.config import QuantizerConfig
from telugu_codec.model.quantizer import EMACodebook, ResidualVectorQuantizer


def make_rvq(**kw) -> ResidualVectorQuantizer:
    cfg = QuantizerConfig(**({"n_q": 4, "codebook_size": 32, "kmeans_iters": 3} | kw))
    return ResidualVectorQuantizer(8, cfg)


def test_codes_decode_to_quantized_latents():
    rvq = make_rvq(dropout=0.0)
    x = torch.randn(3, 8, 20)
    rvq.train()
    rvq(x)  # initialise codebooks
    rvq.eval()
    out = rvq(x)
    assert out.codes.shape == (3, 4, 20)
    assert torch.allclose(rvq.decode(out.codes), out.quantized, atol=1e-5)
    assert torch.equal(rvq.encode(x), out.codes)


def test_more_codebooks_reduce_error():
    rvq = make_rvq(dropout=0.0)
    x = torch.randn(4, 8, 50)
    rvq.train()
    for _ in range(3):
        rvq(x)
    rvq.eval()
    errs = [float((rvq(x, n_q=n).quantized - x).pow(2).mean()) for n in (1, 2, 4)]
    assert errs[0] > errs[1] > errs[2]


def test_straight_through_gradient_is_exactly_one():
    rvq = make_rvq()
    x = torch.randn(2, 8, 10, requires_grad=True)
    rvq.train()
    out = rvq(x)
    w = torch.randn_like(out.quantized)
    (out.quantized * w).sum().backward()
    assert torch.equal(x.grad, w)


def test_commitment_loss_gradient_reaches_input_only():
    rvq = make_rvq()
    x = torch.randn(2, 8, 10, requires_grad=True)
    rvq.train()
    out = rvq(x)
    out.commit_loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in rvq.buffers())


def test_ema_moves_codewords_toward_assigned_vectors():
    cfg = QuantizerConfig(codebook_size=4, kmeans_init=False, decay=0.5, dead_code_threshold=0)
    cb = EMACodebook(2, cfg)
    target = torch.tensor([[5.0, 5.0]])
    x = target.repeat(16, 1)
    codes = cb.assign(x)
    k = int(codes[0])
    before = (cb.embed[k] - target[0]).norm()
    for _ in range(5):
        cb.ema_update(x, codes)
    after = (cb.embed[k] - target[0]).norm()
    assert after < before * 0.5


def test_dead_codes_are_replaced_from_the_batch():
    cfg = QuantizerConfig(codebook_size=8, kmeans_init=False, dead_code_threshold=2.0)
    cb = EMACodebook(3, cfg)
    cb.cluster_size.zero_()
    cb.cluster_size[0] = 10.0  # only code 0 is alive
    x = torch.randn(50, 3) + 100.0  # far from all current codewords
    n = cb.replace_dead(x)
    assert n == 7
    replaced = cb.embed[1:]
    # each re-seeded codeword is one of the batch vectors
    d = torch.cdist(replaced, x).min(dim=1).values
    assert torch.all(d < 1e-5)


def test_kmeans_init_happens_on_first_training_batch():
    rvq = make_rvq()
    assert not bool(rvq.codebooks[0].inited)
    rvq.train()
    x = torch.randn(2, 8, 40)
    rvq(x)
    assert all(bool(cb.inited) for cb in rvq.codebooks)
    # codewords now lie in the data's range
    assert rvq.codebooks[0].embed.abs().max() < x.abs().max() + 1e-4


def test_quantizer_dropout_uses_a_prefix_of_codebooks():
    torch.manual_seed(1)
    rvq = make_rvq(dropout=1.0)
    rvq.train()
    x = torch.randn(16, 8, 5)
    rvq(x)  # init
    rvq.eval()
    full = [rvq.decode(rvq.encode(x, n_q=n)) for n in range(1, 5)]
    rvq.train()
    out = rvq(x)
    # every item's quantized output equals the sum of its first n codebooks for some n
    for b in range(16):
        errs = [float((out.quantized[b] - f[b]).abs().max()) for f in full]
        assert min(errs) < 1e-4
    used = {
        min(range(4), key=lambda n: float((out.quantized[b] - full[n][b]).abs().max()))
        for b in range(16)
    }
    assert len(used) > 1  # dropout really varied the depth


def test_perplexity_and_usage_bounds():
    rvq = make_rvq()
    rvq.train()
    out = rvq(torch.randn(4, 8, 30))
    assert torch.all(out.perplexity >= 1.0 - 1e-5)
    assert torch.all(out.perplexity <= 32 + 1e-3)
    assert torch.all((out.usage > 0) & (out.usage <= 1))


def test_bad_n_q_raises():
    rvq = make_rvq()
    with pytest.raises(ValueError):
        rvq.encode(torch.randn(1, 8, 3), n_q=5)
