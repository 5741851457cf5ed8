"""The public `Codec`: SEANet encoder -> residual VQ -> SEANet decoder, with loudness handling.

codec = Codec.load("run/")                       # file, checkpoint folder or run folder
enc = codec.encode(wav, sample_rate, n_q=6)      # EncodedAudio (codes + header fields)
out = codec.decode(enc)                          # (T,) float32 at codec.sample_rate
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from .. import pitch as pitch_mod
from ..audio import normalize, resample, to_mono
from ..bitstream import EncodedAudio, bits_per_code, code_from_gain
from ..checkpoint import (
    CODEC_FILE,
    check_finite,
    codec_config,
    codec_meta,
    find_codec_file,
    load_state_strict,
    load_tensors,
    save_tensors,
    state_hash,
    verify_model_hash,
)
from ..config import Config, ModelConfig, to_yaml
from ..errors import CodecError
from ..nn.streaming import StreamState, streaming
from ..pitch import MAX_PITCH_SHIFT, check_pitch_shift  # noqa: F401 (re-exported)
from .batch_encode import EncodedBatch, encode_batch
from .decoder import build_decoder
from .distill_head import build_distill_head
from .encoder import build_encoder
from .excitation import NOISE_TABLE
from .loudness import BlockGain, gain_from_code, normalization_kind
from .quantizer import build_quantizer
from .streaming import StreamDecoder, StreamEncoder


@dataclass
class CodecOutput:
    """Result of `Codec.forward` (the training path).

    Attributes:
        audio: (B, 1, T) reconstruction at the input's loudness.
        codes: (B, n_q, F).
        commit_loss: scalar commitment loss from the quantizer.
        perplexity: (n_q,) per-codebook perplexity in this batch.
        usage: (n_q,) share of each codebook used in this batch.
        replaced: (n_q,) dead codes re-seeded in this step (training).
        warming_up: the quantizer passed latents through while gathering them for k-means.
        latent: (B, D, F) encoder output before quantization.
        encoder_features / decoder_features: per-stage feature maps when requested.
    """

    audio: torch.Tensor
    codes: torch.Tensor
    commit_loss: torch.Tensor
    perplexity: torch.Tensor
    usage: torch.Tensor
    latent: torch.Tensor
    replaced: torch.Tensor | None = None
    warming_up: bool = False
    encoder_features: list[torch.Tensor] = field(default_factory=list)
    decoder_features: list[torch.Tensor] = field(default_factory=list)
    first: torch.Tensor | None = None  # (B, D, F) codebook 1's output (issue 25: distillation)


class Codec(nn.Module):
    """SEANet + RVQ speech codec.

    Args:
        cfg: the model section of the config.
        config: the full resolved config, saved with checkpoints (optional).
    """

    def __init__(self, cfg: ModelConfig, config: Config | None = None):
        super().__init__()
        self.cfg = cfg
        self.config = config if config is not None else Config(model=cfg)
        self.encoder = build_encoder(cfg)
        self.quantizer = build_quantizer(cfg.latent_dim, cfg.quantizer)
        self.decoder = build_decoder(cfg)
        self.distill_head = build_distill_head(self.config)  # issue 25: None unless loss.distill
        self.normalization = normalization_kind(cfg)  # clip | block | none
        self.block_gain = BlockGain(cfg, self.hop_length) if self.normalization == "block" else None
        self.tracker = pitch_mod.settings_for(cfg) if cfg.pitch.enabled else None
        if self.tracker is not None and not getattr(self.decoder, "uses_pitch", False):
            raise CodecError(
                f"model.pitch.enabled needs a decoder that uses it (source_filter), not "
                f"'{cfg.decoder.kind}'"
            )
        self._hash: str | None = None

    # ---------------------------------------------------------------- properties
    @property
    def sample_rate(self) -> int:
        return self.cfg.sample_rate

    @property
    def hop_length(self) -> int:
        return self.cfg.patch_size * math.prod(self.cfg.strides)

    @property
    def frame_rate(self) -> float:
        return self.sample_rate / self.hop_length

    @property
    def max_n_q(self) -> int:
        return self.cfg.quantizer.n_q

    @property
    def codebook_size(self) -> int:
        return self.cfg.quantizer.codebook_size

    @property
    def num_codes(self) -> int:
        """Codes every stage can emit (<= K: an FSQ stage may use fewer than 2 ** bits)."""
        return min(self.quantizer.num_codes)

    @property
    def has_pitch(self) -> bool:
        """The model sends a pitch side channel (one byte per frame, pitch.py)."""
        return self.tracker is not None

    @property
    def pitch_bitrate(self) -> float:
        """Bits/s of the pitch side channel (0 without one)."""
        return self.frame_rate * pitch_mod.PITCH_BITS if self.has_pitch else 0.0

    def bitrate(self, n_q: int) -> float:
        """Nominal bitrate in bits/s for `n_q` codebooks, the pitch channel included."""
        return self.frame_rate * n_q * bits_per_code(self.codebook_size) + self.pitch_bitrate

    def n_q_for_bitrate(self, kbps: float) -> int:
        """Codebooks giving `kbps` in all (the pitch channel counted), rounded down to a whole
        codebook for pitch models (so "3 kbps" never means more), to the nearest otherwise."""
        per_q = self.frame_rate * bits_per_code(self.codebook_size) / 1000
        side = self.pitch_bitrate / 1000
        if not math.isfinite(kbps) or kbps <= 0:
            raise CodecError(f"bitrate must be a positive number of kbps, got {kbps}")
        q = (kbps - side) / per_q
        n_q = int(math.floor(q + 1e-9)) if self.has_pitch else int(round(q))
        if n_q < 1 or n_q > self.max_n_q:
            raise CodecError(
                f"bitrate {kbps} kbps is outside this model's range "
                f"{side + per_q:g}..{side + per_q * self.max_n_q:g} kbps (steps of {per_q:g})"
            )
        return n_q

    @property
    def model_hash(self) -> str:
        if self._hash is None:
            self._hash = state_hash(self.state_dict())
        return self._hash

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---------------------------------------------------------------- core
    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        extra = (-x.shape[-1]) % self.hop_length
        return F.pad(x, (0, extra)) if extra else x

    def _normalize(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, T) -> (x * gain, gain (B, 1, 1) or (B, 1, T)): what training sees."""
        y, gain, _ = self._normalize_side(x)
        return y, gain

    def _normalize_side(
        self, x: torch.Tensor, quantize_gain: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, 1, T) -> (x * gain, gain (B, 1, 1) or (B, 1, T), side information).

        The side information is what a decoder needs to undo the gain: (B,) linear gains for
        `clip` (rounded to the bitstream's 0.5 dB steps when `quantize_gain`) and `none`, or the
        (B, n_blocks) int64 gain codes for `block` (model/loudness.py).
        """
        if self.normalization == "none":
            gain = torch.ones(x.shape[0], 1, 1, device=x.device)
            return x, gain, gain.view(-1)
        if self.normalization == "block":
            codes, curve = self.block_gain.codes_and_curve(x)
            return x * curve.to(x.dtype), curve, codes
        y, gain = normalize(x, self.cfg.target_rms, self.cfg.max_gain_db)
        if quantize_gain:
            gain = gain_from_code([code_from_gain(float(g)) for g in gain.view(-1)])
            gain = gain.to(x.device).view(-1, 1, 1)
            y = x * gain.to(x.dtype)
        return y, gain, gain.view(-1)

    def _gain_curve(self, side: torch.Tensor, length: int) -> torch.Tensor:
        """Side information from `_normalize` -> gain (B, 1, 1) or (B, 1, length)."""
        if self.normalization == "block" and side.dim() == 2:
            return self.block_gain.curve(side, side[:, 0], 0, length)
        return side.view(-1, 1, 1).float()

    def pitch_codes(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """(B, 1, T) normalised audio -> (B, frames) int64 pitch codes (pitch.py).

        `model.pitch.zero` (an ablation) sends "unvoiced" everywhere.
        """
        t = self.tracker
        if self.cfg.pitch.zero:
            return torch.zeros(x.shape[0], frames, dtype=torch.long, device=x.device)
        tr = pitch_mod.track(x, t, frames)
        return pitch_mod.quantize(tr.f0, tr.voiced, t.fmin, t.fmax)

    def _decode(
        self,
        z: torch.Tensor,
        pitch: torch.Tensor | None,
        return_features: bool = False,
        pitch_shift: float = 0.0,
    ):
        """Quantized latents (B, D, F) [+ pitch codes (B, F)] -> decoder output."""
        if not self.has_pitch:
            if pitch_shift:
                raise CodecError("--pitch-shift needs a model with a pitch channel")
            return self.decoder(z, return_features=return_features)
        if pitch is None:
            raise CodecError("this model decodes with its pitch channel, and none was given")
        offset = None
        if self.training:  # fresh noise for every item, not the same table slice every step
            offset = torch.randint(0, NOISE_TABLE, (z.shape[0],), device=z.device)
        return self.decoder(
            z, return_features=return_features, pitch=pitch, pitch_shift=pitch_shift,
            noise_offset=offset,
        )  # fmt: skip

    def forward(
        self, wav: torch.Tensor, n_q: int | None = None, return_features: bool = False
    ) -> CodecOutput:
        """Encode, quantize and decode (training and validation path).

        Args:
            wav: (B, 1, T) float in [-1, 1], any T.
            n_q: codebooks to use (default all; quantizer dropout applies in training).
            return_features: keep encoder and decoder per-stage feature maps.
        """
        if wav.dim() != 3 or wav.shape[1] != 1:
            raise ValueError(f"expected (B, 1, T) audio, got shape {tuple(wav.shape)}")
        t = wav.shape[-1]
        x, gain = self._normalize(wav)
        x = self._pad(x)
        z, enc_feats = self.encoder(x, return_features=True)
        q = self.quantizer(z, n_q)
        pitch = self.pitch_codes(x, z.shape[-1]) if self.has_pitch else None
        y, dec_feats = self._decode(q.quantized, pitch, return_features=True)
        y = y[..., :t] / gain.to(y.dtype)
        return CodecOutput(
            audio=y,
            codes=q.codes,
            commit_loss=q.commit_loss,
            perplexity=q.perplexity,
            usage=q.usage,
            latent=z,
            replaced=q.replaced,
            warming_up=q.warming_up,
            encoder_features=enc_feats if return_features else [],
            decoder_features=dec_feats if return_features else [],
            first=q.first,  # issue 25
        )

    def encode_codes(
        self,
        wav: torch.Tensor,
        n_q: int | None = None,
        quantize_gain: bool = False,
        return_pitch: bool = False,
    ):
        """(B, 1, T) -> (codes (B, n_q, ceil(T / hop)), gain side information[, pitch]).

        Frames: n_frames = ceil(T / hop), the last one zero-padded (every path agrees: see
        model/batch_encode.py). Items of different lengths: `encode_batch`.

        The side information is (B,) linear gains (`clip`, `none`) or (B, ceil(F / block))
        int64 gain codes (`block`); `decode_codes` takes it back. With `return_pitch`, also the
        (B, F) pitch codes (None for a model without a pitch channel).
        """
        x, _, side = self._normalize_side(wav, quantize_gain)
        x = self._pad(x)
        z = self.encoder(x)
        codes = self.quantizer.encode(z, n_q)
        if not return_pitch:
            return codes, side
        return codes, side, self.pitch_codes(x, z.shape[-1]) if self.has_pitch else None

    def decode_codes(
        self,
        codes: torch.Tensor,
        length: int,
        gain: torch.Tensor,
        pitch: torch.Tensor | None = None,
        pitch_shift: float = 0.0,
    ) -> torch.Tensor:
        """(B, n_q, F) codes -> (B, 1, length) audio, loudness restored with `gain`.

        Args:
            gain: the side information from `encode_codes`: (B,) linear gains, or
                (B, n_blocks) gain codes for `block` normalisation.
            pitch: (B, F) pitch codes (required by a model with a pitch channel).
            pitch_shift: semitones (pitch models only).
        """
        y = self._decode(self.quantizer.decode(codes), pitch, pitch_shift=pitch_shift)
        y = y[..., :length]
        return y / self._gain_curve(gain, y.shape[-1]).to(y.dtype)

    # ---------------------------------------------------------------- user API
    def _prepare(self, wav: np.ndarray | torch.Tensor, sample_rate: int) -> torch.Tensor:
        """Any (T,) / (C, T) input -> (1, 1, T') mono at the model rate."""
        if isinstance(wav, torch.Tensor):
            wav = wav.detach().float().cpu().numpy()
        wav = np.asarray(wav, dtype=np.float32)
        if wav.ndim == 2:
            wav = to_mono(wav.T)
        if wav.ndim != 1:
            raise CodecError(f"expected audio shaped (T,) or (C, T), got {wav.shape}")
        if wav.size == 0:
            raise CodecError("cannot encode empty audio")
        if not np.isfinite(wav).all():
            raise CodecError("audio contains NaN or infinite samples")
        wav = resample(wav, int(sample_rate), self.sample_rate)
        device = next(self.parameters()).device
        return torch.from_numpy(np.ascontiguousarray(wav)).to(device).view(1, 1, -1)

    @torch.inference_mode()
    def encode(
        self, wav: np.ndarray | torch.Tensor, sample_rate: int, n_q: int | None = None
    ) -> EncodedAudio:
        """Encode one signal.

        Args:
            wav: (T,) or (C, T) float audio (mixed to mono).
            sample_rate: its rate (resampled to `self.sample_rate`).
            n_q: codebooks (default all); bitrate = frame_rate * n_q * log2(K).
        """
        n_q = self.check_n_q(n_q)
        x = self._prepare(wav, sample_rate)
        codes, side, pitch = self.encode_codes(x, n_q, quantize_gain=True, return_pitch=True)
        enc = self._encoded(codes[0].cpu().numpy(), int(x.shape[-1]), side[0].cpu())
        if pitch is not None:
            enc.pitch = pitch[0].cpu().numpy().astype(np.int64)
        return enc

    @torch.inference_mode()
    def encode_batch(
        self,
        audio: torch.Tensor,
        lengths: torch.Tensor | list[int],
        n_q: int | None = None,
        quantize_gain: bool = True,
    ) -> EncodedBatch:
        """Encode a zero-padded batch of signals at the model rate (model/batch_encode.py).

        Item i gives exactly the codes `encode` gives for `audio[i, 0, :lengths[i]]` (and a
        stream in any chunking): its own gain from its valid samples, and
        n_frames = ceil(lengths / hop) frames, the last one zero-padded.

        Args:
            audio: (B, 1, T) float, item i valid in [0, lengths[i]).
            lengths: (B,) samples per item, 1..T.
            n_q: codebooks (default all).
            quantize_gain: `clip` gains rounded to the bitstream's 0.5 dB steps, as `encode`.

        Returns:
            EncodedBatch: codes (B, n_q, max n_frames) int64 (-1 past each item's frames),
            n_frames (B,), per-item gains, pitch codes (pitch models).
        """
        return encode_batch(self, audio, lengths, n_q, quantize_gain)

    def check_n_q(self, n_q: int | None) -> int:
        """`n_q` (default: all codebooks), or CodecError when the model does not have it."""
        n_q = self.max_n_q if n_q is None else n_q
        if not 1 <= n_q <= self.max_n_q:
            raise CodecError(f"n_q must be between 1 and {self.max_n_q}, got {n_q}")
        return n_q

    def _encoded(self, codes: np.ndarray, length: int, side: torch.Tensor) -> EncodedAudio:
        """EncodedAudio for (n_q, F) codes and one item's normalisation side information."""
        block = self.normalization == "block"
        return EncodedAudio(
            codes=codes.astype(np.int64),
            sample_rate=self.sample_rate,
            length=length,
            frame_rate=self.frame_rate,
            codebook_size=self.codebook_size,
            gain=float(side) if not block else 1.0,
            model_hash=self.model_hash,
            normalization=self.normalization,
            block_frames=self.cfg.norm_block_frames if block else 0,
            block_gains=side.numpy().astype(np.int64) if block else None,
        )

    def check_encoded(self, enc: EncodedAudio) -> None:
        """Raise CodecError unless `enc` can be decoded by this model (rate, hop, K, gains)."""
        if enc.sample_rate != self.sample_rate or enc.hop_length != self.hop_length:
            raise CodecError(
                f"codes are for {enc.sample_rate} Hz at {enc.frame_rate:g} frames/s, this model "
                f"is {self.sample_rate} Hz at {self.frame_rate:g} frames/s"
            )
        if enc.codebook_size != self.codebook_size:
            raise CodecError(
                f"codes are for K={enc.codebook_size}, this model has K={self.codebook_size}"
            )
        if enc.n_q > self.max_n_q:
            raise CodecError(f"codes use {enc.n_q} codebooks; this model has {self.max_n_q}")
        if enc.frames < 1 or not (enc.frames - 1) * self.hop_length < enc.length:
            raise CodecError(f"length {enc.length} does not match {enc.frames} frames")
        if enc.length > enc.frames * self.hop_length:
            raise CodecError(f"length {enc.length} does not match {enc.frames} frames")
        codes = np.asarray(enc.codes)
        if codes.size and (int(codes.max()) >= self.num_codes or int(codes.min()) < 0):
            raise CodecError("codes out of range for this model's codebook size")
        pitch = enc.pitch
        if self.has_pitch:
            if pitch is None:
                raise CodecError("this model needs a pitch channel and the codes carry none")
            pitch = np.asarray(pitch)
            if pitch.shape != (enc.frames,):
                raise CodecError(f"{pitch.size} pitch codes for {enc.frames} frames")
            if pitch.size and (int(pitch.min()) < 0 or int(pitch.max()) > pitch_mod.PITCH_LEVELS):
                raise CodecError(f"pitch codes must be in 0..{pitch_mod.PITCH_LEVELS}")
        elif pitch is not None:
            raise CodecError("the codes carry a pitch channel; this model has none")
        max_db = self.cfg.max_gain_db + 0.5
        if enc.normalization == "block":
            g = enc.block_gains
            n_blocks = -(-enc.frames // max(enc.block_frames, 1))
            if enc.block_frames < 1 or g is None or len(g) != n_blocks:
                raise CodecError("block gains do not match the number of frames")
            if len(g) and np.abs(np.asarray(g)).max() * 0.5 > max_db:
                raise CodecError(f"a block gain is beyond +-{self.cfg.max_gain_db:g} dB")
        elif enc.normalization in ("clip", "none"):
            gain = float(enc.gain)
            if not (math.isfinite(gain) and gain > 0 and abs(20 * math.log10(gain)) <= max_db):
                raise CodecError(
                    f"gain {gain!r} is not a finite gain within +-{self.cfg.max_gain_db:g} dB"
                )
        else:
            raise CodecError(f"unknown normalisation '{enc.normalization}'")

    def side_information(self, enc: EncodedAudio) -> torch.Tensor:
        """The (1,) gain or (1, n_blocks) gain codes of `enc` for `decode_codes`."""
        if enc.normalization == "block":
            return torch.as_tensor(np.asarray(enc.block_gains, dtype=np.int64)).view(1, -1)
        return torch.tensor([float(enc.gain)], dtype=torch.float32)

    def gain_curve(self, enc: EncodedAudio, start: int, length: int) -> torch.Tensor:
        """The gain `enc`'s encoder applied to samples [start, start + length): (1, 1, n)."""
        if enc.normalization != "block":
            return self.side_information(enc).view(1, 1, 1)
        gain = self.block_gain
        if gain is None or gain.block_frames != enc.block_frames:
            cfg = dataclasses.replace(self.cfg, norm_block_frames=enc.block_frames)
            gain = BlockGain(cfg, self.hop_length)
        n = gain.block_length
        codes = self.side_information(enc)
        b0, b1 = start // n, -(-(start + length) // n)
        prev = codes[:, max(b0 - 1, 0)]
        return gain.curve(codes[:, b0:b1], prev, start - b0 * n, length)

    @torch.inference_mode()
    def decode(self, enc: EncodedAudio, pitch_shift: float = 0.0) -> torch.Tensor:
        """EncodedAudio -> (T,) float32 audio at `enc.sample_rate`.

        Args:
            pitch_shift: semitones to move the voice's pitch by, formants kept (pitch models;
                -24..24).
        """
        self.check_encoded(enc)
        check_pitch_shift(pitch_shift, self.has_pitch)
        device = next(self.parameters()).device
        codes = torch.from_numpy(np.asarray(enc.codes, dtype=np.int64)).to(device)[None]
        pitch = None
        if self.has_pitch:
            pitch = torch.from_numpy(np.asarray(enc.pitch, dtype=np.int64)).to(device)[None]
        y = self._decode(self.quantizer.decode(codes), pitch, pitch_shift=pitch_shift)
        y = y[..., : enc.length]
        return (y / self.gain_curve(enc, 0, enc.length).to(y))[0, 0].float().cpu()

    # ---------------------------------------------------------------- streaming
    def streaming(self, batch_size: int = 1, state: StreamState | None = None):
        """Context manager: the causal layers of the encoder and decoder keep their state
        between calls in the block (nn/streaming.py), for `batch_size` streams side by side.

            with codec.streaming(batch_size=3):
                z = codec.encoder(x1)            # (3, 1, k * hop) -> (3, D, k)
                z = codec.encoder(x2)            # continues the three streams
                codes = codec.quantizer.encode(z, n_q)

        Each of the B streams gets the bits it would get alone and the offline forward's bits.
        Raises CodecError for a model that cannot stream with state (non-causal).
        """
        return streaming(self, batch_size, state)

    def stream_encoder(self, n_q: int | None = None, gain: float | None = None, **kw: Any):
        """A `StreamEncoder` (model/streaming.py): push audio chunks of any size at the model
        rate, get codes as frames complete.

        Args:
            n_q: codebooks (default all).
            gain: `clip` models only, the fixed gain to use (a stream cannot see the whole clip).
            **kw: `window_frames` for non-causal models.
        """
        return StreamEncoder(self, n_q, gain, **kw)

    def stream_decoder(self, **kw: Any):
        """A `StreamDecoder` (model/streaming.py): push codes (EncodedChunk or (n_q, k) arrays),
        get audio. **kw: `normalization`, `gain`, `block_frames` (default: this model's),
        `window_frames`, `pitch_shift` (semitones, pitch models)."""
        return StreamDecoder(self, **kw)

    # ---------------------------------------------------------------- inference speed
    def remove_weight_norm(self) -> Codec:
        """Fold weight norm into plain weights (same outputs, faster). Keeps the model hash."""
        from torch.nn.utils import parametrize

        _ = self.model_hash  # pin the hash of the trained weights first
        for module in self.modules():
            if parametrize.is_parametrized(module, "weight"):
                parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)
        return self

    # ---------------------------------------------------------------- save / load
    def metadata(self) -> dict:
        return {
            "model_hash": self.model_hash,
            "sample_rate": self.sample_rate,
            "frame_rate": self.frame_rate,
            "hop_length": self.hop_length,
            "codebook_size": self.codebook_size,
            "max_n_q": self.max_n_q,
            "parameters": self.num_parameters(),
            "version": __version__,
        }

    def save(self, path: str | Path, extra_meta: dict | None = None) -> Path:
        """Write `codec.safetensors` (into `path` if it is a folder). Returns the file path."""
        path = Path(path)
        if path.suffix != ".safetensors":
            path = path / CODEC_FILE
        state = self.state_dict()
        self._hash = state_hash(state)
        meta = self.metadata() | (extra_meta or {})
        save_tensors(
            path,
            state,
            {"format": "telugu-codec", "config": to_yaml(self.config), "meta": json.dumps(meta)},
        )
        return path

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Codec:
        """Load from a checkpoint file, checkpoint folder or training run folder."""
        file = find_codec_file(path)
        tensors, metadata = load_tensors(file)
        config = codec_config(metadata, file)
        meta = codec_meta(metadata, file)
        codec = cls(config.model, config)
        load_state_strict(codec, tensors, file)
        # recomputed, never trusted: a bit flipped on disk must not decode silently wrong
        codec._hash = verify_model_hash(tensors, meta, file)
        check_finite(tensors, file)
        return codec.to(device).eval()


def build_codec(config: Config) -> Codec:
    """A randomly initialised codec for `config` (seeded by `config.train.seed`)."""
    torch.manual_seed(config.train.seed)
    return Codec(config.model, config)
