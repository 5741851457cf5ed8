"""Chunk-by-chunk encoding and decoding: `codec.stream_encoder()` / `codec.stream_decoder()`.

    enc = codec.stream_encoder(n_q=3)
    dec = codec.stream_decoder()
    for chunk in chunks:                      # any sizes: 1, 7, 320, 4000 samples ...
        audio = dec.push(enc.push(chunk))     # codes as soon as frames complete, then audio
    audio = dec.push(enc.flush())             # the padded last frame; output has the exact length

A causal SEANet model streams with its state in its layers (nn/streaming.py): each stream keeps
a `StreamState` (every causal convolution's left context) and runs the model's own forward on
the frames a push completes, inside `streaming(..., state=)`; between pushes the model is
stateless, so any number of streams and offline calls can share it. Snake is pointwise and the
quantizer frame-local. Codes are bit-identical to the offline `Codec.encode` (the fixed-order
kernels of nn/fixed_order.py), audio equals `Codec.decode`, and a frame's codes come out as
soon as its last sample arrives: the algorithmic latency is one frame (hop / sample_rate), with
nothing added by the decoder or by `block` normalisation (model/loudness.py, stream_gain.py).
A server runs many streams as one batch the same way: `with codec.streaming(batch_size=B)`.

A non-causal model streams by overlapping windows: each window carries the receptive field
(measured with autograd on the model itself, model/reach.py) as context on both sides, so the
frames it keeps equal offline ones; its latency is a frame plus the right context. Its `clip`
gain needs the whole signal: pass it (`gain=`) or it is 0 dB.

A causal model with the source-filter decoder (`streaming-sf`) mixes the two: the SEANet
encoder streams with its state, with the causal pitch tracker fed the last frames of samples
as its window's context; the decoder (ConvNeXt + STFT source filter) decodes windows of one
frame by default, each with its left receptive field as context and no right context (the
decoder reads no latent or pitch frame ahead), so it adds no latency; the source phase and
held f0 carry over in `StreamSource`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..bitstream import StreamHeader
from ..errors import CodecError
from ..nn.streaming import StreamState, initial_state, streaming
from ..pitch import check_pitch_shift
from .reach import algorithmic_latency, receptive_field
from .source_filter_decoder import StreamSource
from .stream_gain import StreamDenormalizer, StreamNormalizer

__all__ = [
    "EncodedChunk",
    "StreamDecoder",
    "StreamEncoder",
    "algorithmic_latency",
    "receptive_field",
    "streams_with_state",
]


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


def streams_with_state(codec: nn.Module, part: str) -> bool:
    """True when the codec's `part` ("encoder" / "decoder") streams with state in its layers: a
    causal model whose module says so (SEANet); otherwise it streams by windows."""
    module = codec.encoder if part == "encoder" else codec.decoder
    return bool(codec.cfg.causal and getattr(module, "streams_with_state", False))


# ------------------------------------------------------------------------------------ encoder
class StreamEncoder:
    """Audio in chunks of any size -> codes as soon as frames complete.

    Args:
        codec: the model (a `Codec` in eval mode); the stream holds its layers' state, not a
            copy of the weights.
        n_q: codebooks (default all).
        gain: `clip` models only: the gain to apply (e.g. from a first pass over a file);
            default 0 dB. Ignored by `block` and `none` models, whose gain needs no future.
        window_frames: non-causal models: frames encoded per window (more is faster, later).
    """

    def __init__(
        self,
        codec: nn.Module,
        n_q: int | None = None,
        gain: float | None = None,
        window_frames: int = 50,
    ):
        self.codec = codec
        self.n_q = codec.check_n_q(n_q)
        self.hop = codec.hop_length
        self.device = next(codec.parameters()).device
        self.norm = StreamNormalizer(codec, gain)
        self.causal = streams_with_state(codec, "encoder")
        if self.causal:
            self.state: StreamState = initial_state(codec.encoder, 1, self.device)
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

    def header(self) -> StreamHeader:
        """The bitstream header (bitstream.StreamHeader) of this stream."""
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
        with streaming(self.codec.encoder, state=self.state):
            z = self.codec.encoder(frames)
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
        window_frames: decoders that stream by windows (non-causal ones, and the causal
            source-filter decoder): frames decoded per window; default 50, or 1 for a causal
            model (its decoder then adds no latency, at the cost of re-running its left
            context every frame).
        pitch_shift: semitones (pitch models).
    """

    def __init__(
        self,
        codec: nn.Module,
        normalization: str | None = None,
        gain: float = 1.0,
        block_frames: int | None = None,
        window_frames: int | None = None,
        pitch_shift: float = 0.0,
    ):
        check_pitch_shift(pitch_shift, codec.has_pitch)
        self.codec = codec
        self.hop = codec.hop_length
        self.device = next(codec.parameters()).device
        self.source = None
        if codec.has_pitch:
            self.source = StreamSource(codec.decoder, pitch_shift)
            self.pitch_shift = pitch_shift
        kind = codec.normalization if normalization is None else normalization
        frames = codec.cfg.norm_block_frames if block_frames is None else block_frames
        self.denorm = StreamDenormalizer(codec, kind, gain, frames)
        self.causal = streams_with_state(codec, "decoder")
        if self.causal:
            self.state: StreamState = initial_state(codec.decoder, 1, self.device)
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
        audio can come out at worst (0 when the decoder streams with state; a window waits for
        its other `window - 1` frames and `right` frames of context). The encoder's
        `latency_samples` plus this is the stream's algorithmic latency."""
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
        with streaming(self.codec.decoder, state=self.state):
            y = self.codec.decoder(z)
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
