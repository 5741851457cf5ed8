"""Numerical precision of a training run: autocast's dtype, the fp16 loss scaler, TF32 and
cuDNN's autotuner.

``train.precision: auto`` is bf16 on a GPU that computes in bf16 natively (Ampere and newer),
fp16 with a loss scaler on older ones (V100, T4: they only emulate bf16, which is slower than
fp32), and fp32 on the CPU. What must stay fp32 under any of them (the decoder's output, the
quantizer's nearest-code search) is kept so by the model itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
AUTOCAST_DTYPES: dict[str, torch.dtype | None] = {
    "fp32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}


def resolve_precision(requested: str, device_type: str, bf16_native: bool) -> str:
    """The precision a run trains in.

    Args:
        requested: ``train.precision`` (auto | fp32 | bf16 | fp16).
        device_type: "cuda", "cpu", ...
        bf16_native: the device computes in bf16 natively (`native_bf16`).

    Returns:
        "fp32", "bf16" or "fp16": `requested` itself unless it is "auto".
    """
    if requested != "auto":
        return requested
    if device_type != "cuda":
        return "fp32"
    return "bf16" if bf16_native else "fp16"


def native_bf16(device: torch.device) -> bool:
    """True on a CUDA device with bf16 arithmetic in hardware (compute capability 8.0+).

    `torch.cuda.is_bf16_supported()` alone also says True where bf16 is only emulated.
    """
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    return torch.cuda.is_bf16_supported(including_emulation=False)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler | None:
    """A dynamic loss scaler for fp16 (its 5-bit exponent underflows small gradients); None
    for fp32 and bf16, whose exponent is fp32's."""
    return torch.amp.GradScaler(device.type) if precision == "fp16" else None


def configure_kernels(device: torch.device, tf32: bool, fixed_shapes: bool) -> None:
    """TF32 for the fp32 parts (``train.tf32``) and cuDNN's autotuner where every training
    batch has the same shape (fixed-length crops). CUDA only; the CPU has neither."""
    if device.type != "cuda":
        return
    if tf32:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = fixed_shapes


@contextmanager
def no_autotune() -> Iterator[None]:
    """cuDNN's autotuner off for a block of many shapes (validation on whole files): each new
    shape would otherwise be benchmarked once, for a single use."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
