"""Convolutions whose every output sample is summed in one fixed order, whatever the shape.

Why: the same audio must give the same codes when it is encoded alone, in a padded batch or
20 ms at a time (issue 24). oneDNN's convolution picks its algorithm (and so its order of
summation) from the tensor shapes, so one output sample of `F.conv1d` changes in its last bits
with the batch size and with the length of the call (measured on torch 2.13 CPU, AVX2:
`benchmarks/bench_invariance.py`, BENCHMARKS.md). A matrix product `W @ cols` sums each
output column in the same order for any number of columns, with two exceptions measured there:
MKL's small-matrix path (fewer than 12 columns, or 4 rows in the transposed form) and
products with 2 or 3 rows order the sums differently. So:

- a convolution runs as im2col + one GEMM, W (C_out, K * C_in) @ cols (B, K * C_in, N), over
  time tiles of at most `TILE_VALUES / (K * C_in)` columns (memory stays bounded; the tile
  size does not change a column's sum) and never fewer than `MIN_COLUMNS` columns or
  `MIN_ROWS` rows (zero-padded, the extra ones dropped);
- a depthwise convolution (groups = channels) runs as K shifted multiply-adds, in tap order;
- `pad_rows` gives the quantizer's distance product the same guarantee (quantizer/base.py).

Elementwise maths (Snake's sin, gains) is the same per element at any position (measured).
Only the inference path uses these kernels; training keeps PyTorch's convolutions, whose
gradients they would not help.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_COLUMNS = 16  # MKL's sgemm takes its small-matrix path below 12 columns (measured)
MIN_ROWS = 4  # and with 2 or 3 rows its sums depend on the number of columns (measured)
TILE_VALUES = 1 << 22  # im2col values per tile (16 MB in fp32)


def plain_kernels() -> bool:
    """True while tracing for export (ONNX) or compiling: use PyTorch's own convolution, which
    exports as one Conv node with dynamic lengths."""
    return torch.jit.is_tracing() or torch.jit.is_scripting() or torch.compiler.is_compiling()


def _gemm(w2: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
    """(M, K) @ (B, K, N) -> (B, M, N), with N padded to MIN_COLUMNS and M to MIN_ROWS when
    smaller (zeros; the extra rows and columns are dropped)."""
    m, n = w2.shape[0], cols.shape[-1]
    if m < MIN_ROWS:
        w2 = F.pad(w2, (0, 0, 0, MIN_ROWS - m))
    if n < MIN_COLUMNS:
        cols = F.pad(cols, (0, MIN_COLUMNS - n))
    y = torch.matmul(w2, cols)
    return y[..., :m, :n] if (m < MIN_ROWS or n < MIN_COLUMNS) else y


def conv1d(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int = 1,
    dilation: int = 1,
    groups: int = 1,
) -> torch.Tensor:
    """`F.conv1d(x, weight, bias, stride, 0, dilation, groups)` (no padding) in a fixed order.

    Args:
        x: (B, C_in, T) input, already padded.
        weight: (C_out, C_in / groups, K).

    Returns:
        (B, C_out, (T - (K - 1) * dilation - 1) // stride + 1).
    """
    if plain_kernels():
        return F.conv1d(x, weight, bias, stride, 0, dilation, groups)
    c_out, c_in_g, k = weight.shape
    b, c_in, t = x.shape
    n = (t - (k - 1) * dilation - 1) // stride + 1
    if n <= 0:
        return x.new_zeros(b, c_out, 0)
    if groups == c_in == c_out and c_in_g == 1:
        return _depthwise(x, weight, bias, stride, dilation, n)
    if groups != 1:  # grouped but not depthwise: not used by the models; PyTorch's order
        return F.conv1d(x, weight, bias, stride, 0, dilation, groups)
    # (C_out, K * C_in), tap-major to match the stacked views below
    w2 = weight.permute(0, 2, 1).reshape(c_out, k * c_in)
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        w2, x = w2.to(dtype), x.to(dtype)
    w2 = w2.to(x.dtype)
    tile = max(MIN_COLUMNS, TILE_VALUES // (k * c_in))
    out = []
    for start in range(0, n, tile):
        m = min(tile, n - start)
        a = start * stride
        span = (m - 1) * stride + 1
        if k == 1 and stride == 1:
            cols = x[..., a : a + m]
        else:
            cols = torch.cat(
                [x[..., a + i * dilation : a + i * dilation + span : stride] for i in range(k)],
                dim=1,
            )  # (B, K * C_in, m)
        out.append(_gemm(w2, cols))
    y = out[0] if len(out) == 1 else torch.cat(out, dim=-1)
    if bias is not None:
        y = y + bias.to(y.dtype).view(1, c_out, 1)
    return y


def _depthwise(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    stride: int,
    dilation: int,
    n: int,
) -> torch.Tensor:
    """Depthwise conv as K shifted multiply-adds, tap 0 first: (B, C, T) -> (B, C, n)."""
    k = weight.shape[-1]
    w = weight[:, 0, :].to(x.dtype)  # (C, K)
    span = (n - 1) * stride + 1
    y = x[..., 0:span:stride] * w[None, :, 0, None]
    for i in range(1, k):
        a = i * dilation
        y = y + x[..., a : a + span : stride] * w[None, :, i, None]
    if bias is not None:
        y = y + bias.to(y.dtype).view(1, -1, 1)
    return y


def few_outputs_conv1d(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int, left: int
) -> torch.Tensor:
    """Stride-1 zero-padded convolution with few output channels, as a GEMM and shifted adds.

    oneDNN's convolution runs at a few GMAC/s with 1-4 output channels (the decoder's last
    conv); one GEMM plus K shifted adds is 4-5x faster on CPU, and its order is fixed too.

    Args:
        x: (B, C_in, T); weight: (C_out, C_in, K); left: zero padding before the signal (the
            rest of the (K - 1) * dilation padding goes after it).

    Returns:
        (B, C_out, T).
    """
    if plain_kernels():
        total = (weight.shape[-1] - 1) * dilation
        return F.conv1d(F.pad(x, (left, total - left)), weight, bias, 1, 0, dilation)
    c_out, c_in, k = weight.shape
    b, _, t = x.shape
    z = _gemm(weight.permute(2, 0, 1).reshape(k * c_out, c_in).to(x.dtype), x)
    z = z.view(b, k, c_out, t)  # (B, K, C_out, T)
    if bias is None:
        y = x.new_zeros(b, c_out, t)
    else:
        y = bias.to(x.dtype).view(1, c_out, 1).expand(b, c_out, t).clone()
    for i in range(k):  # y[t] += z_i[t + i * dilation - left]
        shift = i * dilation - left
        if abs(shift) >= t:
            continue
        if shift >= 0:
            y[..., : t - shift] += z[:, i, :, shift:]
        else:
            y[..., -shift:] += z[:, i, :, : t + shift]
    return y


def pad_rows(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(N, D) rows -> (max(N, MIN_COLUMNS), D) zero-padded rows and N: a product x @ W.T then
    sums each row in the same order for any N (see the module docstring)."""
    n = x.shape[0]
    if n >= MIN_COLUMNS or plain_kernels():  # no shape-dependent branch in an exported graph
        return x, n
    return F.pad(x, (0, 0, 0, MIN_COLUMNS - n)), n
