"""A causal YIN pitch tracker and the 8-bit pitch code of the bitstream's side channel.

YIN (de Cheveigne & Kawahara 2002): for each frame, the difference function
d(tau) = sum_j (x_j - x_{j+tau})^2 over an integration window of `window` samples (eq. 6),
its cumulative-mean normalised form d'(tau) (eq. 8), the first dip below `threshold` walked
down to its local minimum (step 4), refined by parabolic interpolation (step 5).

Why our own tracker rather than pyworld or a neural one: it runs batched in torch inside the
training step (no per-file process, no copy to numpy), and it is causal with no lookahead:
frame f's analysis window is the `window + max_lag` samples that end where frame f ends,
sample (f + 1) * hop, i.e. exactly the samples the causal encoder has seen when it emits frame
f's codes. So pitch adds no latency to a stream, and a streamed tracker equals the offline one
(tests/test_pitch.py). The periodicity it measures is centred about 0.35 frames before frame f
starts (`TrackerSettings.anchor_offset`, which the excitation uses to place it in time).

The code (one byte per frame, model/excitation.py decodes it):
    0        unvoiced
    1..255   log-F0 uniformly over [fmin, fmax]: f0 = fmin * (fmax / fmin) ** ((c - 1) / 254);
             50-500 Hz gives steps of 0.91 % (at most 0.45 % error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .errors import CodecError

PITCH_LEVELS = 255  # voiced codes 1..255; 0 = unvoiced
PITCH_BITS = 8  # bits per frame of the side channel


@dataclass(frozen=True)
class TrackerSettings:
    """What the tracker needs (model.pitch in the config carries the same fields).

    Attributes:
        sample_rate: Hz.
        hop: samples per frame.
        fmin, fmax: search range in Hz (also the code's range).
        threshold: YIN's absolute threshold on d'(tau) (step 4).
        voicing_threshold: a frame is voiced when its d' minimum is below this ...
        silence_db: ... and its window's RMS is above this (dBFS, on the normalised input).
    """

    sample_rate: int = 16000
    hop: int = 320
    fmin: float = 50.0
    fmax: float = 500.0
    threshold: float = 0.15
    voicing_threshold: float = 0.3
    silence_db: float = -50.0

    @property
    def max_lag(self) -> int:
        return int(math.ceil(self.sample_rate / self.fmin))

    @property
    def min_lag(self) -> int:
        return max(2, int(math.floor(self.sample_rate / self.fmax)))

    @property
    def window(self) -> int:
        """Integration window: at least one period of fmin, at least one frame."""
        return max(self.hop, self.max_lag)

    @property
    def context(self) -> int:
        """Samples of one frame's analysis: the window plus the largest lag."""
        return self.window + self.max_lag + 1

    @property
    def anchor_offset(self) -> float:
        """The sample frame 0's pitch describes; frame f's is this + f * hop.

        The lagged products of period P span the window's first window + P samples, so their
        centre is (window + P) / 2 after the window's start, (f + 1) * hop - context; taken at
        a typical P (150 Hz). Negative: the pitch of a frame lags its samples a little.
        """
        return self.hop - self.context + 0.5 * (self.window + self.sample_rate / 150.0)


@dataclass
class PitchTrack:
    """Per-frame output of `track`.

    Attributes:
        f0: (B, F) float32 Hz (0 where unvoiced).
        voiced: (B, F) bool.
        aperiodicity: (B, F) float32, the d' minimum (0 = perfectly periodic, ~1 = noise).
    """

    f0: torch.Tensor
    voiced: torch.Tensor
    aperiodicity: torch.Tensor


def _frames(x: torch.Tensor, s: TrackerSettings, n_frames: int) -> torch.Tensor:
    """(B, T) -> (B, F, context): the window that ends at sample (f + 1) * hop, zero-padded left."""
    c = s.context
    need = n_frames * s.hop
    x = x[:, :need]
    x = F.pad(x, (c - s.hop, need - x.shape[-1]))
    return x.unfold(-1, c, s.hop)  # (B, F, c)


def track(wav: torch.Tensor, s: TrackerSettings, n_frames: int | None = None) -> PitchTrack:
    """Causal YIN over frames of `s.hop` samples.

    Args:
        wav: (B, T) or (B, 1, T) float audio (any level; silence below `s.silence_db` dBFS is
            unvoiced).
        n_frames: frames to return (default ceil(T / hop)); the signal is zero-padded.

    Returns:
        PitchTrack with (B, F) fields; frame f depends only on samples < (f + 1) * hop.
    """
    if wav.dim() == 3:
        wav = wav[:, 0]
    x = wav.detach().float()
    x = torch.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).clamp(-1e3, 1e3)
    n_frames = -(-x.shape[-1] // s.hop) if n_frames is None else n_frames
    seg = _frames(x, s, n_frames).double()  # (B, F, c): float64 keeps d(tau) exact enough
    seg = seg - seg.mean(dim=-1, keepdim=True)  # DC offset does not move the period
    w, lag = s.window, s.max_lag
    n_fft = 1 << (s.context - 1).bit_length()
    a = seg[..., :w]
    # r(tau) = sum_{j < w} x_j x_{j + tau}: cross-correlation through the FFT (no wrap: n_fft >= c)
    r = torch.fft.irfft(torch.conj(torch.fft.rfft(a, n_fft)) * torch.fft.rfft(seg, n_fft), n_fft)[
        ..., : lag + 1
    ]
    sq = F.pad(seg.square().cumsum(-1), (1, 0))  # sq[k] = sum_{j < k} x_j^2
    e0 = sq[..., w : w + 1]  # energy of x[0 : w]
    taus = torch.arange(lag + 1, device=x.device)
    e_tau = sq[..., taus + w] - sq[..., taus]  # energy of x[tau : tau + w]
    d = (e0 + e_tau - 2 * r).clamp(min=0)  # (B, F, lag + 1), eq. 6
    # eq. 8: d'(tau) = d(tau) * tau / sum_{k=1..tau} d(k); d'(0) = 1
    cum = d[..., 1:].cumsum(-1)
    dn = torch.ones_like(d)
    dn[..., 1:] = torch.where(cum > 0, d[..., 1:] * taus[1:] / cum.clamp(min=1e-30), 1.0)
    lo = s.min_lag
    search = dn[..., lo : lag + 1]  # (B, F, L)
    below = search < s.threshold
    nxt = torch.cat([search[..., 1:], torch.full_like(search[..., :1], math.inf)], -1)
    candidate = below & (search <= nxt)  # first dip below the threshold, at its local minimum
    has = candidate.any(-1)
    first = candidate.to(torch.int8).argmax(-1)
    best = torch.where(has, first, search.argmin(-1))  # no dip: the global minimum (step 4)
    tau = best + lo
    # step 5: parabolic interpolation of d' around tau
    i0 = (tau - 1).clamp(min=1)
    i2 = (tau + 1).clamp(max=lag)
    y0, y1, y2 = (dn.gather(-1, i[..., None])[..., 0] for i in (i0, tau, i2))
    den = y0 - 2 * y1 + y2
    shift = torch.where(den.abs() > 1e-12, 0.5 * (y0 - y2) / den, torch.zeros_like(den))
    shift = torch.where((i0 == tau - 1) & (i2 == tau + 1), shift.clamp(-1, 1), 0 * shift)
    period = tau.double() + shift
    ap = y1.clamp(0, 1)
    rms_db = 10 * torch.log10(e0[..., 0] / w + 1e-20)
    voiced = (ap < s.voicing_threshold) & (rms_db > s.silence_db)
    f0 = (s.sample_rate / period).clamp(s.fmin, s.fmax)
    f0 = torch.where(voiced, f0, torch.zeros_like(f0))
    return PitchTrack(f0.float(), voiced, ap.float())


def settings_for(cfg) -> TrackerSettings:
    """The tracker of a `config.ModelConfig` (its `pitch` section, rate and hop)."""
    p = cfg.pitch
    return TrackerSettings(
        sample_rate=cfg.sample_rate,
        hop=cfg.patch_size * math.prod(cfg.strides),
        fmin=p.fmin,
        fmax=p.fmax,
        threshold=p.threshold,
        voicing_threshold=p.voicing_threshold,
        silence_db=p.silence_db,
    )


# ------------------------------------------------------------------------------------ code
def quantize(f0: torch.Tensor, voiced: torch.Tensor, fmin: float, fmax: float) -> torch.Tensor:
    """(..., F) Hz + voicing -> (..., F) int64 codes 0..255 (0 = unvoiced)."""
    span = math.log(fmax / fmin)
    pos = (torch.log(f0.clamp(min=fmin, max=fmax).double() / fmin) / span) * (PITCH_LEVELS - 1)
    code = 1 + pos.round().long().clamp(0, PITCH_LEVELS - 1)
    return torch.where(voiced, code, torch.zeros_like(code))


def dequantize(codes: torch.Tensor, fmin: float, fmax: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., F) codes -> (f0 Hz float32, 0 where unvoiced; voiced bool)."""
    codes = codes.long()
    voiced = codes > 0
    frac = (codes - 1).clamp(min=0).double() / (PITCH_LEVELS - 1)
    f0 = fmin * torch.exp(frac * math.log(fmax / fmin))
    return torch.where(voiced, f0, torch.zeros_like(f0)).float(), voiced


def hold_unvoiced(f0: torch.Tensor, voiced: torch.Tensor, start: torch.Tensor | float = 120.0):
    """(B, F) f0 with unvoiced frames holding the last voiced value (causal).

    Args:
        start: (B,) or scalar, the value held before the first voiced frame (a stream carries
            its last held value across calls).

    Returns:
        (B, F) float32 Hz, never 0.
    """
    b, n = f0.shape
    idx = torch.where(voiced, torch.arange(n, device=f0.device).expand(b, n), -1)
    last = idx.cummax(-1).values  # (B, F): index of the last voiced frame so far, -1 if none
    start = torch.as_tensor(start, dtype=f0.dtype, device=f0.device).expand(b)
    held = f0.gather(-1, last.clamp(min=0))
    return torch.where(last >= 0, held, start[:, None]).float()


MAX_PITCH_SHIFT = 24.0  # semitones either way


def check_pitch_shift(semitones: float, has_pitch: bool) -> None:
    """CodecError unless `semitones` is a usable pitch shift for this model."""
    if not isinstance(semitones, (int, float)) or not math.isfinite(semitones):
        raise CodecError(f"pitch shift must be a finite number of semitones, got {semitones!r}")
    if abs(semitones) > MAX_PITCH_SHIFT:
        raise CodecError(f"pitch shift {semitones:g} is beyond +-{MAX_PITCH_SHIFT:g} semitones")
    if semitones and not has_pitch:
        raise CodecError("pitch shift needs a model with a pitch channel (decoder source_filter)")
