"""`sanitize`: tokens from anywhere (an LM, a file, a shard) -> codes a decoder can use.

Each problem found is an `Issue` (kind, count, what was done); then, by `repair`:

- ``special``: bos / eos / speech_start / speech_end ids. Removed in every mode.
- ``padding``: frames made only of pad (batch padding). Removed in every mode.
- ``pad``: a pad inside a frame that has codes. clamp: the stream's previous code (0 at the
  start); drop: the frame is removed.
- ``out_of_range``: a code outside 0..K-1, or an id of another stream. clamp: clipped into
  the stream's range; drop: the frame is removed.
- ``partial_frame``: a flat sequence that ends inside a frame, or delay steps cut off before
  every stream of a frame came. clamp and drop: those frames are removed.
- ``wrong_n_q``: more codebooks than the model has. clamp and drop: the extra ones removed.
- ``no_pitch``: a pitch model given codes without their pitch channel. clamp and drop:
  decoded unvoiced.

Framing (specials, padding frames) is what LM output normally carries, so it is removed and
reported in every mode; everything else is damage, which ``refuse`` turns into a one-line
`CodecError`. Nothing here raises anything else for any input array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import CodecError
from .layouts import get_layout
from .vocab import PITCH_STREAM, SPECIAL_NAMES, VocabSpec

REPAIRS = ("clamp", "drop", "refuse")
PITCH_MAX = 255  # pitch.PITCH_LEVELS: codes 0 (unvoiced) .. 255
PAD_SENTINEL = np.iinfo(np.int64).min  # a pad position, for sanitize_codes
DAMAGE = ("pad", "out_of_range", "partial_frame", "wrong_n_q", "no_pitch")


@dataclass
class Issue:
    """One kind of problem: how many tokens / frames / rows it touched, and what was done."""

    kind: str
    count: int
    action: str

    def line(self) -> str:
        return f"{self.kind}: {self.count} ({self.action})"


@dataclass
class Sanitized:
    """Codes ready for `Codec.decode_codes`.

    Attributes:
        codes: (n_q, F) int64 in 0..K-1.
        pitch: (F,) int64 in 0..255 for a pitch model, else None.
        issues: what was found and done, in the order handled.
    """

    codes: np.ndarray
    pitch: np.ndarray | None
    issues: list[Issue] = field(default_factory=list)

    def report(self) -> list[str]:
        return [i.line() for i in self.issues] or ["clean: nothing to repair"]


def _check_repair(repair: str) -> None:
    if repair not in REPAIRS:
        raise CodecError(f"--repair must be one of {', '.join(REPAIRS)}, got '{repair}'")


def _as_int_array(tokens: object, what: str) -> np.ndarray:
    try:
        a = np.asarray(tokens)
    except (ValueError, TypeError) as e:
        raise CodecError(f"{what} is not an array of token ids ({e})") from e
    if a.dtype == bool or not (np.issubdtype(a.dtype, np.integer) or a.dtype.kind == "f"):
        raise CodecError(f"{what} must hold integer token ids, got dtype {a.dtype}")
    if a.dtype.kind == "f":
        if not np.isfinite(a).all() or (a != np.round(a)).any():
            raise CodecError(f"{what} holds non-integer values; token ids are whole numbers")
    if a.size == 0:
        raise CodecError(f"{what} is empty: there is nothing to decode")
    return a.astype(np.int64)


class _Fixer:
    """Applies one repair mode and collects the issues."""

    def __init__(self, repair: str):
        _check_repair(repair)
        self.repair = repair
        self.issues: list[Issue] = []

    def found(self, kind: str, count: int, action: str, fix: str | None = None) -> None:
        """Record `count` cases of `kind`; `action` is done (or, for damage, `fix` under
        refuse it is an error)."""
        if count <= 0:
            return
        if kind in DAMAGE and self.repair == "refuse":
            raise CodecError(
                f"tokens refused: {count} {kind.replace('_', ' ')} case(s); pass --repair clamp "
                "or --repair drop to repair them"
            )
        self.issues.append(Issue(kind, int(count), action))


def _fix_codes(
    codes: np.ndarray, bad: np.ndarray, pad: np.ndarray, top: np.ndarray, fx: _Fixer
) -> np.ndarray:
    """(S, F) codes with out-of-range (`bad`) and pad (`pad`) positions -> repaired codes;
    `top` (S, 1): each stream's largest code.

    Frames made only of pad are removed; the rest follows `fx.repair`."""
    all_pad = pad.all(axis=0)
    fx.found("padding", int(all_pad.sum()), "frames removed")
    codes, bad, pad = codes[:, ~all_pad], bad[:, ~all_pad], pad[:, ~all_pad]
    if fx.repair == "drop":
        fx.found("pad", int(pad.sum()), "frames removed")
        fx.found("out_of_range", int(bad.sum()), "frames removed")
        keep = ~(bad | pad).any(axis=0)
        return codes[:, keep]
    fx.found("pad", int(pad.sum()), "previous frame's code used")
    fx.found("out_of_range", int(bad.sum()), "clipped into the stream's range")
    codes = np.clip(codes, 0, top)
    for k, t in zip(*np.nonzero(pad)):  # in time order per stream: holds carry forward
        codes[k, t] = codes[k, t - 1] if t > 0 else 0
    return codes


def sanitize_codes(
    codes: object,
    max_n_q: int,
    num_codes: int,
    repair: str = "refuse",
    pitch: object | None = None,
    has_pitch: bool = False,
    pad: int | None = None,
) -> Sanitized:
    """Raw codes (S, F) (or (F,) for one codebook) -> `Sanitized`.

    Args:
        codes: integer codes, stream first.
        max_n_q: codebooks the model has (more rows: ``wrong_n_q``).
        num_codes: K, codes per codebook.
        repair: ``clamp``, ``drop`` or ``refuse`` (module docstring).
        pitch: (F,) pitch codes, for a model with a pitch channel.
        has_pitch: the model needs a pitch channel.
        pad: the pad value (default K, MusicGen's convention).
    """
    fx = _Fixer(repair)
    a = _as_int_array(codes, "codes")
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise CodecError(f"codes must be shaped (n_q, frames), got {a.shape}")
    if a.shape[0] > max_n_q:
        fx.found("wrong_n_q", a.shape[0] - max_n_q, f"codebooks beyond {max_n_q} removed")
        a = a[:max_n_q]
    p = None
    if has_pitch:
        if pitch is None:
            fx.found("no_pitch", a.shape[1], "frames decoded unvoiced")
            p = np.zeros(a.shape[1], dtype=np.int64)
        else:
            p = _as_int_array(pitch, "pitch").reshape(-1)
            if p.size != a.shape[1]:
                raise CodecError(f"{p.size} pitch codes for {a.shape[1]} frames")
    pad = num_codes if pad is None else int(pad)
    is_pad = a == pad
    bad = ((a < 0) | (a >= num_codes)) & ~is_pad
    top = np.full((a.shape[0], 1), num_codes - 1)
    if p is not None:  # the pitch channel rides along as one more stream
        p_pad = p == pad
        a = np.concatenate([a, p[None]])
        is_pad = np.concatenate([is_pad, p_pad[None]])
        bad = np.concatenate([bad, (((p < 0) | (p > PITCH_MAX)) & ~p_pad)[None]])
        top = np.concatenate([top, [[PITCH_MAX]]])
        fixed = _fix_codes(a, bad, is_pad, top, fx)
        codes_out, p = fixed[:-1], fixed[-1]
    else:
        codes_out = _fix_codes(a, bad, is_pad, top, fx)
    if codes_out.shape[1] == 0:
        raise CodecError("no frame is left to decode after removing the bad ones")
    return Sanitized(codes_out, p, fx.issues)


def sanitize_ids(
    ids: object,
    vocab: VocabSpec,
    layout: str = "flatten",
    repair: str = "refuse",
    max_n_q: int | None = None,
) -> Sanitized:
    """LM token ids in `layout` (vocab offsets included) -> `Sanitized` raw codes.

    Args:
        ids: ``flatten``: (N,); ``delay``: (S, T); ``parallel``: (F, S).
        vocab: the spec the ids were made with.
        layout: ``flatten``, ``delay`` or ``parallel``.
        repair: ``clamp``, ``drop`` or ``refuse``.
        max_n_q: the decoding model's codebooks (default the vocab's).
    """
    fx = _Fixer(repair)
    a = _as_int_array(ids, "token ids")
    lay = get_layout(layout)
    s = vocab.streams
    specials = [vocab.special[n] for n in SPECIAL_NAMES if n != "pad"]
    pad_id = vocab.special["pad"]
    if layout == "flatten":
        flat = a.reshape(-1)
        is_special = np.isin(flat, specials)
        fx.found("special", int(is_special.sum()), "removed")
        flat = flat[~is_special]
        extra = flat.size % s
        fx.found("partial_frame", extra, "partial last frame removed")
        flat = flat[: flat.size - extra]
        if flat.size == 0:
            raise CodecError("no whole frame of tokens to decode")
        grid = lay.invert(flat, s)
    else:
        want = (s, None) if layout == "delay" else (None, s)
        axis = 0 if layout == "delay" else 1
        if a.ndim != 2 or a.shape[axis] != s:
            raise CodecError(
                f"{layout} tokens must be shaped {tuple('T' if w is None else w for w in want)} "
                f"for {s} streams, got {a.shape}"
            )
        is_special = np.isin(a, specials)
        fx.found("special", int(is_special.sum()), "replaced by pad")
        a = np.where(is_special, pad_id, a)
        if layout == "delay":  # frames cut off inside the delay's last S - 1 steps
            tail = a[0, max(a.shape[1] - s + 1, 0) :]
            fx.found("partial_frame", int((tail != pad_id).sum()), "cut-off frames removed")
        grid = lay.invert(a, s)
    # ids -> codes, stream by stream; a pad becomes a sentinel no code can equal
    offsets = np.asarray(vocab.offsets)[:, None]
    codes = np.where(grid == pad_id, PAD_SENTINEL, grid - offsets)
    pitch = None
    if vocab.stream_names[-1] == PITCH_STREAM:
        pitch, codes = codes[-1], codes[:-1]
    out = sanitize_codes(
        codes,
        max_n_q if max_n_q is not None else vocab.n_q,
        vocab.codebook_size,
        repair,
        pitch=pitch,
        has_pitch=pitch is not None,
        pad=PAD_SENTINEL,
    )
    out.issues = fx.issues + out.issues
    return out
