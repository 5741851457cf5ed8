"""Convolutions that keep lengths exact, causal or centred, with optional weight norm.

Length rules (T a multiple of the stride):
- `Conv1d(stride=s)` maps T -> T / s;
- `ConvTranspose1d(stride=s)` maps T -> T * s.
Causal padding puts all of a kernel's reach in the past, so output frame t never depends on
input after t (tested in tests/test_model.py).

Without autograd (inference) both layers run the fixed-order kernels of nn/fixed_order.py, so
an output sample has the same bits whatever the batch size or the length of the call (a conv
with at most a few output channels as one GEMM plus shifted adds, the transposed conv as a
sub-pixel convolution). Training runs the plain PyTorch modules.

Causal layers stream (nn/streaming.py): inside `streaming(model)` a layer keeps the last input
samples of each call as the left context of the next, in place of the zero padding, so a
stream of chunks gives the bits of the offline forward. A Conv1d keeps (K - 1) * dilation -
(stride - 1) samples; a ConvTranspose1d, run as its sub-pixel convolution over input frames,
keeps ceil(K / stride) - 1 frames. A call's length must be a multiple of the stride.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import weight_norm as _weight_norm

from ..errors import CodecError
from . import fixed_order
from .streaming import StreamingModule

# Up to this many output channels (the decoder's last conv: 1 or patch_size outputs) the conv
# runs as one GEMM plus shifted adds (fixed_order.few_outputs_conv1d), 4-5x faster on CPU.
_FEW_OUT_CHANNELS = 4


def _maybe_wn(module: nn.Module, use: bool) -> nn.Module:
    return _weight_norm(module) if use else module


def _training(x: torch.Tensor, conv: nn.Module) -> bool:
    return torch.is_grad_enabled() and (x.requires_grad or conv.training)


class Conv1d(StreamingModule):
    """`nn.Conv1d` with "same"-style padding (causal or centred).

    Input (B, C_in, T) with T divisible by `stride` -> output (B, C_out, T // stride).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        groups: int = 1,
        causal: bool = False,
        weight_norm: bool = True,
        pad_mode: str = "constant",
    ):
        super().__init__()
        # receptive field minus the stride: what must be padded so that T -> T / stride
        total = (kernel_size - 1) * dilation - (stride - 1)
        self.padding_total = total
        self.causal = causal
        self.pad_mode = pad_mode
        # Centred zero padding that splits evenly is left to the convolution itself, which
        # saves a padded copy of the input (same outputs); causal or uneven padding uses F.pad.
        self.builtin_padding = (
            total > 0 and not causal and total % 2 == 0 and pad_mode == "constant"
        )
        padding = total // 2 if self.builtin_padding else 0
        self.conv = _maybe_wn(
            nn.Conv1d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups),
            weight_norm,
        )

    def stream_context(self) -> int:
        if not self.causal:
            raise CodecError("only causal models stream with state; this conv is centred")
        return max(self.padding_total, 0)

    def stream_channels(self) -> int:
        return self.conv.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.padding_total
        left = total if self.causal else total // 2
        conv = self.conv
        if _training(x, conv):
            if total > 0 and not self.builtin_padding:
                x = F.pad(x, (left, total - left), mode=self.pad_mode)
            return conv(x)
        w, b, s, d = conv.weight, conv.bias, conv.stride[0], conv.dilation[0]
        few = (
            conv.out_channels <= _FEW_OUT_CHANNELS
            and s == 1
            and conv.groups == 1
            and self.pad_mode == "constant"
            and total >= 0
        )
        if self.stream_state is not None:  # the previous call's last samples, not zeros
            t = x.shape[-1]
            x = self.take_context(x)
            if few:  # the same kernel as offline, so the same sums: outputs [0, T) are valid
                return fixed_order.few_outputs_conv1d(x, w, b, d, 0)[..., :t]
            return fixed_order.conv1d(x, w, b, s, d, conv.groups)
        if few:
            return fixed_order.few_outputs_conv1d(x, w, b, d, left)
        if total > 0:
            x = F.pad(x, (left, total - left), mode=self.pad_mode)
        return fixed_order.conv1d(x, w, b, s, d, conv.groups)


class ConvTranspose1d(StreamingModule):
    """`nn.ConvTranspose1d` trimmed so that (B, C_in, T) -> (B, C_out, T * stride).

    At inference (no autograd) the same operator runs as a sub-pixel convolution: one ordinary
    convolution to `C_out * stride` channels whose outputs are interleaved in time. It computes
    the same sums (up to float rounding) and is 1.3-1.7x faster on CPU at high frame rates.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        causal: bool = False,
        weight_norm: bool = True,
    ):
        super().__init__()
        self.causal = causal
        self.stride = stride
        self.kernel_size = kernel_size
        total = max(kernel_size - stride, 0)  # T * stride + total samples come out
        # Causal: the extra samples at the end would need future frames; drop them there.
        # Centred: the transposed conv's own `padding` trims `total // 2` from both ends (no
        # strided view left for the next layer); a slice drops the odd sample left at the end.
        self.left = 0 if causal else total // 2
        self.trim_right = total - (0 if causal else 2 * self.left)
        self.conv = _maybe_wn(
            nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride, padding=self.left),
            weight_norm,
        )
        self._subpixel_cache: tuple[tuple[int, ...], torch.Tensor, torch.Tensor] | None = None

    def stream_context(self) -> int:
        if not self.causal:
            raise CodecError("only causal models stream with state; this conv is centred")
        return -(-self.kernel_size // self.stride) - 1  # input frames the sub-pixel conv reads

    def stream_channels(self) -> int:
        return self.conv.in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _training(x, self.conv):
            y = self.conv(x)
            return y[..., : y.shape[-1] - self.trim_right] if self.trim_right else y
        return self._subpixel(x)

    def _subpixel_weights(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Transposed-conv weight (C_in, C_out, K) -> conv weight (C_out * s, C_in, ceil(K / s)).

        Output sample t * s + r takes tap j * s + r of the kernel from input frame t - j, so the
        taps of phase r form an ordinary convolution (flipped in j) whose output channel
        (c, r) is sample t * s + r of channel c.
        """
        w, b = self.conv.weight, self.conv.bias
        # cache only a plain weight (a parametrized one is rebuilt on every access); its version
        # counter moves with every in-place update (optimizer step, load_state_dict)
        plain = not (
            parametrize.is_parametrized(self.conv)
            or w.is_inference()
            or fixed_order.plain_kernels()
        )
        key = (w.data_ptr(), w._version, b.data_ptr(), b._version) if plain else None
        if plain and self._subpixel_cache is not None and self._subpixel_cache[0] == key:
            return self._subpixel_cache[1], self._subpixel_cache[2]
        c_in, c_out, k = w.shape
        s = self.stride
        m = -(-k // s)
        w = F.pad(w, (0, m * s - k)).view(c_in, c_out, m, s)  # tap j * s + r -> [j, r]
        w2 = w.permute(1, 3, 0, 2).flip(-1).reshape(c_out * s, c_in, m).contiguous()
        b2 = b.repeat_interleave(s)  # channel (c, r) gets the bias of channel c
        if plain:
            self._subpixel_cache = (key, w2, b2)
        return w2, b2

    def _subpixel(self, x: torch.Tensor) -> torch.Tensor:
        w2, b2 = self._subpixel_weights()
        s, m = self.stride, w2.shape[-1]
        b, _, t = x.shape
        if self.stream_state is not None:  # m - 1 frames of left context (causal: no crop)
            z = fixed_order.conv1d(self.take_context(x), w2, b2)  # (B, C_out * s, T)
            return z.view(b, -1, s, t).transpose(2, 3).reshape(b, -1, t * s)
        z = fixed_order.conv1d(F.pad(x, (m - 1, m - 1)), w2, b2)  # (B, C_out * s, T + m - 1)
        n = z.shape[-1]
        y = z.view(b, -1, s, n).transpose(2, 3).reshape(b, -1, n * s)  # (B, C_out, (T+m-1) s)
        return y[..., self.left : self.left + t * s]
