"""Padding-aware batched encoding: `Codec.encode_batch`, the tokenizer's path (issue 24).

Tokens are a function of the audio alone: batched, single-file (`Codec.encode`) and streamed
(`Codec.stream_encoder`, 20 ms chunks) encoding give bit-identical codes for the same model,
in fp32 and under bf16 autocast (tests/test_invariance.py). What makes it hold:

- frame count: `n_frames = ceil(samples / hop)` on every path; the last frame is zero-padded
  (the stream's `flush` pads it the same way and reports the padding as `trim`);
- normalisation: each item's gain is computed on its own valid samples by the single-file
  code (`clip`: the whole item's RMS, rounded to the bitstream's 0.5 dB steps; `block`: the
  causal per-block gains from the item's start), never over the padding;
- the network: inference convolutions and the code search sum in one fixed order for any
  batch size and length (nn/fixed_order.py). A causal model runs the padded batch at once:
  its valid frames see no padding. A non-causal model's last frames would see the batch's
  padding through its centred convolutions, so each item runs alone at its own length (the
  single-file computation itself);
- the code search runs in fp32 even under autocast (model/quantizer/base.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CodecError

PAD_CODE = -1  # codes past an item's n_frames (never a valid code)


@dataclass
class EncodedBatch:
    """Result of `Codec.encode_batch`.

    Attributes:
        codes: (B, n_q, F) int64, F = max(n_frames); item i's frames past n_frames[i] hold
            PAD_CODE (-1).
        n_frames: (B,) int64, ceil(lengths / hop).
        gains: per item, the normalisation side information `Codec.decode_codes` takes: a
            (1,) linear gain (`clip`, `none`) or (n_blocks,) int64 gain codes (`block`).
        pitch: (B, F) int64 pitch codes (PAD_CODE past n_frames) for a model with a pitch
            channel, else None.
    """

    codes: torch.Tensor
    n_frames: torch.Tensor
    gains: list[torch.Tensor]
    pitch: torch.Tensor | None = None

    def item(self, i: int) -> torch.Tensor:
        """(n_q, n_frames[i]) codes of item i."""
        return self.codes[i, :, : int(self.n_frames[i])]


def check_batch(audio: torch.Tensor, lengths: torch.Tensor | list[int]) -> torch.Tensor:
    """CodecError unless audio is (B, 1, T) finite float with 1 <= lengths <= T; returns the
    (B,) int64 lengths."""
    if not isinstance(audio, torch.Tensor) or audio.dim() != 3 or audio.shape[1] != 1:
        raise CodecError(f"expected (B, 1, T) audio, got {getattr(audio, 'shape', type(audio))}")
    if not audio.is_floating_point():
        raise CodecError(f"audio must be float, got {audio.dtype}")
    lengths = torch.as_tensor(lengths).reshape(-1)
    if lengths.is_floating_point() or lengths.numel() != audio.shape[0]:
        raise CodecError(f"lengths must be {audio.shape[0]} integers, one per item")
    if audio.shape[0] and (int(lengths.min()) < 1 or int(lengths.max()) > audio.shape[-1]):
        raise CodecError(f"lengths must be in 1..{audio.shape[-1]} (empty audio has no codes)")
    for i, n in enumerate(lengths.tolist()):
        if not torch.isfinite(audio[i, :, :n]).all():
            raise CodecError(f"item {i} contains NaN or infinite samples")
    return lengths.long()


def encode_batch(
    codec: nn.Module,
    audio: torch.Tensor,
    lengths: torch.Tensor | list[int],
    n_q: int | None = None,
    quantize_gain: bool = True,
) -> EncodedBatch:
    """Encode a padded batch (see the module docstring and `Codec.encode_batch`)."""
    lengths = check_batch(audio, lengths)
    n_q = codec.check_n_q(n_q)
    hop, b = codec.hop_length, audio.shape[0]
    n_frames = (lengths + hop - 1) // hop
    frames = int(n_frames.max()) if b else 0
    device = next(codec.parameters()).device
    x = torch.zeros(b, 1, frames * hop, device=device)
    gains = []
    for i, n in enumerate(lengths.tolist()):  # the single-file normalisation of each item
        xi, _, side = codec._normalize_side(audio[i : i + 1, :, :n].to(device), quantize_gain)
        x[i, :, :n] = xi[0]
        gains.append(side[0].cpu().reshape(-1))
    codes = torch.full((b, n_q, frames), PAD_CODE, dtype=torch.long, device=device)
    if codec.cfg.causal:  # valid frames see no padding: the batch at once
        c = codec.quantizer.encode(codec.encoder(x), n_q)
        for i, f in enumerate(n_frames.tolist()):
            codes[i, :, :f] = c[i, :, :f]
    else:  # a centred conv's last frames would see the padding: each item at its length
        for i, f in enumerate(n_frames.tolist()):
            codes[i, :, :f] = codec.quantizer.encode(codec.encoder(x[i : i + 1, :, : f * hop]), n_q)
    pitch = None
    if codec.has_pitch:  # the tracker on each item's own samples, as `encode`
        pitch = torch.full((b, frames), PAD_CODE, dtype=torch.long, device=device)
        for i, f in enumerate(n_frames.tolist()):
            pitch[i, :f] = codec.pitch_codes(x[i : i + 1, :, : f * hop], f)[0]
    return EncodedBatch(codes.cpu(), n_frames, gains, None if pitch is None else pitch.cpu())
