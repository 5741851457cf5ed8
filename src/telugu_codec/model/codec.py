"""The public `Codec`: SEANet encoder -> residual VQ -> SEANet decoder, with loudness handling.

codec = Codec.load("run/")                       # file, checkpoint folder or run folder
enc = codec.encode(wav, sample_rate, n_q=6)      # EncodedAudio (codes + header fields)
out = codec.decode(enc)                          # (T,) float32 at codec.sample_rate
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .. import __version__
from ..audio import denormalize, normalize, resample, to_mono
from ..bitstream import EncodedAudio, bits_per_code
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
from .decoder import build_decoder
from .encoder import build_encoder
from .quantizer import build_quantizer


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

    def bitrate(self, n_q: int) -> float:
        """Nominal bitrate in bits/s for `n_q` codebooks."""
        return self.frame_rate * n_q * bits_per_code(self.codebook_size)

    def n_q_for_bitrate(self, kbps: float) -> int:
        """Codebooks giving `kbps` (rounded to the nearest whole codebook)."""
        per_q = self.bitrate(1) / 1000
        if not math.isfinite(kbps) or kbps <= 0:
            raise CodecError(f"bitrate must be a positive number of kbps, got {kbps}")
        n_q = int(round(kbps / per_q))
        if n_q < 1 or n_q > self.max_n_q:
            raise CodecError(
                f"bitrate {kbps} kbps is outside this model's range "
                f"{per_q:g}..{per_q * self.max_n_q:g} kbps (steps of {per_q:g})"
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
        if not self.cfg.normalize:
            return x, torch.ones(x.shape[0], 1, 1, device=x.device)
        return normalize(x, self.cfg.target_rms, self.cfg.max_gain_db)

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
        y, dec_feats = self.decoder(q.quantized, return_features=True)
        y = denormalize(y[..., :t], gain)
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
        )

    def encode_codes(
        self, wav: torch.Tensor, n_q: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 1, T) -> (codes (B, n_q, ceil(T / hop)), gain (B,))."""
        x, gain = self._normalize(wav)
        z = self.encoder(self._pad(x))
        return self.quantizer.encode(z, n_q), gain.view(-1)

    def decode_codes(self, codes: torch.Tensor, length: int, gain: torch.Tensor) -> torch.Tensor:
        """(B, n_q, F) codes -> (B, 1, length) audio, loudness restored with `gain` (B,)."""
        y = self.decoder(self.quantizer.decode(codes))
        return denormalize(y[..., :length], gain)

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
        n_q = self.max_n_q if n_q is None else n_q
        if not 1 <= n_q <= self.max_n_q:
            raise CodecError(f"n_q must be between 1 and {self.max_n_q}, got {n_q}")
        x = self._prepare(wav, sample_rate)
        codes, gain = self.encode_codes(x, n_q)
        return EncodedAudio(
            codes=codes[0].cpu().numpy().astype(np.int64),
            sample_rate=self.sample_rate,
            length=int(x.shape[-1]),
            frame_rate=self.frame_rate,
            codebook_size=self.codebook_size,
            gain=float(gain[0]),
            model_hash=self.model_hash,
        )

    @torch.inference_mode()
    def decode(self, enc: EncodedAudio) -> torch.Tensor:
        """EncodedAudio -> (T,) float32 audio at `enc.sample_rate`."""
        if enc.sample_rate != self.sample_rate or enc.codebook_size != self.codebook_size:
            raise CodecError(
                f"codes are for {enc.sample_rate} Hz / K={enc.codebook_size}, this model is "
                f"{self.sample_rate} Hz / K={self.codebook_size}"
            )
        if enc.n_q > self.max_n_q:
            raise CodecError(f"codes use {enc.n_q} codebooks; this model has {self.max_n_q}")
        device = next(self.parameters()).device
        codes = torch.from_numpy(np.asarray(enc.codes, dtype=np.int64)).to(device)[None]
        if codes.numel() and (
            int(codes.max()) >= min(self.quantizer.num_codes) or int(codes.min()) < 0
        ):
            raise CodecError("codes out of range for this model's codebook size")
        gain = torch.tensor([enc.gain], dtype=torch.float32, device=device)
        return self.decode_codes(codes, enc.length, gain)[0, 0].float().cpu()

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
