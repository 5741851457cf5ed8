"""The vocab spec: how a codec's streams and a few special tokens map to LM token ids.

Stream k (codebook k, then the pitch channel when the model has one) owns the ids
``offsets[k] .. offsets[k] + sizes[k] - 1``; code c of stream k is id ``offsets[k] + c``. After
the streams come the special tokens, in `SPECIAL_NAMES` order: ``pad`` (the delay layout's
filler and batch padding), ``bos`` / ``eos`` (sequence start and end) and ``speech_start`` /
``speech_end`` (brackets around speech inside a text sequence). ``base`` moves everything up so
that the ids follow an existing text tokenizer's (``base = len(text_tokenizer)``).

The JSON form (`to_json`, written by ``telugu-codec tokens-vocab``) also carries the codec hash,
frame rate, n_q and K, and a token-string pattern (``<|s{stream}_{code}|>``) with the special
tokens' strings, so extending a text tokenizer is ``tokenizer.add_tokens(spec.token_strings())``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import CodecError

VOCAB_FORMAT = "telugu-codec-vocab"
VOCAB_VERSION = 1
SPECIAL_NAMES = ("pad", "bos", "eos", "speech_start", "speech_end")
PATTERN = "<|s{stream}_{code}|>"
PITCH_STREAM = "pitch"


@dataclass
class VocabSpec:
    """Token ids of a codec's streams and special tokens (module docstring).

    Attributes:
        stream_names: ``q0 .. q{n_q-1}`` then ``pitch`` when present.
        sizes: ids per stream (K for codebooks, 256 for the pitch channel).
        base: the first id (0, or the size of the text vocab being extended).
        codec_hash, frame_rate, n_q, codebook_size: the codec the ids are for.
    """

    stream_names: list[str]
    sizes: list[int]
    base: int = 0
    codec_hash: str = ""
    frame_rate: float = 0.0
    n_q: int = 0
    codebook_size: int = 0
    pattern: str = PATTERN
    special_strings: dict[str, str] = field(
        default_factory=lambda: {n: f"<|speech_{n}|>" if "speech" not in n else f"<|{n}|>"
                                 for n in SPECIAL_NAMES}
    )  # fmt: skip

    def __post_init__(self) -> None:
        if len(self.stream_names) != len(self.sizes) or not self.sizes:
            raise CodecError("a vocab needs one size per stream, and at least one stream")
        if any(s < 1 for s in self.sizes) or self.base < 0:
            raise CodecError("vocab sizes must be positive and the base non-negative")

    @property
    def streams(self) -> int:
        return len(self.sizes)

    @property
    def offsets(self) -> list[int]:
        """First id of each stream."""
        return [self.base + int(sum(self.sizes[:k])) for k in range(self.streams)]

    @property
    def special(self) -> dict[str, int]:
        """Special token name -> id (after every stream's ids)."""
        start = self.base + int(sum(self.sizes))
        return {name: start + i for i, name in enumerate(SPECIAL_NAMES)}

    @property
    def size(self) -> int:
        """Ids this spec uses, `base` included (the LM's new vocab size)."""
        return self.base + int(sum(self.sizes)) + len(SPECIAL_NAMES)

    def to_ids(self, codes: np.ndarray) -> np.ndarray:
        """(S, ...) raw codes, stream first -> the same shape of ids (int64).

        Raises:
            CodecError: wrong stream count or a code outside its stream's range.
        """
        codes = np.asarray(codes, dtype=np.int64)
        if codes.shape[0] != self.streams:
            raise CodecError(f"codes have {codes.shape[0]} streams, the vocab {self.streams}")
        sizes = np.asarray(self.sizes).reshape((-1,) + (1,) * (codes.ndim - 1))
        if codes.size and ((codes < 0).any() or (codes >= sizes).any()):
            raise CodecError("a code is outside its stream's range; sanitize the codes first")
        offsets = np.asarray(self.offsets).reshape(sizes.shape)
        return codes + offsets

    def stream_of(self, ids: np.ndarray) -> np.ndarray:
        """Ids (any shape) -> the stream each belongs to; -1 for specials and foreign ids."""
        ids = np.asarray(ids, dtype=np.int64)
        edges = np.asarray(self.offsets + [self.offsets[-1] + self.sizes[-1]])
        k = np.searchsorted(edges, ids, side="right") - 1
        return np.where((k >= 0) & (k < self.streams), k, -1)

    def from_ids(self, ids: np.ndarray) -> np.ndarray:
        """(S, ...) ids, stream first -> raw codes (exact inverse of `to_ids`).

        Raises:
            CodecError: an id that is not a code of the stream it stands in.
        """
        ids = np.asarray(ids, dtype=np.int64)
        if ids.shape[0] != self.streams:
            raise CodecError(f"ids have {ids.shape[0]} streams, the vocab {self.streams}")
        want = np.arange(self.streams).reshape((-1,) + (1,) * (ids.ndim - 1))
        if ids.size and (self.stream_of(ids) != want).any():
            raise CodecError("an id is not a code of its stream; sanitize the tokens first")
        return ids - np.asarray(self.offsets).reshape(want.shape)

    def token_strings(self) -> list[str]:
        """Every id's string, in id order from `base` (to add to a text tokenizer)."""
        out = [
            self.pattern.format(stream=k, code=c)
            for k in range(self.streams)
            for c in range(self.sizes[k])
        ]
        return out + [self.special_strings[n] for n in SPECIAL_NAMES]

    def to_json(self) -> str:
        d = {"format": VOCAB_FORMAT, "version": VOCAB_VERSION} | asdict(self)
        d |= {"offsets": self.offsets, "special": self.special, "size": self.size}
        return json.dumps(d, indent=1)

    @classmethod
    def from_json(cls, text: str) -> VocabSpec:
        """Parse `to_json`'s output. Raises CodecError for anything else."""
        try:
            d = json.loads(text)
            if d.get("format") != VOCAB_FORMAT:
                raise ValueError("not a telugu-codec vocab spec")
            if int(d.get("version", 0)) > VOCAB_VERSION:
                raise ValueError(f"vocab version {d['version']} is newer than this telugu-codec")
            keys = ("stream_names", "sizes", "base", "codec_hash", "frame_rate", "n_q")
            strings = d.get("special_strings") or cls.default_strings()
            spec = cls(**{k: d[k] for k in keys}, codebook_size=d["codebook_size"],
                       pattern=d.get("pattern", PATTERN), special_strings=strings)  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise CodecError(f"not a usable vocab spec: {e}") from e
        if d.get("offsets") not in (None, spec.offsets) or d.get("special") not in (
            None,
            spec.special,
        ):
            raise CodecError("vocab spec offsets or special ids disagree with its sizes")
        return spec

    @staticmethod
    def default_strings() -> dict[str, str]:
        return VocabSpec(["q0"], [1]).special_strings

    @classmethod
    def load(cls, path: str | Path) -> VocabSpec:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise CodecError(f"cannot read vocab spec {path}: {e}") from e
        return cls.from_json(text)


def vocab_for(
    n_q: int,
    codebook_size: int,
    pitch_levels: int | None = None,
    base: int = 0,
    codec_hash: str = "",
    frame_rate: float = 0.0,
) -> VocabSpec:
    """The vocab of `n_q` codebooks of K codes (plus a pitch stream of `pitch_levels` + 1
    codes when given)."""
    names = [f"q{k}" for k in range(n_q)]
    sizes = [codebook_size] * n_q
    if pitch_levels is not None:
        names.append(PITCH_STREAM)
        sizes.append(pitch_levels + 1)
    return VocabSpec(names, sizes, base, codec_hash, frame_rate, n_q, codebook_size)
