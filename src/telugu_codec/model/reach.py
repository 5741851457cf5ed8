"""How far a codec's frames reach: the receptive field measured on the model, and the
algorithmic latency of its streams that follows from it."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CodecError


def receptive_field(codec: nn.Module) -> dict[str, int]:
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


def _pitch_reach(codec: nn.Module, frames: int) -> int:
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


def algorithmic_latency(codec: nn.Module) -> float:
    """Seconds from a sample entering the encoder until the decoder can output it (worst case
    over the samples of a frame): one frame, plus the look-ahead (right context) of the encoder
    and the decoder, which is zero for a causal model."""
    r = receptive_field(codec)
    return (1 + r["encoder_right"] + r["decoder_right"]) * codec.hop_length / codec.sample_rate
