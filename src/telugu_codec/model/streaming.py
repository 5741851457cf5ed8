"""Chunk-by-chunk encoding and decoding: `codec.stream_encoder()` / `codec.stream_decoder()`.

    enc = codec.stream_encoder(n_q=3)
    dec = codec.stream_decoder()
    for chunk in chunks:                      # any sizes: 1, 7, 320, 4000 samples ...
        audio = dec.push(enc.push(chunk))     # codes as soon as frames complete, then audio
    audio = dec.push(enc.flush())             # the padded last frame; output has the exact length

A causal model streams exactly: every causal convolution keeps the last (K - 1) * dilation -
(stride - 1) input samples of the previous call as left context (weight norm folded once when
the stream starts); a causal transposed convolution runs as its sub-pixel convolution over
input frames (nn/conv.py), so its state is also a left context, of ceil(K / stride) - 1 frames;
Snake is pointwise and the quantizer is frame-local. Codes equal the offline `Codec.encode`,
audio equals `Codec.decode` up to float rounding, and a frame's codes come out as soon as its
last sample arrives: the algorithmic latency is one frame (hop / sample_rate), with nothing
added by the decoder or by `block` normalisation (model/loudness.py).

A non-causal model streams by overlapping windows: each window carries the receptive field
(measured with autograd on the model itself, `receptive_field`) as context on both sides, so
the frames it keeps equal offline ones up to float rounding; its latency is a frame plus the
right context. Its `clip` gain needs the whole signal: pass it (`gain=`) or it is 0 dB.

A causal model with the source-filter decoder (`streaming-sf`) mixes the two: the SEANet
encoder runs its stateful plan, with the causal pitch tracker fed the last frames of samples
as its window's context; the decoder (ConvNeXt + STFT source filter) decodes windows of one
frame by default, each with its left receptive field as context and no right context (the
decoder reads no latent or pitch frame ahead, `receptive_field` measures it), so it adds no
latency; the source phase and held f0 carry over in `StreamSource`.

The step functions (`StreamingPlan.step`) take and return their state as a flat list of
tensors, which is what ONNX export (model/export.py) needs.

Over 600 lines on purpose: the encoder and decoder streams share one idea, the per-layer state
plan of a codec (which tensors carry over between calls, and how many samples or frames), and
the windowed path for non-causal models reuses the same receptive-field arithmetic; split
across files, each half would import the other's private helpers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream import GAIN_STEP_DB
from ..errors import CodecError
from ..nn.activations import Snake1d, snake
from ..nn.conv import Conv1d, ConvTranspose1d
from .blocks import ResidualUnit
from .decoder import Decoder, DecoderBlock
from .encoder import Encoder, EncoderBlock

if TYPE_CHECKING:
    from .codec import Codec


@dataclass
class EncodedChunk:
    """What a stream encoder returns for one push (and what a stream decoder takes).

    Attributes:
        codes: (n_q, k) int64 codes of the k frames completed by this push (k may be 0).
        gains: (g,) int64 gain codes of the `block` gain blocks starting in these frames.
        first_frame: index of the first of these frames in the stream.
        final: the end of the stream (from `flush`).
        trim: (final only) samples of the last frame past the end of the signal.
        pitch: (k,) int64 pitch codes 0..255 of these frames (models with a pitch channel;
            None without one).
    """

    codes: np.ndarray
    gains: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    first_frame: int = 0
    final: bool = False
    trim: int = 0
    pitch: np.ndarray | None = None

    @property
    def frames(self) -> int:
        return int(self.codes.shape[1])


# ------------------------------------------------------------------------------------ plans
class _Op:
    """One layer of a streaming plan: y = f(x, state) with the state passed explicitly."""

    def init_states(self, device: torch.device) -> list[torch.Tensor]:
        return []

    def step(self, x: torch.Tensor, states: list[torch.Tensor], out: list[torch.Tensor]):
        raise NotImplementedError


class _ContextConv(_Op):
    """A causal convolution whose left padding is the previous call's last input samples.

    With `gemm` (eager streaming), short inputs run as one matrix product over the K shifted
    input views (im2col): PyTorch's CPU convolutions fall back to a slow generic kernel for
    the few samples of a 20 ms step (1 ms per dilated conv here), the product takes ~20 us.
    """

    GEMM_MAX_COLUMNS = 2048  # longer inputs use F.conv1d (oneDNN), which is fast there

    def __init__(
        self, weight, bias, stride: int, dilation: int, groups: int, context: int, gemm=True
    ):
        self.weight, self.bias = weight, bias
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.context = context  # input samples of left context
        c_out, c_in, k = weight.shape
        self.gemm = gemm and groups == 1
        # (C_out, K * C_in), tap-major to match the stacked views below
        self.w2 = weight.permute(0, 2, 1).reshape(c_out, k * c_in).contiguous()
        self.b2 = None if bias is None else bias.view(c_out, 1)

    def init_states(self, device):
        if self.context <= 0:
            return []
        return [torch.zeros(1, self.weight.shape[1] * self.groups, self.context, device=device)]

    def step(self, x, states, out):
        if self.context > 0:
            x = torch.cat([states.pop(0), x], dim=-1)
            out.append(x[..., x.shape[-1] - self.context :])
        k, d, s = self.weight.shape[-1], self.dilation, self.stride
        n = (x.shape[-1] - (k - 1) * d - 1) // s + 1  # output samples
        if not self.gemm or x.shape[0] != 1 or n > self.GEMM_MAX_COLUMNS:
            return F.conv1d(x, self.weight, self.bias, s, 0, d, self.groups)
        span = (n - 1) * s + 1
        if k == 1 and s == 1:
            cols = x[0]
        else:
            cols = torch.cat([x[0, :, i * d : i * d + span : s] for i in range(k)], dim=0)
        y = torch.matmul(self.w2, cols) if self.b2 is None else torch.addmm(self.b2, self.w2, cols)
        return y.unsqueeze(0)


class _PadConv(_Op):
    """A stateless convolution over a whole signal, zero-padded `left` / `right` (offline)."""

    def __init__(self, weight, bias, stride: int, dilation: int, groups: int, left: int, right):
        self.weight, self.bias = weight, bias
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.left, self.right = left, right

    def step(self, x, states, out):
        if self.left or self.right:
            x = F.pad(x, (self.left, self.right))
        return F.conv1d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class _SubPixelConvT(_Op):
    """A transposed convolution as a conv over frames + interleaving (nn/conv.py).

    Causal: a stateful conv with m - 1 frames of left context. Stateless (offline): zero
    padding of m - 1 frames on both sides, then the output cropped from `crop` on.
    """

    def __init__(
        self, weight, bias, stride_out: int, m: int, stateful: bool, crop: int, gemm: bool
    ):
        if stateful:
            self.conv: _Op = _ContextConv(weight, bias, 1, 1, 1, m - 1, gemm)
        else:
            self.conv = _PadConv(weight, bias, 1, 1, 1, m - 1, m - 1)
        self.stride_out, self.crop = stride_out, crop

    def init_states(self, device):
        return self.conv.init_states(device)

    def step(self, x, states, out):
        t = x.shape[-1]
        z = self.conv.step(x, states, out)  # (B, C_out * s, T')
        b, _, n = z.shape
        s = self.stride_out
        y = z.view(b, -1, s, n).transpose(2, 3).reshape(b, -1, n * s)
        return y if self.crop is None else y[..., self.crop : self.crop + t * s]


class _Snake(_Op):
    """Snake (nn/activations.py), with 1 / alpha computed once: the same values, 2 ops fewer."""

    def __init__(self, alpha: torch.Tensor):
        self.alpha = alpha
        self.inv_alpha = (alpha + 1e-9).reciprocal()

    def step(self, x, states, out):
        if torch.is_inference_mode_enabled():  # the in-place sequence of snake()
            y = torch.mul(self.alpha, x)
            y.sin_().pow_(2).mul_(self.inv_alpha)
            return y.add_(x)
        return snake(x, self.alpha)


class _Seq(_Op):
    def __init__(self, ops: list[_Op]):
        self.ops = ops

    def init_states(self, device):
        return [s for op in self.ops for s in op.init_states(device)]

    def step(self, x, states, out):
        for op in self.ops:
            x = op.step(x, states, out)
        return x


class _Residual(_Op):
    def __init__(self, op: _Op):
        self.op = op

    def init_states(self, device):
        return self.op.init_states(device)

    def step(self, x, states, out):
        return x + self.op.step(x, states, out)


def _compile(module: nn.Module, stateful: bool, gemm: bool = True) -> _Op:
    """The plan of a SEANet module (weights copied, weight norm folded).

    `stateful` (causal models only): convolutions keep their left context between calls.
    Otherwise the plan runs a whole signal with the module's own zero padding. `gemm`: short
    stateful steps run as matrix products (eager speed); False keeps plain convolutions
    (ONNX export).
    """
    if isinstance(module, Conv1d):
        c = module.conv
        w = c.weight.detach().clone()
        b = c.bias.detach().clone() if c.bias is not None else None
        args = (w, b, c.stride[0], c.dilation[0], c.groups)
        total = module.padding_total
        if stateful:
            if not module.causal:
                raise CodecError("only causal models stream with state; this conv is centred")
            return _ContextConv(*args, total, gemm)
        left = total if module.causal else total // 2
        return _PadConv(*args, max(left, 0), max(total - left, 0))
    if isinstance(module, ConvTranspose1d):
        if stateful and not module.causal:
            raise CodecError("only causal models stream with state; this conv is centred")
        w, b = module.conv.weight.detach(), module.conv.bias.detach()
        c_in, c_out, k = w.shape
        s = module.stride
        m = -(-k // s)
        w = F.pad(w, (0, m * s - k)).view(c_in, c_out, m, s)  # tap j * s + r -> [j, r]
        w2 = w.permute(1, 3, 0, 2).flip(-1).reshape(c_out * s, c_in, m).contiguous()
        crop = None if stateful else module.left
        return _SubPixelConvT(w2, b.repeat_interleave(s).clone(), s, m, stateful, crop, gemm)
    if isinstance(module, Snake1d):
        return _Snake(module.alpha.detach().clone())
    if isinstance(module, ResidualUnit):
        return _Residual(_compile(module.block, stateful, gemm))
    if isinstance(module, (EncoderBlock, DecoderBlock)):
        return _compile(module.block, stateful, gemm)
    if isinstance(module, nn.Sequential):
        return _Seq([_compile(m, stateful, gemm) for m in module])
    raise CodecError(f"no streaming rule for {type(module).__name__}")


class StreamingPlan:
    """The encoder or decoder of a codec as a step function with explicit state.

    `step(x, states) -> (y, new_states)`: the encoder maps (1, 1, k * hop) normalised samples to
    (1, D, k) latents, the decoder (1, D, k) latents to (1, 1, k * hop) samples (before the
    loudness gain is undone). With `stateful=False` it runs whole signals with no state (any
    model, e.g. for ONNX export), the same sums as the modules' forward.
    """

    def __init__(self, codec: Codec, part: str, stateful: bool = True, gemm: bool = True):
        self.part = part
        self.patch_size = codec.cfg.patch_size

        def c(m: nn.Module) -> _Op:
            return _compile(m, stateful, gemm)

        if part == "encoder":
            e = codec.encoder
            self.net = _Seq(
                [c(e.conv_in), *(c(b) for b in e.blocks), c(e.bottleneck), c(e.act_out)]
                + [c(e.conv_out)]
            )
        elif part == "decoder":
            d = codec.decoder
            self.net = _Seq(
                [c(d.conv_in), c(d.bottleneck), *(c(b) for b in d.blocks), c(d.act_out)]
                + [c(d.conv_out)]
            )
            self.tanh, self.output_gain = d.tanh, d.output_gain
        else:
            raise ValueError(part)

    def init_states(self, device: torch.device | str = "cpu") -> list[torch.Tensor]:
        return self.net.init_states(torch.device(device))

    def step(
        self, x: torch.Tensor, states: list[torch.Tensor]
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        states, out = list(states), []
        p = self.patch_size
        if self.part == "encoder":
            b, _, t = x.shape
            if p > 1:  # (B, 1, T) -> (B, p, T / p), as Encoder.forward
                x = x.reshape(b, t // p, p).transpose(1, 2)
            return self.net.step(x, states, out), out
        y = self.net.step(x, states, out)
        if p > 1:
            b, _, n = y.shape
            y = y.transpose(1, 2).reshape(b, 1, n * p)
        if self.tanh:
            y = torch.tanh(y)
        if self.output_gain != 1.0:
            y = y * self.output_gain
        return y, out


def _stateful_plan(codec: Codec, part: str) -> StreamingPlan | None:
    """The stateful plan of a causal SEANet encoder / decoder, or None (stream by windows)."""
    module = codec.encoder if part == "encoder" else codec.decoder
    if not codec.cfg.causal or not isinstance(module, (Encoder, Decoder)):
        return None  # a centred conv or an STFT / iSTFT model: overlapping windows
    return StreamingPlan(codec, part)


# ------------------------------------------------------------------------------------ reach
def receptive_field(codec: Codec) -> dict[str, int]:
    """Frames of context each side that one frame of the encoder / decoder depends on.

    Measured on the model with autograd (the support of the gradient of one output frame), so
    it holds for any layer stack. Returns `encoder_left`, `encoder_right` (frames of input
    audio before / after the frame's own hop) and `decoder_left`, `decoder_right` (latent
    frames before / after the frame). A pitch model's decoder also reads the pitch codes, which
    have no gradient: `decoder_right` covers the earliest audio a changed pitch frame moves
    (the source's look-ahead); the pitch's past reaches back without bound through the source
    phase, which a stream carries as state (source_filter_decoder.StreamSource).
    """
    hop = codec.hop_length
    device = next(codec.parameters()).device
    frames = 32
    while True:
        f = frames // 2
        with torch.enable_grad():
            x = (torch.randn(1, 1, frames * hop, device=device) * 0.1).requires_grad_()
            codec.encoder(x)[..., f].sum().backward()
            nz = torch.nonzero(x.grad[0, 0]).view(-1)
            z = torch.randn(1, codec.cfg.latent_dim, frames, device=device).requires_grad_()
            kw = {}
            if codec.has_pitch:  # the pitch channel reaches no further than the latents
                kw["pitch"] = torch.full((1, frames), 100, dtype=torch.long, device=device)
            codec.decoder(z, **kw)[..., f * hop : (f + 1) * hop].sum().backward()
            nzd = torch.nonzero(z.grad[0].abs().sum(0)).view(-1)
        first, last = int(nz.min()), int(nz.max())
        reach = {
            "encoder_left": -(-(f * hop - first) // hop),
            "encoder_right": -(-(last - ((f + 1) * hop - 1)) // hop),
            "decoder_left": f - int(nzd.min()),
            "decoder_right": int(nzd.max()) - f,
        }
        if codec.has_pitch:
            reach["decoder_right"] = max(reach["decoder_right"], _pitch_reach(codec, frames))
        if max(reach.values()) < f - 1:
            return {k: max(v, 0) for k, v in reach.items()}
        frames *= 2
        if frames > 4096:
            raise CodecError("receptive field too large to stream")


def _pitch_reach(codec: Codec, frames: int) -> int:
    """Latent frames ahead of its own that the decoder's audio reads the pitch codes: how far
    before pitch frame f the audio changes when that frame's code does."""
    hop, f = codec.hop_length, frames // 2
    device = next(codec.parameters()).device
    z = torch.randn(1, codec.cfg.latent_dim, frames, device=device)
    pitch = torch.full((1, frames), 100, dtype=torch.long, device=device)
    moved = pitch.clone()
    moved[0, f] = 160  # 92 Hz -> 148 Hz, voiced both times
    with torch.no_grad():
        a, b = codec.decoder(z, pitch=pitch)[0, 0], codec.decoder(z, pitch=moved)[0, 0]
    changed = torch.nonzero((a - b).abs() > 1e-6 * a.abs().max()).view(-1)
    return max(0, f - int(changed.min()) // hop) if changed.numel() else 0


# ------------------------------------------------------------------------------------ gains
class _Normalizer:
    """The encoder side of the loudness gain, applied causally to raw samples as they come."""

    def __init__(self, codec: Codec, gain: float | None):
        from ..bitstream import code_from_gain
        from .loudness import BlockGainState, gain_from_code

        self.kind = codec.normalization
        self.block = codec.block_gain
        self.gain_code = 0
        if self.kind == "clip" and gain is not None:
            self.gain_code = code_from_gain(float(gain))
        self.fixed = gain_from_code(self.gain_code).item() if self.kind == "clip" else 1.0
        if self.kind == "block":
            self.state = BlockGainState.initial(1)
            self.prev = self.state.code.clone()
            self.pos = 0  # samples into the current block
            self.block_index = 0
            self.raw: list[torch.Tensor] = []
            self.pending = {0: int(self.state.code)}  # block index -> code, not yet sent

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(n,) raw samples -> (n,) normalised samples."""
        if self.kind != "block":
            return x * self.fixed if self.fixed != 1.0 else x
        g, n, out = self.block, self.block.block_length, []
        while x.numel():
            m = min(x.numel(), n - self.pos)
            seg, x = x[:m], x[m:]
            curve = g.curve(self.state.code.view(1, 1), self.prev, self.pos, m)
            out.append(seg * curve.view(-1))
            self.raw.append(seg)
            self.pos += m
            if self.pos == n:  # block done: its power sets the next block's gain
                power = g.block_power(torch.cat(self.raw).view(1, -1))
                self.prev = self.state.code.clone()
                self.state = g.advance(self.state, power[:, 0])
                self.block_index += 1
                self.pending[self.block_index] = int(self.state.code)
                self.pos, self.raw = 0, []
        return torch.cat(out) if out else x

    def gains_for(self, first: int, n: int) -> np.ndarray:
        """Gain codes of the blocks starting in frames [first, first + n), removed from pending."""
        if self.kind != "block":
            return np.zeros(0, np.int64)
        b = self.block.block_frames
        idx = range(-(-first // b), -(-(first + n) // b))
        return np.array([self.pending.pop(i) for i in idx], dtype=np.int64)


class _Denormalizer:
    """The decoder side: the gain curve for output samples from the gain codes received."""

    def __init__(self, codec: Codec, normalization: str, gain: float, block_frames: int):
        import dataclasses

        from .loudness import BlockGain

        self.kind = normalization
        self.fixed = float(gain) if normalization == "clip" else 1.0
        self.max_db = codec.cfg.max_gain_db + GAIN_STEP_DB
        if not (math.isfinite(self.fixed) and self.fixed > 0):
            raise CodecError(f"gain {gain!r} is not a positive finite number")
        if abs(20 * math.log10(self.fixed)) > self.max_db:
            raise CodecError(f"gain {gain:g} is beyond +-{codec.cfg.max_gain_db:g} dB")
        if normalization not in ("clip", "block", "none"):
            raise CodecError(f"unknown normalisation '{normalization}'")
        if normalization == "block":
            cfg = dataclasses.replace(codec.cfg, norm_block_frames=block_frames)
            self.block = BlockGain(cfg, codec.hop_length)
            self.codes: dict[int, int] = {}  # gain block index -> gain code

    def add(self, gains: np.ndarray, first: int, n: int) -> None:
        if self.kind != "block":
            return
        b = self.block.block_frames
        idx = list(range(-(-first // b), -(-(first + n) // b)))
        if len(gains) != len(idx):
            raise CodecError(
                f"frames {first}..{first + n} start {len(idx)} gain blocks, got {len(gains)} gains"
            )
        if len(gains) and np.abs(gains).max() * GAIN_STEP_DB > self.max_db:
            raise CodecError(f"a block gain is beyond +-{self.max_db - GAIN_STEP_DB:g} dB")
        self.codes.update(zip(idx, (int(g) for g in gains)))

    def curve(self, start: int, length: int) -> torch.Tensor | float:
        """Gains for samples [start, start + length) as (length,), or one float."""
        if self.kind != "block":
            return self.fixed
        n = self.block.block_length
        b0, b1 = start // n, -(-(start + length) // n)
        try:
            codes = torch.tensor([[self.codes[b] for b in range(b0, b1)]])
            prev = torch.tensor([self.codes[max(b0 - 1, 0)]])
        except KeyError as e:
            raise CodecError(f"no gain received for gain block {e.args[0]}") from e
        for b in [b for b in self.codes if b < b0 - 1]:
            del self.codes[b]
        return self.block.curve(codes, prev, start - b0 * n, length).view(-1)


# ------------------------------------------------------------------------------------ encoder
class StreamEncoder:
    """Audio in chunks of any size -> codes as soon as frames complete.

    Args:
        codec: the model (eval mode; its weights are copied when the stream starts).
        n_q: codebooks (default all).
        gain: `clip` models only: the gain to apply (e.g. from a first pass over a file);
            default 0 dB. Ignored by `block` and `none` models, whose gain needs no future.
        window_frames: non-causal models: frames encoded per window (more is faster, later).
    """

    def __init__(
        self,
        codec: Codec,
        n_q: int | None = None,
        gain: float | None = None,
        window_frames: int = 50,
    ):
        self.codec = codec
        self.n_q = codec.check_n_q(n_q)
        self.hop = codec.hop_length
        self.device = next(codec.parameters()).device
        self.norm = _Normalizer(codec, gain)
        self.plan = _stateful_plan(codec, "encoder")
        self.causal = self.plan is not None
        if self.plan is not None:
            self.states = self.plan.init_states(self.device)
            if codec.has_pitch:  # the tracker's window: `context` samples up to a frame's end
                self.pitch_frames = -(-(codec.tracker.context - self.hop) // self.hop)
                self.history = torch.zeros(self.pitch_frames * self.hop)  # = offline zero pad
        else:
            reach = receptive_field(codec)
            self.left, self.right = reach["encoder_left"], reach["encoder_right"]
            if codec.has_pitch:  # the pitch tracker's window reaches back `context` samples
                self.left = max(self.left, -(-codec.tracker.context // self.hop))
            self.window = max(1, int(window_frames))
            self.buffer = torch.zeros(0)  # normalised samples from frame `buffer_frame` on
            self.buffer_frame = 0
        self.pending = torch.zeros(0)  # normalised samples of the incomplete frame (causal)
        self.samples_in = 0
        self.frames_out = 0
        self.finished = False

    @property
    def gain_code(self) -> int:
        """The `clip` gain code in use (0 for other kinds)."""
        return self.norm.gain_code

    def header(self):
        """The bitstream header (bitstream.StreamHeader) of this stream."""
        from ..bitstream import StreamHeader

        c = self.codec
        return StreamHeader(
            sample_rate=c.sample_rate,
            hop_length=c.hop_length,
            codebook_size=c.codebook_size,
            n_q=self.n_q,
            normalization=c.normalization,
            model_hash=c.model_hash,
            gain_code=self.gain_code,
            block_frames=c.cfg.norm_block_frames if c.normalization == "block" else 0,
            pitch=c.has_pitch,
        )

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency: samples from a frame's first sample until its codes exist."""
        return self.hop if self.causal else self.hop * (self.window + self.right)

    @torch.inference_mode()
    def push(self, samples: np.ndarray | torch.Tensor) -> EncodedChunk:
        """Feed (n,) float samples at the model rate; returns the frames completed so far."""
        if self.finished:
            raise CodecError("the stream was flushed; start a new one")
        x = torch.as_tensor(np.asarray(samples, dtype=np.float32)).reshape(-1)
        if not torch.isfinite(x).all():
            raise CodecError("audio contains NaN or infinite samples")
        self.samples_in += x.numel()
        return self._frames(self.norm(x), final=False)

    @torch.inference_mode()
    def flush(self) -> EncodedChunk:
        """End the stream: the last frame is zero-padded; `trim` says by how many samples."""
        if self.finished:
            raise CodecError("the stream was already flushed")
        if self.samples_in == 0:
            raise CodecError("cannot encode empty audio")
        self.finished = True
        return self._frames(torch.zeros(0), final=True)

    def _frames(self, x: torch.Tensor, final: bool) -> EncodedChunk:
        first = self.frames_out
        pitch = None
        if self.causal:
            z, pitch = self._causal(x, final)
        else:
            z, pitch = self._windowed(x, final)
        k = z.shape[-1]
        codes = self.codec.quantizer.encode(z, self.n_q)[0] if k else None
        codes = codes.cpu().numpy().astype(np.int64) if k else np.zeros((self.n_q, 0), np.int64)
        self.frames_out += k
        trim = self.frames_out * self.hop - self.samples_in if final else 0
        pitch = pitch.cpu().numpy().astype(np.int64) if self.codec.has_pitch else None
        return EncodedChunk(codes, self.norm.gains_for(first, k), first, final, trim, pitch)

    def _causal(self, x: torch.Tensor, final: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        buf = torch.cat([self.pending, x])
        if final and buf.numel() % self.hop:
            buf = F.pad(buf, (0, self.hop - buf.numel() % self.hop))
        k = buf.numel() // self.hop
        self.pending = buf[k * self.hop :]
        if k == 0:
            return torch.zeros(1, self.codec.cfg.latent_dim, 0), torch.zeros(0, dtype=torch.long)
        frames = buf[: k * self.hop].view(1, 1, -1).to(self.device)
        z, self.states = self.plan.step(frames, self.states)
        pitch = None
        if self.codec.has_pitch:  # causal YIN: the last pitch_frames frames complete its windows
            x = torch.cat([self.history, buf[: k * self.hop]])
            n = self.pitch_frames
            pitch = self.codec.pitch_codes(x.view(1, 1, -1).to(self.device), n + k)[0, n:]
            self.history = x[x.numel() - n * self.hop :]
        return z, pitch

    def _windowed(self, x: torch.Tensor, final: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.buffer = torch.cat([self.buffer, x])
        hop, out, pitches = self.hop, [], []
        if final and self.buffer.numel() % hop:
            self.buffer = F.pad(self.buffer, (0, hop - self.buffer.numel() % hop))
        while True:
            have = self.buffer_frame + self.buffer.numel() // hop  # complete frames held
            emitted = self.frames_out + sum(o.shape[-1] for o in out)
            todo = have - emitted
            if todo <= 0 or (not final and todo < self.window + self.right):
                break
            n = min(self.window, todo) if not final else todo
            start = max(0, emitted - self.left)
            stop = min(have, emitted + n + self.right)
            a, b = (start - self.buffer_frame) * hop, (stop - self.buffer_frame) * hop
            x = self.buffer[a:b].view(1, 1, -1).to(self.device)
            z = self.codec.encoder(x)
            out.append(z[..., emitted - start : emitted - start + n])
            if self.codec.has_pitch:  # causal tracker: exact once `left` covers its window
                p = self.codec.pitch_codes(x, z.shape[-1])
                pitches.append(p[0, emitted - start : emitted - start + n])
            drop = max(0, emitted + n - self.left - self.buffer_frame)
            self.buffer = self.buffer[drop * hop :]
            self.buffer_frame += drop
        if not out:
            return torch.zeros(1, self.codec.cfg.latent_dim, 0), torch.zeros(0, dtype=torch.long)
        pitch = torch.cat(pitches) if pitches else None
        return torch.cat(out, dim=-1), pitch


# ------------------------------------------------------------------------------------ decoder
class StreamDecoder:
    """Codes in chunks of any number of frames -> audio as soon as it is final.

    Args:
        codec: the model.
        normalization: how the codes' audio was normalised (default: the model's kind).
        gain: the `clip` gain (e.g. from the bitstream header).
        block_frames: frames per gain block for `block` (default: the model's).
        window_frames: decoders without a stateful plan (non-causal ones, and the causal
            source-filter decoder): frames decoded per window; default 50, or 1 for a causal
            model (its decoder then adds no latency, at the cost of re-running its left
            context every frame).
        pitch_shift: semitones (pitch models).
    """

    def __init__(
        self,
        codec: Codec,
        normalization: str | None = None,
        gain: float = 1.0,
        block_frames: int | None = None,
        window_frames: int | None = None,
        pitch_shift: float = 0.0,
    ):
        from .codec import check_pitch_shift

        check_pitch_shift(pitch_shift, codec.has_pitch)
        self.codec = codec
        self.hop = codec.hop_length
        self.device = next(codec.parameters()).device
        self.source = None
        if codec.has_pitch:
            from .source_filter_decoder import StreamSource

            self.source = StreamSource(codec.decoder, pitch_shift)
            self.pitch_shift = pitch_shift
        kind = codec.normalization if normalization is None else normalization
        frames = codec.cfg.norm_block_frames if block_frames is None else block_frames
        self.denorm = _Denormalizer(codec, kind, gain, frames)
        self.plan = _stateful_plan(codec, "decoder")
        self.causal = self.plan is not None
        if self.plan is not None:
            self.states = self.plan.init_states(self.device)
        else:
            reach = receptive_field(codec)
            self.left, self.right = reach["decoder_left"], reach["decoder_right"]
            if window_frames is None:
                window_frames = 1 if codec.cfg.causal else 50
            self.window = max(1, int(window_frames))
            self.latents = torch.zeros(1, codec.cfg.latent_dim, 0)
            self.latent_frame = 0
        self.frames_in = 0
        self.frames_out = 0
        self.trim: int | None = None

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency the decoder adds, in samples: how long after its codes a frame's
        audio can come out at worst (0 with a stateful plan; a window waits for its other
        `window - 1` frames and `right` frames of context). The encoder's `latency_samples`
        plus this is the stream's algorithmic latency."""
        return 0 if self.causal else self.hop * (self.window - 1 + self.right)

    @torch.inference_mode()
    def push(
        self,
        chunk: EncodedChunk | np.ndarray,
        gains: np.ndarray | None = None,
        pitch: np.ndarray | None = None,
    ) -> np.ndarray:
        """Feed codes: an EncodedChunk, or (n_q, k) codes with their block gain codes and
        (pitch models) their (k,) pitch codes.

        Returns:
            (n,) float32 audio that no later code can change.
        """
        if self.trim is not None:
            raise CodecError("the stream already ended")
        if isinstance(chunk, EncodedChunk):
            codes, gains, final, trim = chunk.codes, chunk.gains, chunk.final, chunk.trim
            pitch = chunk.pitch
        else:
            codes, final, trim = chunk, False, 0
            gains = np.zeros(0, np.int64) if gains is None else gains
        codes = np.asarray(codes, dtype=np.int64)
        if codes.ndim != 2 or codes.shape[0] > self.codec.max_n_q:
            raise CodecError(f"codes must be (n_q <= {self.codec.max_n_q}, frames)")
        if codes.size and (codes.min() < 0 or codes.max() >= self.codec.num_codes):
            raise CodecError("codes out of range for this model's codebook size")
        k = codes.shape[1]
        if self.source is not None:
            self.source.add(torch.from_numpy(self._checked_pitch(pitch, k)))
        elif pitch is not None:
            raise CodecError("the codes carry a pitch channel; this model has none")
        self.denorm.add(np.asarray(gains).reshape(-1), self.frames_in, k)
        if k:
            t = torch.from_numpy(codes).to(self.device)[None]
            z = self.codec.quantizer.decode(t)
        else:
            z = torch.zeros(1, self.codec.cfg.latent_dim, 0, device=self.device)
        self.frames_in += k
        if final:
            self.trim = int(trim)
        return self._emit(z, final)

    @staticmethod
    def _checked_pitch(pitch: np.ndarray | None, k: int) -> np.ndarray:
        if pitch is None:
            raise CodecError("this model decodes with its pitch channel, and none was given")
        pitch = np.asarray(pitch, dtype=np.int64).reshape(-1)
        if pitch.shape != (k,):
            raise CodecError(f"{pitch.size} pitch codes for {k} frames")
        if pitch.size and (pitch.min() < 0 or pitch.max() > 255):
            raise CodecError("pitch codes must be in 0..255")
        return pitch

    @torch.inference_mode()
    def flush(self) -> np.ndarray:
        """End of stream: the audio still held (non-causal models), cut to the exact length."""
        if self.trim is None:
            self.trim = 0
        return self._emit(torch.zeros(1, self.codec.cfg.latent_dim, 0), final=True)

    def _emit(self, z: torch.Tensor, final: bool) -> np.ndarray:
        first = self.frames_out
        y = self._causal(z) if self.causal else self._windowed(z, final)
        k = y.shape[-1] // self.hop
        self.frames_out += k
        if k == 0:
            return np.zeros(0, np.float32)
        y = y.view(-1).cpu() / self.denorm.curve(first * self.hop, k * self.hop)
        if final and self.trim:
            y = y[: y.numel() - self.trim]
        return y.float().numpy()

    def _causal(self, z: torch.Tensor) -> torch.Tensor:
        if z.shape[-1] == 0:
            return torch.zeros(1, 1, 0)
        y, self.states = self.plan.step(z, self.states)
        return y

    def _windowed(self, z: torch.Tensor, final: bool) -> torch.Tensor:
        self.latents = torch.cat([self.latents, z.to(self.latents)], dim=-1)
        out = []
        while True:
            have = self.latent_frame + self.latents.shape[-1]
            emitted = self.frames_out + sum(o.shape[-1] for o in out) // self.hop
            todo = have - emitted
            if todo <= 0 or (not final and todo < self.window + self.right):
                break
            n = min(self.window, todo) if not final else todo
            start = max(0, emitted - self.left)
            stop = min(have, emitted + n + self.right)
            a, b = start - self.latent_frame, stop - self.latent_frame
            kw = {}
            if self.source is not None:
                kw = {k: v.to(self.device) if isinstance(v, torch.Tensor) else v
                      for k, v in self.source.window(start, stop).items()}  # fmt: skip
                kw["pitch_shift"] = self.pitch_shift
            y = self.codec.decoder(self.latents[..., a:b].to(self.device), **kw)
            off = (emitted - start) * self.hop
            out.append(y[..., off : off + n * self.hop])
            drop = max(0, emitted + n - self.left - self.latent_frame)
            self.latents = self.latents[..., drop:]
            self.latent_frame += drop
        if not out:
            return torch.zeros(1, 1, 0)
        return torch.cat(out, dim=-1)


def algorithmic_latency(codec: Codec) -> float:
    """Seconds from a sample entering the encoder until the decoder can output it (worst case
    over the samples of a frame): one frame, plus the look-ahead (right context) of the encoder
    and the decoder, which is zero for a causal model."""
    r = receptive_field(codec)
    return (1 + r["encoder_right"] + r["decoder_right"]) * codec.hop_length / codec.sample_rate
