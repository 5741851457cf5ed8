"""Precision hygiene (issue 22): what must stay fp32 under bf16 autocast stays fp32, Snake keeps
its input's dtype, the code search is true fp32 with TF32 on, and `precision: auto` picks
what the device can do (fp16 + a loss scaler where bf16 is only emulated)."""

from __future__ import annotations

import json

import pytest
import torch

from telugu_codec.config import QuantizerConfig, load_config
from telugu_codec.model.decoder import build_decoder
from telugu_codec.model.istft_decoder import ISTFTHead
from telugu_codec.model.quantizer import build_quantizer
from telugu_codec.model.quantizer import ema as ema_module
from telugu_codec.model.quantizer.factorized import FactorizedCodebook
from telugu_codec.nn.activations import Snake1d, snake
from telugu_codec.train.precision import (
    configure_kernels,
    native_bf16,
    no_autotune,
    resolve_precision,
)

from .conftest import TINY_OVERRIDES

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}


def _off_bf16_grid(y: torch.Tensor) -> bool:
    """True when some values of `y` are not bf16 numbers (a real fp32 computation)."""
    return bool((y.bfloat16().float() != y).any())


@pytest.mark.parametrize("kind", ["seanet", "istft"])
def test_decoder_output_is_fp32_under_bf16_autocast(kind):
    cfg = load_config(None, TINY_OVERRIDES + [f"model.decoder.kind={kind}"])
    dec = build_decoder(cfg.model).train()  # the training path (the GAN step's fakes)
    z = torch.randn(2, cfg.model.latent_dim, 6)
    with torch.no_grad():
        ref = dec(z)
    with torch.autocast(**BF16):
        y = dec(z)
    assert y.requires_grad and y.dtype == torch.float32
    assert _off_bf16_grid(y)  # computed in fp32, not a bf16 result cast up
    # the bf16 body is the only difference from an fp32 forward
    assert (y - ref).abs().max() < 0.1 * ref.abs().max()


def test_istft_head_projection_runs_in_fp32_under_autocast():
    torch.manual_seed(0)
    head = ISTFTHead(dim=16, n_fft=64, hop=16, max_log_magnitude=6.0)
    x = torch.randn(2, 16, 9)
    with torch.no_grad():
        ref = head(x, 8 * 16)
        with torch.autocast(**BF16):
            y = head(x, 8 * 16)
            y16 = head(x.bfloat16(), 8 * 16)  # bf16 frames from a bf16 backbone
        ref16 = head(x.bfloat16().float(), 8 * 16)
    assert y.dtype == y16.dtype == torch.float32
    torch.testing.assert_close(y, ref, rtol=0, atol=0)
    torch.testing.assert_close(y16, ref16, rtol=0, atol=0)


@pytest.mark.parametrize("grad", [True, False])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_snake_keeps_its_input_dtype(dtype, grad):
    torch.manual_seed(0)
    act = Snake1d(6)
    with torch.no_grad():
        act.alpha.uniform_(0.5, 2.0)
    x32 = torch.randn(2, 6, 50)
    x = x32.to(dtype).requires_grad_(grad)
    with torch.set_grad_enabled(grad), torch.autocast(**BF16):
        y = act(x)
    assert y.dtype == dtype
    ref = snake(x32, act.alpha.detach())
    tol = 0 if dtype == torch.float32 else 0.05
    torch.testing.assert_close(y.float(), ref, rtol=tol, atol=tol)
    if grad:  # alpha's gradient: fp32 like alpha, summed in fp32
        y.float().square().sum().backward()
        assert x.grad.dtype == dtype and act.alpha.grad.dtype == torch.float32
        alpha = act.alpha.detach().clone().requires_grad_(True)
        snake(x.detach().float(), alpha).square().sum().backward()
        if dtype == torch.float32:  # the same operations: identical
            assert torch.equal(act.alpha.grad, alpha.grad)
        else:  # bf16 elementwise arithmetic, so the same direction only
            cos = torch.nn.functional.cosine_similarity(
                act.alpha.grad.flatten(), alpha.grad.flatten(), dim=0
            )
            assert cos > 0.99


@pytest.fixture
def global_tf32():
    """What `train.tf32` does on a GPU: TF32 on for every fp32 matmul and convolution."""
    before = torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    yield
    torch.set_float32_matmul_precision(before[0])
    torch.backends.cudnn.allow_tf32 = before[1]


def _flags() -> tuple[str, bool]:
    return torch.get_float32_matmul_precision(), torch.backends.cudnn.allow_tf32


@pytest.mark.parametrize("kind", ["ema", "factorized"])
def test_code_search_runs_in_true_fp32_with_tf32_on(kind, global_tf32, monkeypatch):
    """The search sees TF32 off (the switches are read when a kernel runs; a CPU has no TF32,
    so the test records them there) and the global setting is back after it."""
    seen = []
    if kind == "ema":
        real = ema_module.squared_distances

        def spy(x, c):
            seen.append(_flags())
            return real(x, c)

        monkeypatch.setattr(ema_module, "squared_distances", spy)
    else:
        real = FactorizedCodebook.search

        def spy(self, z):
            seen.append(_flags())
            return real(self, z)

        monkeypatch.setattr(FactorizedCodebook, "search", spy)
    torch.manual_seed(0)
    q = build_quantizer(
        16, QuantizerConfig(kind=kind, n_q=3, codebook_size=32, dropout=0.0, init_vectors=1.0)
    )
    x = torch.randn(4, 16, 40)
    q.train()
    for _ in range(2):
        q(x)  # the k-means initialisation, then a quantizing pass
    with torch.autocast(**BF16):
        out = q(x.bfloat16())
        codes = q.encode(x.bfloat16())
    assert seen and all(s == ("highest", False) for s in seen), set(seen)
    assert _flags() == ("high", True)  # restored
    q.eval()
    ref = q.encode(x.bfloat16().float())
    assert torch.equal(codes, ref)
    assert out.codes.shape == ref.shape


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_code_search_on_cuda_ignores_global_tf32():
    torch.manual_seed(0)
    cfg = QuantizerConfig(n_q=8, codebook_size=1024, dropout=0.0, init_vectors=1.0)
    q = build_quantizer(64, cfg).cuda()
    x = torch.randn(8, 64, 400, device="cuda")
    q.train()
    q(x)
    q.eval()
    before = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        fp32 = q.encode(x)
        torch.set_float32_matmul_precision("high")  # train.tf32
        with torch.autocast("cuda", dtype=torch.bfloat16):
            tf32_on = q.encode(x)
    finally:
        torch.set_float32_matmul_precision(before)
    assert torch.equal(fp32, tf32_on)


def test_precision_auto_follows_the_device():
    assert resolve_precision("auto", "cuda", bf16_native=True) == "bf16"  # A100, H100, 4090
    assert resolve_precision("auto", "cuda", bf16_native=False) == "fp16"  # V100, T4
    assert resolve_precision("auto", "cpu", bf16_native=False) == "fp32"
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, "cuda", bf16_native=False) == explicit
    assert not native_bf16(torch.device("cpu"))


def test_emulated_bf16_is_not_native(monkeypatch):
    """A V100 or T4: `is_bf16_supported()` says True (emulation counts by default), but
    only `including_emulation=False` tells whether the hardware computes in bf16."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation
    )
    assert not native_bf16(torch.device("cuda"))
    assert resolve_precision("auto", "cuda", native_bf16(torch.device("cuda"))) == "fp16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert native_bf16(torch.device("cuda"))


def test_autotuner_on_for_fixed_crops_and_off_for_validation():
    before = torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32
    try:
        configure_kernels(torch.device("cpu"), tf32=True, fixed_shapes=True)  # CPU: untouched
        assert (torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32) == before
        configure_kernels(torch.device("cuda"), tf32=False, fixed_shapes=True)
        assert torch.backends.cudnn.benchmark
        with no_autotune():
            assert not torch.backends.cudnn.benchmark
        assert torch.backends.cudnn.benchmark
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32 = before


def test_fp16_with_a_loss_scaler_trains_and_an_overflow_is_not_a_nonfinite_step(
    tmp_path, monkeypatch
):
    """fp16 autocast on the CPU with a GradScaler per optimizer. The scale starts far too
    high: the first steps overflow, the scaler lowers the scale and the step is taken again;
    none of it counts as a non-finite step. The scales are saved with the checkpoint."""
    import soundfile as sf

    from .conftest import speechlike
    from .test_trainer import make_trainer

    data = tmp_path / "data"
    data.mkdir()
    for i in range(4):
        sf.write(data / f"u{i}.wav", speechlike(1.0, seed=i), 16000)
    t = make_trainer(
        tmp_path / "r",
        data,
        "train.precision=fp16",
        "train.d_warmup_steps=0",
        "train.ckpt_every=3",
        "train.max_nonfinite=2",
    )
    assert t.precision == "fp16" and t.gan.autocast_dtype == torch.float16
    assert t.gan.g_scaler is not None and t.gan.d_scaler is not None
    for name in ("g_scaler", "d_scaler"):  # 2^40: every gradient overflows in fp16 at first
        scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)
        setattr(t.gan, name, scaler)
        t.checkpoints.scalers[name[0]] = scaler
    before = {k: v.clone() for k, v in t.codec.state_dict().items()}
    result = t.train(3)
    assert result.reason == "max_steps" and result.step == 3
    assert t.state.nonfinite_total == 0
    assert not [e for e in result.events if e.get("event") == "nonfinite"]
    assert t.gan.g_scaler.get_scale() < 2.0**40 and t.gan.d_scaler.get_scale() < 2.0**40
    after = t.codec.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.isfinite(v.float()).all() for v in after.values())
    state = json.loads((tmp_path / "r/checkpoints/step_00000003/state.json").read_text())
    assert state["grad_scalers"]["g"]["scale"] == t.gan.g_scaler.get_scale()
