"""ONNX export: the encoder, the decoder and (causal models) their streaming steps.

    export_onnx(codec, "onnx/")   # or: telugu-codec export --onnx onnx/ --checkpoint CKPT

writes into the folder:

    encoder.onnx       audio (1, 1, F * hop) float32 -> codes (1, n_q, F) int64
    decoder.onnx       codes (1, n_q, F) int64 -> audio (1, 1, F * hop)
    encoder_step.onnx  audio (1, 1, k * hop), state_0 .. -> codes (1, n_q, k), new_state_0 ..
    decoder_step.onnx  codes (1, n_q, k), state_0 .. -> audio (1, 1, k * hop), new_state_0 ..
    export.json        rates, n_q, state names and shapes (start them at zeros), normalisation

(the step graphs only for causal models). The graphs hold the convolutional networks and the
quantizer; the loudness gain stays outside, a few lines of arithmetic described in export.json
(model/loudness.py): multiply the input by the gain before `encoder*`, divide the output of
`decoder*` by it. Weight norm is folded into the exported weights. The graphs are traced for a
fixed n_q (default: all codebooks); export again with `n_q` for fewer.

Exported with `torch.onnx.export(dynamo=True)` (needs `onnx` and `onnxscript`); tests compare
onnxruntime with PyTorch within 1e-4.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from ..bitstream import GAIN_STEP_DB
from ..errors import CodecError
from ..nn.streaming import StreamState, initial_state, streaming

OPSET = 18


class _Encoder(nn.Module):
    """audio [, flat state] -> codes [, new flat state]: the model's own forward, with its
    layers' stream state passed in and out (nn/streaming.py) for a step graph."""

    def __init__(self, codec: nn.Module, n_q: int, stateful: bool):
        super().__init__()
        self.encoder, self.quantizer, self.n_q = codec.encoder, codec.quantizer, n_q
        self.state: StreamState | None = initial_state(codec.encoder) if stateful else None

    def forward(self, audio: torch.Tensor, states: list[torch.Tensor] | None = None):
        if self.state is None:
            return self.quantizer.encode(self.encoder(audio), self.n_q)
        state = self.state.with_flat(list(states or []))
        with streaming(self.encoder, state=state):
            z = self.encoder(audio)
        return (self.quantizer.encode(z, self.n_q), *state.flat())


class _Decoder(nn.Module):
    """codes [, flat state] -> audio [, new flat state] (see _Encoder)."""

    def __init__(self, codec: nn.Module, stateful: bool):
        super().__init__()
        self.decoder, self.quantizer = codec.decoder, codec.quantizer
        self.state: StreamState | None = initial_state(codec.decoder) if stateful else None

    def forward(self, codes: torch.Tensor, states: list[torch.Tensor] | None = None):
        z = self.quantizer.decode(codes)
        if self.state is None:
            return self.decoder(z)
        state = self.state.with_flat(list(states or []))
        with streaming(self.decoder, state=state):
            y = self.decoder(z)
        return (y, *state.flat())


def _export(
    module: nn.Module,
    args: tuple,
    path: Path,
    inputs: list[str],
    outputs: list[str],
    time_axis: dict[str, int],
    dynamo: bool,
) -> None:
    """Export `module(*args)`; `time_axis` maps each input with a variable length to its hop."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            frames = torch.export.Dim("frames", min=1, max=1 << 20)
            dyn: dict = {
                k: {2: hop * frames if hop > 1 else frames} for k, hop in time_axis.items()
            }
            if len(args) > 1:
                dyn["states"] = [None] * len(args[1])
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=dyn,
                opset_version=OPSET,
                external_data=False,
                verbose=False,
            )
            program.save(str(path))
        else:  # the TorchScript exporter: deprecated in torch 2.9+, 20x faster to export
            axes = {k: {2: "time"} for k in time_axis} | {outputs[0]: {2: "time_out"}}
            torch.onnx.export(
                module,
                args,
                str(path),
                dynamo=False,
                input_names=inputs,
                output_names=outputs,
                dynamic_axes=axes,
                opset_version=OPSET,
            )


PARTS = ("encoder", "decoder", "encoder_step", "decoder_step")


def export_onnx(
    codec: nn.Module,
    out_dir: str | Path,
    n_q: int | None = None,
    parts: tuple[str, ...] = PARTS,
    dynamo: bool = True,
) -> dict:
    """Write the ONNX graphs and export.json into `out_dir`; returns the export.json content.

    Args:
        codec: the model, on the CPU. It is left unchanged: the graphs are traced from a copy
            with weight norm folded (`Codec.remove_weight_norm`); the step graphs run the
            model's own forward with its layers' stream state as inputs and outputs.
        n_q: codebooks the graphs produce / take (default all).
        parts: which graphs (the step graphs exist for causal models only).
        dynamo: torch.export-based exporter (default, needs onnxscript); False uses the older
            TorchScript exporter.
    """
    try:
        import onnx  # noqa: F401

        if dynamo:
            import onnxscript  # noqa: F401
    except ImportError as e:
        raise CodecError(
            "ONNX export needs the onnx extra: pip install 'telugu-codec[onnx]'"
        ) from e
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise CodecError(f"unknown ONNX parts {sorted(unknown)}; choose from {PARTS}")
    n_q = codec.check_n_q(n_q)
    if next(codec.parameters()).device.type != "cpu":
        raise CodecError("export a codec on the CPU: Codec.load(path, device='cpu')")
    copy = type(codec)(codec.cfg, codec.config)  # not deepcopy: it shares parametrized classes
    copy.load_state_dict(codec.state_dict())
    copy._hash = codec.model_hash
    codec = copy.eval().remove_weight_norm()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hop = codec.hop_length
    meta: dict = {
        "model_hash": codec.model_hash,
        "sample_rate": codec.sample_rate,
        "hop_length": hop,
        "frame_rate": codec.frame_rate,
        "n_q": n_q,
        "codebook_size": codec.codebook_size,
        "causal": codec.cfg.causal,
        "opset": OPSET,
        "normalization": {
            "kind": codec.normalization,
            "target_rms": codec.cfg.target_rms,
            "max_gain_db": codec.cfg.max_gain_db,
            "block_frames": codec.cfg.norm_block_frames,
            "time_constant_s": codec.cfg.norm_time_constant,
            "gate_db": codec.cfg.norm_gate_db,
            "gain_step_db": GAIN_STEP_DB,
        },
        "files": {},
    }
    with torch.no_grad():
        audio = torch.randn(1, 1, 4 * hop) * 0.1
        codes = _Encoder(codec, n_q, stateful=False)(audio)
        for part in parts:
            step = part.endswith("_step")
            if step and not codec.cfg.causal:
                continue  # a non-causal model has no streaming state to export
            if part.startswith("encoder"):
                module: nn.Module = _Encoder(codec, n_q, stateful=step)
                first, x, last, axis = "audio", audio, "codes", hop
            else:
                module = _Decoder(codec, stateful=step)
                first, x, last, axis = "codes", codes, "audio", 1
            states = module.state.flat() if step else []
            names = [f"state_{i}" for i in range(len(states))]
            new = [f"new_state_{i}" for i in range(len(states))]
            args = (x, states) if step else (x,)
            path = out / f"{part}.onnx"
            _export(module, args, path, [first, *names], [last, *new], {first: axis}, dynamo)
            meta["files"][part] = {
                "file": path.name,
                "inputs": [first, *names],
                "outputs": [last, *new],
                "states": {n: list(s.shape) for n, s in zip(names, states)},
            }
    (out / "export.json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
