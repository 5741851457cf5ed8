"""Source-filter decoder (`model.decoder.kind: source_filter`): the transmitted pitch drives a
harmonic source that a neural filter, conditioned on the codes, shapes.

    latent (B, D, F) + pitch features (B, 2, F) -> conv -> upsample -> ConvNeXt -> linear ->
    per STFT bin and frame:  H (complex)  N (magnitude)  V (complex)
    S = H * STFT(pulses * voicing) + N * STFT(noise) + V  ->  torch.istft  ->  (B, 1, F * hop)

The pulse train (model/excitation.py) carries every harmonic of the transmitted f0 up to
Nyquist with a continuous phase, so the harmonic fine structure and the phase progression
between frames come from the source; the network only learns the spectral envelope and each
bin's phase offset (H), the noise floor (N) and whatever is left (V, the free Vocos output,
started at a tenth of the level). A Vocos-style head alone smears harmonics above ~1.5 kHz in
the demo's budget (BENCHMARKS.md); LPCNet, FARGAN and Codec2 all transmit pitch for this reason.

Decode-time pitch control: `pitch_shift` semitones scale the source's f0 (and the pitch the
filter is told), so the envelope, i.e. the voice's formants, stays where it was.

Causal variant (`model.causal: true`, the `streaming-sf` preset). Every path from a latent or
pitch frame to the audio runs forward in time:

- conv_in is padded on the left only; the transposed conv's overhang is trimmed on the right,
  so upsampled frame j depends on latent frames floor(j / u) and the one before; the ConvNeXt
  depthwise convs are padded k - 1 on the left (LayerNorm and MLP are per frame);
- STFT / iSTFT are not centred: STFT frame j reads samples [j s, j s + n_fft) (s = hop / u)
  and its synthesis window adds to the same samples, so output sample n is the overlap-add of
  frames j <= floor(n / s), whose features depend on latent frames <= floor(n / hop). The sum
  is divided by the window's steady-state envelope sum_k w(n mod s + k s)^2 (frames before the
  first are silent: the first n_fft - s samples fade in);
- the source is where the look-ahead hides: frame j filters the pulses up to sample
  j s + n_fft - 1, i.e. for an output sample in latent frame g up to g hop + hop - s + n_fft - 1,
  and the pulses at sample m interpolate the f0 of frames floor((m - c) / hop) and the next one
  (c: sample of frame 0's anchor). The causal decoder anchors the pitch late enough that those
  frames are never after g + L (L = `source_filter.lookahead`):
      c = hop - s + n_fft - L hop.
  The tracker's frame f describes the periodicity around f hop + anchor_offset (pitch.py), so
  the source's pitch lags the tracker's by c - anchor_offset samples.

Latency arithmetic at 16 kHz, hop 320 (20 ms frames), u = 2 (s = 160), n_fft_factor 2
(n_fft = 320), as in `streaming-sf`:
    encoder (causal SEANet + causal YIN): a frame's codes and pitch byte exist once its last
        sample has arrived: 1 frame = 320 samples = 20 ms;
    decoder, latents: 0 frames (above); decoder, pitch: L frames (0 in the preset);
    total: (1 + L) x 20 ms = 20 ms (L = 0), 40 ms (L = 1).
    The cost of L = 0: c = 320 - 160 + 320 = 480 against anchor_offset = -107.7, so the
    source's f0 contour lags the tracker's by 587.7 samples = 36.7 ms (L = 1: c = 160, 16.7 ms;
    n_fft_factor 4 with L = 0: c = 800, 56.7 ms).
`streaming.receptive_field` measures both reaches on the model (autograd for the latents, a
perturbed pitch frame for the source) and the stream classes report latency from it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .. import pitch as pitch_mod
from ..config import ModelConfig
from ..errors import ConfigError
from ..nn.convnext import ConvNeXtStack
from .excitation import NoiseTable, harmonic_source, interpolate_frames, phase_increment

PITCH_FEATURES = 2  # log2(f0 / 100 Hz) of the held f0, voicing
START_F0 = 120.0  # Hz held before the first voiced frame


class SourceFilterDecoder(nn.Module):
    """Decoder `kind: source_filter`; `forward(z, pitch=codes)`.

    Attributes:
        uses_pitch: True (the codec passes the pitch codes and source state).
    """

    uses_pitch = True

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, sf = cfg.decoder.istft, cfg.decoder.source_filter
        hop_length = cfg.patch_size * math.prod(cfg.strides)
        if c.upsample < 1 or hop_length % c.upsample:
            raise ConfigError(
                f"model.decoder.istft.upsample ({c.upsample}) must divide the hop length "
                f"({hop_length})"
            )
        self.causal = cfg.causal
        self.sample_rate = cfg.sample_rate
        self.hop_length = hop_length
        self.upsample = c.upsample
        self.fmin, self.fmax = cfg.pitch.fmin, cfg.pitch.fmax
        self.tracker = pitch_mod.settings_for(cfg)
        hop = hop_length // c.upsample
        self.stft_hop, self.n_fft = hop, c.n_fft_factor * hop
        self.bins = self.n_fft // 2 + 1
        self.max_log_magnitude = c.max_log_magnitude
        # the sample frame 0's pitch is placed at (module docstring): where the tracker measured
        # it, or (causal) late enough that the source reads no pitch frame beyond `lookahead`
        self.lookahead = sf.lookahead if cfg.causal else 0
        if cfg.causal:
            self.source_anchor = float(hop_length - hop + self.n_fft - self.lookahead * hop_length)
        else:
            self.source_anchor = float(self.tracker.anchor_offset)
        # pitch frames before a sample's own frame that its f0 interpolates from
        self.source_context = max(0, math.ceil(self.source_anchor / hop_length))
        k_in = 7  # conv_in's kernel: padded k - 1 on the left (causal) or centred
        self.in_left = k_in - 1 if cfg.causal else 0
        self.conv_in = nn.Conv1d(
            cfg.latent_dim + PITCH_FEATURES, c.dim, k_in, padding=0 if cfg.causal else k_in // 2
        )
        self.up = (
            nn.ConvTranspose1d(c.dim, c.dim, 2 * c.upsample, c.upsample) if c.upsample > 1 else None
        )
        self.backbone = ConvNeXtStack(
            c.dim, c.intermediate_dim, c.kernel_size, c.layers, causal=cfg.causal
        )
        self.envelope = sf.envelope
        self.n_cep = sf.n_cepstrum if sf.envelope == "cepstrum" else 0
        if self.n_cep > self.bins:
            raise ConfigError(
                f"model.decoder.source_filter.n_cepstrum ({self.n_cep}) must not exceed the "
                f"STFT's {self.bins} bins"
            )
        # bins: harmonic log-magnitude + phase, noise log-magnitude (per bin);
        # cepstrum: harmonic cepstrum + phase residual (per bin), noise cepstrum;
        # then the free branch's log-magnitude + phase (per bin)
        b, nc = self.bins, self.n_cep
        self.sizes = (b, b, b, b, b) if not nc else (nc, b, nc, b, b)
        self.proj = nn.Linear(c.dim, sum(self.sizes))
        self.register_buffer("window", torch.hann_window(self.n_fft), persistent=False)
        # causal iSTFT: the steady-state overlap-add envelope sum_k w(j + k s)^2, j < s
        envelope = torch.hann_window(self.n_fft).square().view(-1, hop).sum(0)
        self.register_buffer("ola_envelope", envelope, persistent=False)
        self.noise = NoiseTable()
        with torch.no_grad():
            rms = cfg.target_rms
            # STFT -> scale every bin by m -> iSTFT scales a signal by m, and both sources have
            # unit RMS: a log-magnitude bias (or c0, the cepstrum's mean log-magnitude) of
            # log(level * rms) starts each at that level
            starts = [sum(self.sizes[:i]) for i in range(5)]
            self.proj.bias.zero_()
            self.proj.bias[starts[0] : starts[0] + (1 if nc else b)].fill_(
                math.log(sf.harmonic_level * rms)
            )
            self.proj.bias[starts[2] : starts[2] + (1 if nc else b)].fill_(
                math.log(sf.noise_level * rms)
            )
            # the free branch has random phases: Vocos' window algebra (model/istft_decoder.py)
            free = sf.free_level * rms * self.n_fft / math.sqrt(8 * hop / 3)
            self.proj.bias[starts[3] : starts[3] + b].fill_(math.log(free))
            if nc:  # the phase residual starts at zero: the pulses' coherent phase passes
                self.proj.weight[starts[1] : starts[1] + b].zero_()
        self.tanh = cfg.tanh_output
        self.output_gain = cfg.output_gain

    # ------------------------------------------------------------------ pieces
    def held_pitch(
        self, codes: torch.Tensor, start_f0: torch.Tensor | float = START_F0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, F) pitch codes -> (f0 Hz (B, F), unvoiced frames holding the last voiced value,
        starting from `start_f0`; voicing (B, F) float)."""
        f0, voiced = pitch_mod.dequantize(codes, self.fmin, self.fmax)
        return pitch_mod.hold_unvoiced(f0, voiced, start_f0), voiced.float()

    def sources(
        self,
        held_f0: torch.Tensor,
        voicing: torch.Tensor,
        length: int,
        phase0: torch.Tensor | None = None,
        noise_offset: torch.Tensor | None = None,
        before: int = 0,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Excitation for `length` samples from the start of frame `before` of (B, F) per-frame
        f0 and voicing (the `before` frames ahead of it only feed the interpolation).

        Returns:
            (pulses (B, length), noise (B, length), phase after the last sample (B,)).
        """
        offset = self.source_anchor - before * self.hop_length
        f0 = interpolate_frames(held_f0, self.hop_length, offset, length)
        v = interpolate_frames(voicing, self.hop_length, offset, length)
        pulses, end = harmonic_source(f0, v, phase0, self.sample_rate)
        if noise_offset is None:
            noise_offset = torch.zeros(f0.shape[0], dtype=torch.long, device=f0.device)
        noise = self.noise(noise_offset, length)
        return pulses, noise, end

    def _cepstrum_to_log_spectrum(self, c: torch.Tensor) -> torch.Tensor:
        """(B, n_cep, N) real cepstrum -> (B, bins, N) complex log-spectrum of the minimum-phase
        filter: real part log|H| = c0 + 2 sum c_n cos(w n), imaginary part its minimum phase
        -2 sum c_n sin(w n) (Oppenheim & Schafer, the folded cepstrum)."""
        folded = torch.cat([c[:, :1], 2 * c[:, 1:]], dim=1)
        return torch.fft.rfft(folded, n=self.n_fft, dim=1)

    def _stft(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T) -> (B, bins, N): centred frames, or (causal) frame j = samples [j s, j s +
        n_fft), N = (T - n_fft) / s + 1."""
        with torch.autocast(device_type=x.device.type, enabled=False):
            return torch.stft(
                x.float(), self.n_fft, self.stft_hop, self.n_fft, self.window,
                center=not self.causal, pad_mode="constant", return_complex=True,
            )  # fmt: skip

    def _istft(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """(B, bins, N) -> (B, length) audio: torch.istft (centred), or (causal) frame j's
        windowed inverse added to samples [j s, j s + n_fft), divided by the steady-state
        window envelope; length = N s."""
        with torch.autocast(device_type=spec.device.type, enabled=False):
            if not self.causal:
                return torch.istft(
                    spec, self.n_fft, self.stft_hop, self.n_fft, window=self.window,
                    center=True, length=length,
                )  # fmt: skip
            b, _, n = spec.shape
            s = self.stft_hop
            frames = torch.fft.irfft(spec, n=self.n_fft, dim=1) * self.window[:, None]
            total = (n - 1) * s + self.n_fft
            y = F.fold(frames, (1, total), (1, self.n_fft), stride=(1, s))  # (B, 1, 1, total)
            y = y.view(b, total)[:, : n * s].view(b, n, s) / self.ola_envelope
            return y.reshape(b, n * s)[:, :length]

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        z: torch.Tensor,
        return_features: bool = False,
        pitch: torch.Tensor | None = None,
        pitch_shift: float = 0.0,
        phase0: torch.Tensor | None = None,
        noise_offset: torch.Tensor | None = None,
        start_f0: torch.Tensor | float = START_F0,
        pitch_before: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Args:
            z: (B, D, F) quantized latents.
            pitch: (B, F) int64 pitch codes (pitch.py); required.
            pitch_shift: semitones applied to the source (0 = as transmitted).
            phase0: (B,) float64 source phase before the first sample (a stream's state).
            noise_offset: (B,) int64 position in the noise table of sample 0 (training
                draws it at random; decoding uses 0, a stream window its first sample).
            start_f0: the f0 held before the first frame given (a stream window: the frame
                before `pitch_before`).
            pitch_before: (B, P) pitch codes of the P frames before the first (a stream
                window: up to `source_context` of them, which the source interpolates from).

        Returns:
            waveform (B, 1, F * hop_length) [, features].
        """
        if pitch is None:
            raise ValueError("the source-filter decoder needs the pitch codes (pitch=...)")
        frames = z.shape[-1]
        if pitch.shape[-1] != frames:
            raise ValueError(f"{pitch.shape[-1]} pitch frames for {frames} latent frames")
        pitch = pitch.to(z.device)
        before = 0 if pitch_before is None else pitch_before.shape[-1]
        if before:
            pitch = torch.cat([pitch_before.to(pitch), pitch], dim=-1)
        held_all, voicing_all = self.held_pitch(pitch, start_f0)
        held_all = held_all * 2.0 ** (pitch_shift / 12.0)
        held, voicing = held_all[:, before:], voicing_all[:, before:]
        cond = torch.stack([torch.log2(held / 100.0), voicing], dim=1).to(z.dtype)  # (B, 2, F)
        h = torch.cat([z, cond], dim=1)
        h = self.conv_in(F.pad(h, (self.in_left, 0)) if self.in_left else h)
        if self.up is not None:  # (B, C, F) -> (B, C, F * u), the kernel's overhang trimmed
            u = self.upsample
            first = 0 if self.causal else u // 2  # causal: all of it on the right
            h = self.up(h)[..., first : first + frames * u]
        h = self.backbone(h)
        length = frames * self.hop_length
        span = length  # samples of source the STFT reads
        if self.causal:  # N frames of n_fft samples from j * s: n_fft - s past the end
            span += self.n_fft - self.stft_hop
        else:
            h = F.pad(h, (0, 1), mode="replicate")  # N + 1 centred frames -> N * hop samples
        pulses, noise, _ = self.sources(
            held_all, voicing_all, span, phase0, noise_offset, before=before
        )
        y = self.head(h, pulses, noise, length)
        if self.tanh:
            y = torch.tanh(y)
        if self.output_gain != 1.0:
            y = y * self.output_gain
        return (y, [h]) if return_features else y

    def head(
        self, h: torch.Tensor, pulses: torch.Tensor, noise: torch.Tensor, length: int
    ) -> torch.Tensor:
        """(B, C, N) features + (B, T) sources -> (B, 1, length) audio (T = length, or
        causal: length + n_fft - s)."""
        out = self.proj(h.transpose(1, 2)).transpose(1, 2).float()  # (B, sum(sizes), N)
        hm, hp, nm, fm, fp = out.split(self.sizes, dim=1)
        m = self.max_log_magnitude
        if self.n_cep:
            log_h = self._cepstrum_to_log_spectrum(hm)  # complex: log-magnitude + min. phase
            hm, hp = log_h.real, log_h.imag + hp
            nm = self._cepstrum_to_log_spectrum(nm).real
        harm = torch.exp(hm.clamp(max=m)) * torch.exp(1j * hp) * self._stft(pulses)
        nz = torch.exp(nm.clamp(max=m)) * self._stft(noise)
        free = torch.exp(fm.clamp(max=m)) * torch.exp(1j * fp)
        spec = harm + nz + free
        return self._istft(spec, length).unsqueeze(1)


class StreamSource:
    """The source state of one decode stream: each frame's held f0, and the source phase at
    the frame boundaries a window starts from, so windows decode what `forward` decodes.

    Args:
        decoder: the model's decoder.
        pitch_shift: semitones (as `forward`'s).
    """

    def __init__(self, decoder: SourceFilterDecoder, pitch_shift: float = 0.0):
        self.dec = decoder
        self.scale = 2.0 ** (pitch_shift / 12.0)
        self.codes = torch.zeros(1, 0, dtype=torch.long)
        self.held = torch.zeros(1, 0)  # unshifted, every frame so far
        self.phase_frame = 0  # self.phase is the phase after sample phase_frame * hop - 1
        self.phase = torch.zeros(1, dtype=torch.float64)

    def add(self, codes: torch.Tensor) -> None:
        """Append (k,) pitch codes of the next frames."""
        codes = codes.view(1, -1).long().cpu()
        start = self.held[:, -1] if self.held.shape[-1] else START_F0
        held, _ = self.dec.held_pitch(codes, start)
        self.codes = torch.cat([self.codes, codes], -1)
        self.held = torch.cat([self.held, held], -1)

    def window(self, start: int, stop: int) -> dict:
        """Keyword arguments for `forward` on latent frames [start, stop) (the frames the
        source reads at samples before stop * hop must have arrived: with the non-causal anchor
        start <= frames - 2 unless stop is the last frame)."""
        first = max(0, start - self.dec.source_context)  # the source interpolates from here
        return {
            "pitch": self.codes[:, start:stop],
            "pitch_before": self.codes[:, first:start],
            "phase0": self.phase_at(start),
            "noise_offset": torch.tensor([start * self.dec.hop_length]),
            "start_f0": self.held[:, first - 1] if first > 0 else START_F0,
        }

    def phase_at(self, frame: int) -> torch.Tensor:
        """(1,) float64 source phase after sample frame * hop - 1 (frames only move forward)."""
        p, hop = self.phase_frame, self.dec.hop_length
        if frame < p:
            raise ValueError(f"stream windows moved back from frame {p} to {frame}")
        if frame > p:
            # samples [p hop, frame hop) lie between the anchors (c + f hop) of frames lo .. hi
            c = self.dec.source_anchor
            lo = max(0, math.floor((p * hop - c) / hop))
            hi = math.floor((frame * hop - 1 - c) / hop) + 1
            vals = self.held[:, lo : hi + 1] * self.scale
            f0 = interpolate_frames(vals, hop, c + lo * hop - p * hop, (frame - p) * hop)
            inc = phase_increment(f0, self.dec.sample_rate)
            self.phase = torch.remainder(self.phase + inc.sum(-1), 2 * math.pi)
            self.phase_frame = frame
        return self.phase
