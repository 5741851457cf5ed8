"""tokens/layouts.py and tokens/vocab.py: every layout round-trips exactly; vocab ids too."""

from __future__ import annotations

import json

import numpy as np
import pytest

from telugu_codec.errors import CodecError
from telugu_codec.tokens.layouts import (
    LAYOUTS,
    delay,
    delay_pad_mask,
    flatten,
    get_layout,
    undelay,
    unflatten,
)
from telugu_codec.tokens.vocab import SPECIAL_NAMES, VocabSpec, vocab_for

PAD = 1024


@pytest.mark.parametrize("name", sorted(LAYOUTS))
@pytest.mark.parametrize("n_q", [1, 2, 3, 8])
@pytest.mark.parametrize("frames", [1, 2, 7])
def test_every_layout_round_trips_random_codes(name, n_q, frames):
    codes = np.random.default_rng(n_q * 10 + frames).integers(0, 1024, (n_q, frames))
    lay = get_layout(name)
    np.testing.assert_array_equal(lay.invert(lay.apply(codes, PAD), n_q), codes)


def test_flatten_is_frame_major():
    codes = np.array([[1, 2, 3], [10, 20, 30]])
    assert flatten(codes).tolist() == [1, 10, 2, 20, 3, 30]
    np.testing.assert_array_equal(unflatten([1, 10, 2, 20, 3, 30], 2), codes)
    with pytest.raises(CodecError, match="whole number of frames"):
        unflatten([1, 10, 2], 2)


def test_delay_pattern_matches_musicgen():
    codes = np.array([[1, 2, 3], [10, 20, 30], [100, 200, 300]])
    p = -1
    assert delay(codes, p).tolist() == [
        [1, 2, 3, p, p],
        [p, 10, 20, 30, p],
        [p, p, 100, 200, 300],
    ]
    np.testing.assert_array_equal(delay_pad_mask(3, 3), delay(codes, p) == p)
    np.testing.assert_array_equal(undelay(delay(codes, p)), codes)


def test_unknown_layout_and_bad_shapes_are_one_line_errors():
    with pytest.raises(CodecError, match="unknown layout 'zigzag'"):
        get_layout("zigzag")
    with pytest.raises(CodecError, match="streams, frames"):
        flatten(np.zeros(5))


def test_vocab_offsets_are_disjoint_and_ids_invert():
    v = vocab_for(4, 1024, pitch_levels=255, base=32000, codec_hash="abc", frame_rate=50.0)
    assert v.offsets == [32000, 33024, 34048, 35072] + [36096]
    assert v.special == {n: 36096 + 256 + i for i, n in enumerate(SPECIAL_NAMES)}
    assert v.size == 36096 + 256 + 5 and len(v.token_strings()) == v.size - v.base
    assert len(set(v.token_strings())) == len(v.token_strings())
    rng = np.random.default_rng(0)
    codes = np.concatenate([rng.integers(0, 1024, (4, 9)), rng.integers(0, 256, (1, 9))])
    ids = v.to_ids(codes)
    assert (v.stream_of(ids) == np.arange(5)[:, None]).all()
    np.testing.assert_array_equal(v.from_ids(ids), codes)
    # with a layout on top: flatten the ids, come back
    np.testing.assert_array_equal(v.from_ids(unflatten(flatten(ids), 5)), codes)


def test_vocab_refuses_codes_out_of_range_and_ids_of_another_stream():
    v = vocab_for(2, 16)
    with pytest.raises(CodecError, match="outside its stream"):
        v.to_ids(np.array([[0, 16], [1, 2]]))
    with pytest.raises(CodecError, match="not a code of its stream"):
        v.from_ids(np.array([[16, 1], [17, 18]]))  # 16 is stream 1's first id


def test_vocab_json_round_trip_and_bad_json(tmp_path):
    v = vocab_for(3, 64, None, base=100, codec_hash="deadbeef", frame_rate=50.0)
    file = tmp_path / "vocab.json"
    file.write_text(v.to_json())
    w = VocabSpec.load(file)
    assert w == v and w.offsets == v.offsets and w.special == v.special
    d = json.loads(v.to_json())
    d["offsets"][1] += 1
    with pytest.raises(CodecError, match="disagree"):
        VocabSpec.from_json(json.dumps(d))
    with pytest.raises(CodecError, match="not a usable vocab spec"):
        VocabSpec.from_json('{"format": "something else"}')
    with pytest.raises(CodecError, match="not a usable vocab spec"):
        VocabSpec.from_json("not json")
