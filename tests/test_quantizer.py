"""Quantizer invariants for the three kinds (EMA RVQ, DAC factorised, FSQ)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import soundfile as sf
import torch

from telugu_codec.config import QuantizerConfig, load_config
from telugu_codec.errors import ConfigError
from telugu_codec.model.codec import build_codec
from telugu_codec.model.quantizer import (
    EMACodebook,
    FactorizedCodebook,
    ResidualVectorQuantizer,
    build_quantizer,
    kmeans,
)
from telugu_codec.model.quantizer.base import distinct_fraction
from telugu_codec.model.quantizer.fsq import round_ste

KINDS = ("ema", "factorized", "fsq")
DEMO = Path(__file__).resolve().parents[1] / "data" / "demo-te" / "train"


def make_q(kind: str = "ema", **kw):
    base = {"kind": kind, "n_q": 4, "codebook_size": 32, "kmeans_iters": 3, "init_vectors": 1.0}
    if kind == "fsq":
        base["fsq_levels"] = (4, 4, 2)
    return build_quantizer(8, QuantizerConfig(**(base | kw)))


def warm(q, x: torch.Tensor, steps: int = 3) -> None:
    """Train-mode passes (k-means init for EMA, which gathers >= K vectors first)."""
    q.train()
    for _ in range(steps):
        q(x)


@pytest.mark.parametrize("kind", KINDS)
def test_codes_decode_to_quantized_latents_at_every_n_q(kind):
    q = make_q(kind, dropout=0.0)
    x = torch.randn(3, 8, 20)
    warm(q, x)
    q.eval()
    for n in range(1, 5):
        out = q(x, n_q=n)
        assert out.codes.shape == (3, n, 20)
        assert torch.allclose(q.decode(out.codes), out.quantized, atol=1e-5)
        assert torch.equal(q.encode(x, n_q=n), out.codes)
        assert int(out.codes.min()) >= 0 and int(out.codes.max()) < q.num_codes[0]


def test_more_codebooks_reduce_error():
    q = make_q(dropout=0.0)
    x = torch.randn(4, 8, 50)
    warm(q, x)
    q.eval()
    errs = [float((q(x, n_q=n).quantized - x).pow(2).mean()) for n in (1, 2, 4)]
    assert errs[0] > errs[1] > errs[2]


def test_ema_straight_through_gradient_is_exactly_one():
    q = make_q()
    x = torch.randn(2, 8, 20, requires_grad=True)
    warm(q, x.detach())
    out = q(x)
    w = torch.randn_like(out.quantized)
    (out.quantized * w).sum().backward()
    assert torch.equal(x.grad, w)


def test_fsq_rounding_is_straight_through():
    z = torch.randn(50, 4, requires_grad=True)
    r = round_ste(z * 3)
    assert torch.equal(r.detach(), torch.round(z.detach() * 3))
    w = torch.randn_like(r)
    (r * w).sum().backward()
    assert torch.allclose(z.grad, 3 * w)  # only the x3 scaling, the rounding passes it as is


def test_fsq_bound_gives_exactly_levels_values():
    q = make_q("fsq", fsq_levels=(8, 5, 2), codebook_size=128)
    stage = q.stages[0]
    z = torch.linspace(-30, 30, 20001)[:, None].repeat(1, 3)
    r = torch.round(stage.bound(z))
    for i, lv in enumerate((8, 5, 2)):
        assert len(torch.unique(r[:, i])) == lv
    assert stage.num_codes == 80


def test_fsq_first_training_step_scales_the_projection_to_use_the_levels():
    """A small latent (and every later stage's smaller residual) used to round to a handful of
    codes: 1 % of 1000 in every stage on `tiny`. The first training step now scales each
    stage's input projection so its outputs spread over the levels."""
    x = 0.01 * torch.randn(4, 8, 200)  # a quiet latent
    fresh = make_q("fsq", fsq_levels=(8, 5, 5, 5), codebook_size=1024, dropout=0.0).eval()
    before = [len(torch.unique(c)) for c in fresh.encode(x).transpose(0, 1).reshape(4, -1)]
    q = make_q("fsq", fsq_levels=(8, 5, 5, 5), codebook_size=1024, dropout=0.0)
    q.load_state_dict(fresh.state_dict())
    warm(q, x, steps=1)
    assert all(bool(s.inited) for s in q.stages)
    q.eval()
    after = [len(torch.unique(c)) for c in q.encode(x).transpose(0, 1).reshape(4, -1)]
    assert max(before) <= 20, before
    assert min(after) >= 200, after  # of 800 vectors, over the 1000 codes
    state = {k: v.clone() for k, v in q.state_dict().items()}
    warm(q, 100 * x, steps=1)  # once only: a later batch does not rescale
    assert all(torch.equal(state[k], v) for k, v in q.state_dict().items())


def test_fsq_loss_pulls_saturated_values_back_into_range():
    """The latent ran away to ~1e6 (tanh flat, one code per stage); the stage loss is zero in
    range and its gradient points back toward it beyond."""
    q = make_q("fsq", fsq_levels=(8, 5, 5, 5), codebook_size=1024, dropout=0.0)
    warm(q, torch.randn(2, 8, 100), steps=1)
    calm = q(torch.randn(2, 8, 100))
    x = (50 * torch.randn(2, 8, 100)).requires_grad_()
    out = q(x)
    assert float(calm.commit_loss) < 0.05 < float(out.commit_loss)
    out.commit_loss.backward()
    step = x - 1e-3 * x.grad
    assert float(q(step).commit_loss) < float(out.commit_loss)


def test_factorized_lookup_is_straight_through():
    q = make_q("factorized")
    stage: FactorizedCodebook = q.stages[0]
    z = torch.randn(30, 8, requires_grad=True)
    stage.proj_in = torch.nn.Identity()  # expose the projected vectors
    stage.proj_out = torch.nn.Identity()
    out = stage.quantize(torch.zeros(30, 8), None)  # proj_in ignores its input below
    del out
    x = z
    codes = stage.search(x.detach())
    e = torch.nn.functional.embedding(codes, stage.codebook)
    so = stage.quantize(x, None)
    assert torch.allclose(so.out, e)
    w = torch.randn_like(so.out)
    (so.out * w).sum().backward()
    assert torch.equal(z.grad, w)


def test_factorized_losses_train_codebook_and_input():
    q = make_q("factorized")
    q.train()
    x = torch.randn(2, 8, 10, requires_grad=True)
    out = q(x)
    out.commit_loss.backward()
    assert x.grad.abs().sum() > 0
    assert all(s.codebook.grad.abs().sum() > 0 for s in q.stages)


def test_commitment_loss_gradient_reaches_input_only():
    q = make_q()
    x = torch.randn(2, 8, 20, requires_grad=True)
    warm(q, x.detach())
    out = q(x)
    out.commit_loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not b.requires_grad for b in q.buffers())


def test_ema_moves_codewords_toward_assigned_vectors():
    cfg = QuantizerConfig(codebook_size=4, kmeans_init=False, decay=0.5, dead_code_window=0)
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


def test_dead_codes_are_reseeded_from_the_buffer_of_recent_vectors():
    cfg = QuantizerConfig(codebook_size=8, kmeans_init=False, dead_code_window=1.0, replace_every=1)
    cb = EMACodebook(3, cfg)
    cb.embed.zero_()
    cb.embed[0] = 100.0  # code 0 sits on the data; codes 1..7 never get chosen
    old = torch.randn(10, 3) + 100.0
    mask = torch.ones(5, dtype=torch.bool)
    # nothing is dead before 1 x K = 8 vectors went by without a code; then 7 are re-seeded
    assert cb.quantize(old[:5], mask).replaced == 0
    assert cb.quantize(old[5:], mask).replaced == 7
    d = torch.cdist(cb.embed[1:], old).min(dim=1).values
    assert torch.all(d < 1e-5)  # each re-seeded codeword is one of the buffered vectors


def test_kmeans_init_waits_for_enough_vectors_then_inits_every_stage():
    q = make_q(init_vectors=4.0)  # 4 x 32 = 128 vectors
    q.train()
    x = torch.randn(2, 8, 40)  # 80 vectors a step
    out = q(x)
    assert out.warming_up and not any(bool(s.inited) for s in q.stages)
    assert torch.equal(out.quantized, x)  # passed through while gathering
    out = q(x)
    assert not out.warming_up and all(bool(s.inited) for s in q.stages)
    assert q.stages[0].embed.abs().max() < x.abs().max() + 1e-4


def test_kmeans_plus_plus_gives_distinct_centroids_where_random_seeding_did_not():
    torch.manual_seed(0)
    x = torch.randn(4096, 16)
    centroids, counts = kmeans(x, 1024, 3)
    assert distinct_fraction(centroids) >= 0.99
    assert int(counts.sum()) == 4096
    # the old initialisation: one ~200-vector batch sampled with replacement
    batch = torch.randn(200, 16)
    old = batch[torch.randint(0, 200, (1024,))]
    assert distinct_fraction(old) < 0.3


@pytest.mark.slow
def test_kmeans_on_demo_corpus_latents_gives_distinct_centroids():
    cfg = load_config("tiny")
    codec = build_codec(cfg).eval()
    files = sorted(DEMO.glob("*.flac"))[:40]
    latents = []
    with torch.no_grad():
        for f in files:
            wav, _ = sf.read(f, dtype="float32")
            x = torch.from_numpy(wav).view(1, 1, -1)
            x, _ = codec._normalize(x)
            z = codec.encoder(codec._pad(x))  # (1, D, F)
            latents.append(z[0].t())
    z = torch.cat(latents)
    k = cfg.model.quantizer.codebook_size
    assert z.shape[0] >= 4 * k
    centroids, _ = kmeans(z[: 4 * k], k, cfg.model.quantizer.kmeans_iters)
    assert distinct_fraction(centroids) >= 0.95


def test_stationary_mixture_at_cpu_batch_size_keeps_codes_alive():
    """~200 vectors a step for 1024 codes: after 300 steps < 1 % replaced per step, > 80 % used."""
    torch.manual_seed(0)
    k, d = 1024, 16
    cfg = QuantizerConfig(n_q=1, codebook_size=k, dropout=0.0, kmeans_iters=5)
    q = ResidualVectorQuantizer(d, cfg).train()
    centers = torch.randn(2048, d) * 3

    def batch() -> torch.Tensor:
        idx = torch.randint(0, centers.shape[0], (200,))
        return (centers[idx] + 0.3 * torch.randn(200, d)).t().reshape(1, d, 200)

    replaced, used = [], torch.zeros(k, dtype=torch.bool)
    for step in range(350):
        out = q(batch())
        if step >= 300:
            replaced.append(int(out.replaced.sum()))
            used[out.codes.view(-1)] = True
    assert sum(replaced) / len(replaced) < 0.01 * k
    assert float(used.float().mean()) > 0.8


@pytest.mark.parametrize("kind", KINDS)
def test_codes_under_bf16_autocast_equal_the_fp32_search(kind):
    torch.manual_seed(0)
    q = build_quantizer(
        64, QuantizerConfig(kind=kind, n_q=6, codebook_size=1024, dropout=0.0, init_vectors=1.0)
    )
    x = torch.randn(4, 64, 300)
    warm(q, x, steps=1)
    q.eval()
    with torch.no_grad():
        ref = q.encode(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = q(x.bfloat16())
            enc = q.encode(x.bfloat16())
        ref16 = q.encode(x.bfloat16().float())
    assert torch.equal(out.codes, ref16)
    assert torch.equal(enc, ref16)
    assert ref.shape == ref16.shape


@pytest.mark.parametrize("kind", KINDS)
def test_quantizer_dropout_uses_a_prefix_of_stages(kind):
    torch.manual_seed(1)
    q = make_q(kind, dropout=1.0)
    x = torch.randn(16, 8, 5)
    warm(q, x)
    q.eval()
    with torch.no_grad():
        full = [q.decode(q.encode(x, n_q=n)) for n in range(1, 5)]
    q.train()
    out = q(x)
    for b in range(16):
        errs = [float((out.quantized[b].detach() - f[b]).abs().max()) for f in full]
        assert min(errs) < 1e-4
    used = {
        min(range(4), key=lambda n: float((out.quantized[b].detach() - full[n][b]).abs().max()))
        for b in range(16)
    }
    assert len(used) > 1  # dropout really varied the depth


@pytest.mark.parametrize("kind", KINDS)
def test_perplexity_and_usage_bounds(kind):
    q = make_q(kind)
    warm(q, torch.randn(4, 8, 30))
    out = q(torch.randn(4, 8, 30))
    assert torch.all(out.perplexity >= 1.0 - 1e-5)
    assert torch.all(out.perplexity <= q.num_codes[0] + 1e-3)
    assert torch.all((out.usage > 0) & (out.usage <= 1))


def test_bad_n_q_and_kind_raise():
    q = make_q()
    with pytest.raises(ValueError):
        q.encode(torch.randn(1, 8, 3), n_q=5)
    with pytest.raises(ConfigError, match="kind"):
        build_quantizer(8, QuantizerConfig(kind="nope"))
    with pytest.raises(ConfigError, match="fsq_levels"):
        build_quantizer(8, QuantizerConfig(kind="fsq", fsq_levels=(8, 1)))
    with pytest.raises(ConfigError, match="codebook_size"):
        build_quantizer(8, QuantizerConfig(kind="fsq", codebook_size=64, fsq_levels=(8, 8, 8)))


def test_a_code_that_dies_again_after_reseeding_waits_longer():
    """Backoff: a re-seeded code that is not chosen again gets `reseed_backoff` x the window
    before its next re-seed (a fixed window re-seeded stranded codes in waves, forever)."""
    from telugu_codec.model.quantizer.codebook_upkeep import CodebookUpkeep

    def steps_until_dead(up: CodebookUpkeep) -> int:
        counts = torch.zeros(8)
        counts[0] = 4.0  # 4 vectors a step, all on code 0: codes 1..7 are never chosen
        for step in range(1, 200):
            up.observe(torch.randn(4, 3), counts)
            if bool(up.dead_mask()[1]):
                up.mark_replaced(up.dead_mask())
                return step
        return -1

    for backoff, expected in ((4.0, [3, 9, 33, 129, 129]), (1.0, [3, 3, 3, 3, 3])):
        cfg = QuantizerConfig(codebook_size=8, dead_code_window=1.0, reseed_backoff=backoff)
        up = CodebookUpkeep(3, cfg)
        # window 1 x K = 8 vectors: dead after 3 steps of 4; then 4x, 16x, 64x (at most 3x)
        assert [steps_until_dead(up) for _ in range(5)] == expected
    assert not bool(up.dead_mask()[0])  # the code in use is never dead


def test_training_state_round_trip_restores_the_buffers():
    q = make_q(init_vectors=1.0)
    warm(q, torch.randn(2, 8, 30))
    state = q.training_state()
    assert state and all(isinstance(v, torch.Tensor) for v in state.values())
    other = make_q(init_vectors=1.0)
    other.load_state_dict(q.state_dict())
    other.load_training_state(state)
    for a, b in zip(q.stages, other.stages):
        assert torch.equal(a.upkeep.contents(), b.upkeep.contents())
        assert (a.upkeep.pos, a.upkeep.fill) == (b.upkeep.pos, b.upkeep.fill)
        assert torch.equal(a.upkeep.strikes, b.upkeep.strikes)


@pytest.mark.parametrize("kind", ("factorized", "fsq"))
def test_codec_round_trips_codes_through_the_bitstream(kind, tmp_path):
    from telugu_codec.bitstream import read_tcc, write_tcc

    from .conftest import TINY_OVERRIDES, speechlike

    cfg = load_config(None, [*TINY_OVERRIDES, f"model.quantizer.kind={kind}"])
    codec = build_codec(cfg).eval()
    wav = speechlike(0.5)
    for n in range(1, codec.max_n_q + 1):
        enc = codec.encode(wav, 16000, n_q=n)
        write_tcc(tmp_path / f"{n}.tcc", enc)
        back = read_tcc(tmp_path / f"{n}.tcc")
        assert torch.equal(torch.as_tensor(back.codes), torch.as_tensor(enc.codes))
        assert torch.equal(codec.decode(back), codec.decode(enc))
    assert math.isfinite(float(codec.decode(enc).abs().max()))


@pytest.mark.slow
def test_tiny_recipe_codebooks_stay_distinct_and_settle(tmp_path):
    """150 steps of the `tiny` recipe on the demo corpus (~200 latent vectors a step): >= 90 %
    of every codebook's codewords distinct; then, with the encoder frozen, fewer than 10 % of
    the codewords move by more than half a codeword's norm within 50 steps."""
    from telugu_codec.train.trainer import Trainer

    torch.set_num_threads(2)
    cfg = load_config("tiny", ["train.val_every=100000", "train.ckpt_every=100000"])
    t = Trainer(
        cfg,
        tmp_path / "run",
        DEMO,
        val_data=DEMO.parent / "val",
        progress=False,
        tensorboard=False,
        log=lambda _m: None,
    )
    t.train(150)
    q = t.codec.quantizer
    assert all(bool(s.inited) for s in q.stages)
    distinct = q.distinct()
    assert min(distinct) >= 0.9, distinct
    before = [s.embed.clone() for s in q.stages]
    t.codec.encoder.requires_grad_(False)
    t.train(200)
    for i, (s, old) in enumerate(zip(q.stages, before)):
        moved = (s.embed - old).norm(dim=1) > 0.5 * old.norm(dim=1)
        assert float(moved.float().mean()) < 0.1, (i, float(moved.float().mean()))
