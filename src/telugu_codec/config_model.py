"""The model's configuration: the encoder, decoder, quantizer and pitch sections of
`config.Config` (nested dataclasses with their defaults; `config` loads, merges and checks them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


@dataclass
class SEANetConfig:
    """One side (encoder or decoder) of the SEANet convolutional stack.

    Defaults are chosen for one-thread CPU speed at 16 kHz (benchmarks/results_codec_speed.md):
    full residual stacks where the frame rate is low and parameters are cheap, one unit per
    stage where it is high and every activation costs a `sin` per sample.
    """

    channels: int = 32  # width of the first (encoder) / last (decoder) stage; doubles per stage
    max_channels: int = 1024  # cap on the per-stage width
    kernel_size: int = 7  # first conv of the encoder / first conv of the decoder
    last_kernel_size: int = 7  # last conv of the encoder / last conv of the decoder
    residual_kernel_size: int = 7
    dilations: tuple[int, ...] = (1, 3, 9)  # one residual unit per dilation (all stages)
    # per-stage dilations, stage 0 = the highest-rate stage (first in the encoder, last in the
    # decoder); () = `dilations` at every stage. Fewer units at high rates are much cheaper.
    stage_dilations: tuple[tuple[int, ...], ...] = ((1,), (1,), (1, 3), (1, 3, 9))
    # per-stage kernel of the residual units (same order); () = residual_kernel_size everywhere.
    # Short kernels where the rate is high (as EnCodec's 3), the full 7 where context is cheap.
    stage_kernel_sizes: tuple[int, ...] = (3, 3, 3, 7)
    # residual units at the frame rate at the widest width (end of the encoder, start of the
    # decoder): parameters that cost little compute there
    bottleneck_dilations: tuple[int, ...] = (1, 3)
    residual_compress: int = 2  # hidden width of a residual unit = channels // compress
    # depthwise dilated conv in residual units: 1/C of the MACs but PyTorch's CPU depthwise
    # kernels run far below peak; on the default model 15% faster with 5.4 M instead of 9.8 M
    # parameters, so off
    depthwise_residual: bool = False


@dataclass
class STFTEncoderConfig:
    """A frame-rate encoder: the power-law compressed complex STFT of the input (real and
    imaginary parts, so phase is kept) through a ConvNeXt stack; the mirror of `ISTFTConfig`.

    Like the iSTFT decoder it never runs a layer at the audio rate.
    """

    dim: int = 256
    intermediate_dim: int = 768
    layers: int = 8
    kernel_size: int = 7
    downsample: int = 1  # STFT frames per latent frame (STFT hop = hop_length / downsample)
    n_fft_factor: int = 4  # n_fft = factor x STFT hop
    compress: float = 0.3  # |S|^compress: the spectral magnitude's dynamic range compressed


@dataclass
class EncoderConfig(SEANetConfig):
    """The encoder: SEANet (`kind: seanet`, the inherited fields) or the STFT + ConvNeXt
    encoder (`kind: stft`, the `stft` fields)."""

    kind: str = "seanet"  # seanet | stft
    stft: STFTEncoderConfig = field(default_factory=STFTEncoderConfig)


@dataclass
class ISTFTConfig:
    """Vocos-style decoder head (Siuzdak 2023): a ConvNeXt backbone at the frame rate (or
    `upsample` x it) predicts log-magnitude and phase of an STFT that torch.istft inverts.

    No transposed convolutions at audio rate: all the compute runs at 50-200 frames/s, which
    makes it much cheaper per parameter on a CPU than the SEANet decoder (WavTokenizer and
    X-Codec2 decode tokens this way).
    """

    dim: int = 256  # backbone width
    intermediate_dim: int = 768  # ConvNeXt MLP width
    layers: int = 8
    kernel_size: int = 7  # depthwise conv of each ConvNeXt block
    upsample: int = 1  # STFT frames per latent frame (iSTFT hop = hop_length / upsample)
    n_fft_factor: int = 4  # n_fft = factor x iSTFT hop (Vocos: 4)
    max_log_magnitude: float = 4.6  # exp(4.6) ~ 100, Vocos' clip against overflow


@dataclass
class SourceFilterConfig:
    """The source-filter decoder's sources (`decoder.kind: source_filter`; its backbone and
    iSTFT are the `istft` fields). The head sums, per STFT bin, a complex filter on the STFT
    of a band-limited pulse train at the transmitted pitch (times voicing), a magnitude filter
    on white noise and a free iSTFT output; each starts at its `*_level` of the input's RMS.
    """

    harmonic_level: float = 0.9
    noise_level: float = 0.3
    free_level: float = 0.1  # the free (Vocos) branch: 10 % at the start
    # bins: the harmonic and noise filters are free per-bin log-magnitudes (and, harmonic, a
    # per-bin phase); cepstrum: each is a smooth envelope from `n_cepstrum` real cepstral
    # coefficients, the harmonic one with its minimum phase (a vocal tract's), plus a per-bin
    # phase residual that starts at zero
    envelope: str = "bins"  # bins | cepstrum
    n_cepstrum: int = 40
    # causal models (`model.causal`) only: latent frames of pitch the source may read ahead of
    # the output. 0 = none (the decoder adds no latency); each frame adds hop / sample_rate of
    # latency and brings the source's pitch that much closer in time to the tracker's estimate
    # (model/source_filter_decoder.py has the arithmetic)
    lookahead: int = 0


@dataclass
class DecoderConfig(SEANetConfig):
    """The decoder: the SEANet mirror of the encoder (`kind: seanet`, the fields inherited from
    SEANetConfig), a Vocos-style iSTFT decoder (`kind: istft`, the `istft` fields) or the
    pitch-driven source-filter decoder (`kind: source_filter`: the `istft` backbone plus the
    `source_filter` fields; needs `model.pitch.enabled`)."""

    kind: str = "seanet"  # seanet | istft | source_filter
    istft: ISTFTConfig = field(default_factory=ISTFTConfig)
    source_filter: SourceFilterConfig = field(default_factory=SourceFilterConfig)


@dataclass
class PitchConfig:
    """The pitch side channel (pitch.py): causal YIN per frame, one byte per frame in the
    bitstream (0 = unvoiced, 1..255 = log-F0 over fmin..fmax), 8 bits x frame rate (400 bit/s
    at 50 Hz) counted in the bitrate."""

    enabled: bool = False
    fmin: float = 50.0
    fmax: float = 500.0
    threshold: float = 0.15  # YIN's absolute threshold on the normalised difference
    voicing_threshold: float = 0.3  # voiced when the normalised difference dips below this
    silence_db: float = -50.0  # ... and the frame is louder than this (dBFS after normalising)
    zero: bool = False  # ablation: the decoder gets "unvoiced" everywhere (is pitch what helps?)


@dataclass
class QuantizerConfig:
    """Residual quantizer: a stack of `n_q` stages, each coding the residual of the previous ones.

    Three kinds (`kind`), all giving codes in [0, codebook_size) that the .tcc bitstream packs
    in ceil(log2 codebook_size) bits, and all trained with quantizer dropout (SoundStream):

    - ``ema``: codebooks of `codebook_size` vectors updated by exponential moving averages
      (SoundStream sec. 3.2, EnCodec), k-means++ initialisation on a buffer of latents,
      dead-code replacement from a buffer of recent residuals;
    - ``factorized``: DAC's factorised codes (Kumar et al. 2023 sec. 3.2): project to
      `factorized_dim` dimensions, L2-normalise, look up, project back; the codebook is learnt
      by the codebook + commitment losses; dead codes replaced as for ``ema``;
    - ``fsq``: finite scalar quantization (Mentzer et al. 2023): project to len(fsq_levels)
      dimensions, bound each one and round it to `fsq_levels[i]` values; no codebook at all.
      The levels default to the paper's choice for `codebook_size` (1024 -> 8,5,5,5 = 1000
      codes, so 2.3 % of the 10-bit alphabet is never used).
    """

    kind: str = "ema"  # ema | factorized | fsq
    n_q: int = 12  # maximum number of codebooks (12 x 10 bits x 50 Hz = 6 kbps)
    codebook_size: int = 1024  # code alphabet K per stage (bits per code = ceil(log2 K))
    dropout: float = 0.5  # fraction of a batch trained with a random number of codebooks
    commitment_weight: float = 1.0  # scales the commitment loss returned by the quantizer
    # -- ema
    decay: float = 0.99  # EMA decay of cluster sizes and sums
    epsilon: float = 1e-5  # Laplace smoothing of cluster sizes
    # -- ema and factorized: initialisation and dead codes
    kmeans_init: bool = True  # k-means++ on a buffer of latents before quantizing (ema only)
    kmeans_iters: int = 10
    init_vectors: float = 4.0  # latent vectors gathered before k-means, in multiples of K;
    # until then the quantizer passes latents through unquantized (a short warm-up)
    buffer_size: float = 4.0  # recent residual vectors kept per stage, in multiples of K
    # a code is dead when it was not chosen while this many vectors (in multiples of K) went
    # through its stage: a count of vectors, not of steps, so it means the same at any batch
    # size (a code of average usage is expected 8 times in 8 K vectors; P(0 uses) = e^-8)
    dead_code_window: float = 8.0  # 0 disables dead-code replacement
    # a re-seeded code's dead window grows this many times per re-seed (up to 3 re-seeds;
    # 1 = a fixed window): codes that die again right away stop churning
    reseed_backoff: float = 4.0
    replace_every: int = 10  # look for dead codes every this many training steps
    # -- factorized (DAC)
    factorized_dim: int = 8  # low-dimensional lookup space
    codebook_weight: float = 1.0  # weight of the codebook loss ||sg(z) - e||^2
    # -- fsq
    fsq_levels: tuple[int, ...] = ()  # () = the paper's levels for codebook_size
    # -- split (Mimi, Defossez et al. 2024 sec. 3.2): codebook 1 is a quantizer of its own (the
    # "semantic" one, the target of `loss.distill`), codebooks 2..n_q a residual quantizer in
    # parallel on the same latent; each has its own 1x1 input and output projection and the
    # outputs are summed (model/quantizer/split.py)
    split_first: bool = False


@dataclass
class ModelConfig:
    sample_rate: int = 16000
    strides: tuple[int, ...] = (2, 4, 5, 4)  # encoder downsampling; decoder uses the reverse
    # fold this many samples into channels before the first conv (hop = patch * prod(strides);
    # 2 halves the cost of the highest-rate stage)
    patch_size: int = 2
    latent_dim: int = 128
    causal: bool = False  # causal padding everywhere (streaming-capable)
    weight_norm: bool = True
    tanh_output: bool = False
    output_gain: float = 1.0  # fixed factor on the decoder output (1.0; tests use it to
    # induce an amplitude collapse)
    normalize: bool = True  # normalise input to target_rms and undo the gain after decoding
    target_rms: float = 0.158  # -16 dBFS RMS
    max_gain_db: float = 40.0  # never amplify quieter input by more than this
    # --- loudness normalisation kind (issue 13); `normalize: false` turns it off whatever this is
    # clip: one gain from the whole clip (looks ahead: not streamable); block: a causal gain per
    # block of `norm_block_frames` frames from a running level of the past only, ramped within
    # the block and sent in the bitstream (adds no latency); none: no normalisation
    normalization: str = "clip"
    norm_block_frames: int = 25  # block: frames per gain (25 x 20 ms = 0.5 s at 50 Hz)
    norm_time_constant: float = 3.0  # block: seconds of memory of the running level (EMA)
    norm_gate_db: float = -50.0  # block: blocks quieter than this (dBFS RMS) leave the level as is
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    pitch: PitchConfig = field(default_factory=PitchConfig)
