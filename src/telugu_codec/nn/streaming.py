"""Streaming state that lives in the layers (after moshi's `StreamingModule`).

A `StreamingModule` keeps, while a stream is open, what its next call needs from the past: a
causal convolution its last input samples, `(B, C_in, context)`. Its normal `forward` is the
only forward: it reads and updates that state when there is one, and pads with zeros when
there is none. `streaming(model, batch_size)` opens a stream on every such layer under `model`
and closes it on exit:

    with streaming(codec.encoder, batch_size=3) as state:
        z1 = codec.encoder(x[..., :320])     # (3, 1, 320) -> (3, D, 1): three streams at once
        z2 = codec.encoder(x[..., 320:960])  # continues them

A stream that must outlive the block (a `StreamEncoder` between pushes, an exported step
graph) keeps the returned `StreamState` and opens the block again with `state=`; between the
blocks the layers are stateless, so other streams and offline calls can use the model.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import CodecError


class StreamingModule(nn.Module):
    """A layer with state between calls while streaming (see the module docstring).

    Subclasses implement `stream_context()` (the input samples of left context they keep, 0 for
    none) and read `self.stream_state` in `forward`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stream_state: torch.Tensor | None = None  # (B, C_in, context) while streaming

    def stream_context(self) -> int:
        """Input samples of left context kept between calls. Raises CodecError when the layer
        cannot stream with state (a centred convolution)."""
        raise NotImplementedError

    def stream_channels(self) -> int:
        """Input channels of the state."""
        raise NotImplementedError

    def take_context(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, T) new input -> (B, C_in, context + T): the kept context in front of it;
        the last `context` samples become the state of the next call."""
        state = self.stream_state
        if state is None:
            raise RuntimeError("take_context outside a stream")
        if state.shape[-1] == 0:
            return x
        x = torch.cat([state.to(x.dtype), x], dim=-1)
        self.stream_state = x[..., x.shape[-1] - state.shape[-1] :].contiguous()
        return x


@dataclass
class StreamState:
    """The states of a stream's layers, in `model.modules()` order, between calls.

    Attributes:
        tensors: one (B, C, context) tensor per StreamingModule (width 0 where it keeps none).
        batch_size: streams in the batch.
    """

    tensors: list[torch.Tensor]
    batch_size: int

    def flat(self) -> list[torch.Tensor]:
        """The non-empty tensors (what an exported step graph takes and returns)."""
        return [t for t in self.tensors if t.shape[-1] > 0]

    def with_flat(self, flat: list[torch.Tensor]) -> StreamState:
        """A state whose non-empty tensors are `flat` (the inverse of `flat`)."""
        it = iter(flat)
        return StreamState(
            [t if t.shape[-1] == 0 else next(it) for t in self.tensors], self.batch_size
        )


def streaming_layers(model: nn.Module) -> list[StreamingModule]:
    """The StreamingModules under `model` (itself included), in `modules()` order."""
    return [m for m in model.modules() if isinstance(m, StreamingModule)]


def initial_state(
    model: nn.Module,
    batch_size: int = 1,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> StreamState:
    """Zeros for every layer: a stream starts as the offline forward, after zero padding.

    Raises CodecError when a layer cannot stream with state (a non-causal model).
    """
    if batch_size < 1:
        raise CodecError(f"batch_size must be at least 1, got {batch_size}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else "cpu"
    tensors = [
        torch.zeros(batch_size, m.stream_channels(), m.stream_context(), device=device, dtype=dtype)
        for m in streaming_layers(model)
    ]
    return StreamState(tensors, batch_size)


@contextmanager
def streaming(
    model: nn.Module, batch_size: int = 1, state: StreamState | None = None
) -> Iterator[StreamState]:
    """Open a stream on every StreamingModule under `model` for the block.

    Args:
        model: e.g. a causal encoder or decoder, or a whole `Codec`.
        batch_size: streams run side by side (ignored when `state` is given).
        state: continue this stream (from an earlier block); default: a new one (zeros).

    Yields:
        the StreamState, updated in place on exit with the layers' last states.
    """
    layers = streaming_layers(model)
    if state is None:
        state = initial_state(model, batch_size)
    if len(state.tensors) != len(layers):
        raise CodecError(f"a stream state of {len(state.tensors)} layers for {len(layers)}")
    if any(m.stream_state is not None for m in layers):
        raise CodecError("a stream is already open on this model")
    for m, t in zip(layers, state.tensors):
        m.stream_state = t
    try:
        yield state
    finally:
        for i, m in enumerate(layers):
            state.tensors[i] = m.stream_state
            m.stream_state = None
