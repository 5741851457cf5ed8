"""tokens/sanitize.py: each problem reported, then repaired (clamp, drop) or refused."""

from __future__ import annotations

import numpy as np
import pytest

from telugu_codec.errors import CodecError
from telugu_codec.tokens.layouts import delay, flatten, parallel
from telugu_codec.tokens.sanitize import sanitize_codes, sanitize_ids
from telugu_codec.tokens.vocab import vocab_for

K = 64


def codes(n_q: int = 3, frames: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, K, (n_q, frames))


def kinds(s) -> dict[str, int]:
    return {i.kind: i.count for i in s.issues}


def test_clean_codes_pass_unchanged():
    c = codes()
    s = sanitize_codes(c, 3, K, "refuse")
    np.testing.assert_array_equal(s.codes, c)
    assert s.issues == [] and s.report() == ["clean: nothing to repair"]


def test_out_of_range_clamped_dropped_or_refused():
    c = codes()
    c[0, 2], c[1, 4] = K + 5, -3
    s = sanitize_codes(c, 3, K, "clamp")
    assert kinds(s) == {"out_of_range": 2}
    assert s.codes[0, 2] == K - 1 and s.codes[1, 4] == 0 and s.codes.shape == (3, 6)
    d = sanitize_codes(c, 3, K, "drop")
    np.testing.assert_array_equal(d.codes, np.delete(c, [2, 4], axis=1))
    with pytest.raises(CodecError, match="2 out of range"):
        sanitize_codes(c, 3, K, "refuse")


def test_pad_frames_removed_in_every_mode_pads_inside_frames_repaired():
    c = codes()
    c[:, -2:] = K  # two frames of batch padding (pad = K)
    for mode in ("clamp", "drop", "refuse"):
        s = sanitize_codes(c, 3, K, mode)
        assert kinds(s) == {"padding": 2}
        np.testing.assert_array_equal(s.codes, c[:, :4])
    c[1, 1] = K  # a pad inside a frame with codes
    s = sanitize_codes(c, 3, K, "clamp")
    assert s.codes[1, 1] == c[1, 0] and kinds(s) == {"padding": 2, "pad": 1}
    assert sanitize_codes(c, 3, K, "drop").codes.shape == (3, 3)
    with pytest.raises(CodecError, match="1 pad"):
        sanitize_codes(c, 3, K, "refuse")


def test_wrong_n_q_extra_codebooks_removed_or_refused():
    c = codes(5)
    for mode in ("clamp", "drop"):
        s = sanitize_codes(c, 3, K, mode)
        assert kinds(s) == {"wrong_n_q": 2}
        np.testing.assert_array_equal(s.codes, c[:3])
    with pytest.raises(CodecError, match="wrong n q"):
        sanitize_codes(c, 3, K, "refuse")
    np.testing.assert_array_equal(sanitize_codes(c[:2], 3, K).codes, c[:2])  # fewer: fine


def test_pitch_model_without_pitch_decodes_unvoiced_or_refuses():
    s = sanitize_codes(codes(), 3, K, "clamp", has_pitch=True)
    assert kinds(s) == {"no_pitch": 6} and (s.pitch == 0).all()
    with pytest.raises(CodecError, match="no pitch"):
        sanitize_codes(codes(), 3, K, "refuse", has_pitch=True)
    p = np.array([0, 10, 300, 5, 6, 7])  # 300 is beyond the 0..255 pitch codes
    s = sanitize_codes(codes(), 3, K, "clamp", pitch=p, has_pitch=True)
    assert s.pitch.tolist() == [0, 10, 255, 5, 6, 7] and kinds(s) == {"out_of_range": 1}


def test_not_tokens_at_all_is_a_one_line_error():
    for bad, match in [
        (np.zeros((0, 3), np.int64), "empty"),
        (np.array([["a", "b"]]), "integer"),
        (np.array([[0.5, 1.0]]), "non-integer"),
        (np.zeros((2, 2, 2), np.int64), "shaped"),
        (np.full((2, 3), K), "no frame is left"),
    ]:
        with pytest.raises(CodecError, match=match):
            sanitize_codes(bad, 3, K, "clamp")
    with pytest.raises(CodecError, match="--repair"):
        sanitize_codes(codes(), 3, K, "fix-it")


def test_random_arrays_never_raise_anything_but_codec_error():
    rng = np.random.default_rng(1)
    for i in range(300):
        shape = tuple(rng.integers(0, 5, rng.integers(1, 4)))
        a = rng.integers(-5, 2 * K, shape) if i % 3 else rng.standard_normal(shape)
        for mode in ("clamp", "drop", "refuse"):
            try:
                s = sanitize_codes(a, 3, K, mode, has_pitch=bool(i % 2))
            except CodecError:
                continue
            assert s.codes.min() >= 0 and s.codes.max() < K and s.codes.shape[0] <= 3


# ------------------------------------------------------------------------------ LM ids
def test_lm_ids_specials_stripped_partial_frame_dropped():
    v = vocab_for(3, K, pitch_levels=255)
    c = codes(3, 5)
    p = np.arange(5) * 40
    ids = flatten(v.to_ids(np.concatenate([c, p[None]])))
    sp = v.special
    seq = np.concatenate([[sp["bos"], sp["speech_start"]], ids, ids[:2], [sp["speech_end"]]])
    s = sanitize_ids(seq, v, "flatten", "drop")
    assert kinds(s) == {"special": 3, "partial_frame": 2}
    np.testing.assert_array_equal(s.codes, c)
    np.testing.assert_array_equal(s.pitch, p)
    with pytest.raises(CodecError, match="partial frame"):
        sanitize_ids(seq, v, "flatten", "refuse")


def test_lm_ids_of_the_wrong_stream_are_out_of_range():
    v = vocab_for(2, K)
    c = codes(2, 4)
    ids = v.to_ids(c)
    ids[0, 1] = ids[1, 1]  # stream 1's id where stream 0's belongs
    with pytest.raises(CodecError, match="out of range"):
        sanitize_ids(flatten(ids), v, "flatten", "refuse")
    s = sanitize_ids(flatten(ids), v, "flatten", "clamp")
    assert s.codes[0, 1] == K - 1 and kinds(s) == {"out_of_range": 1}
    assert sanitize_ids(flatten(ids), v, "flatten", "drop").codes.shape == (2, 3)


def test_lm_ids_in_delay_and_parallel_layouts():
    v = vocab_for(4, K)
    c = codes(4, 7)
    ids = v.to_ids(c)
    d = delay(ids, v.special["pad"])
    np.testing.assert_array_equal(sanitize_ids(d, v, "delay").codes, c)
    np.testing.assert_array_equal(sanitize_ids(parallel(ids), v, "parallel").codes, c)
    cut = sanitize_ids(d[:, :-2], v, "delay", "drop")  # generation stopped 2 steps early
    assert kinds(cut) == {"partial_frame": 2}
    np.testing.assert_array_equal(cut.codes, c[:, :-2])
    with pytest.raises(CodecError, match="shaped"):
        sanitize_ids(d.T, v, "delay")
