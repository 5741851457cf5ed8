"""listening/scores.py and ratings.py: BS.1534 post-screening and 95 % intervals by hand,
ratings files that round-trip and never share a name, the `--summary` command."""

from __future__ import annotations

import json
import math

import pytest

from telugu_codec.cli import main
from telugu_codec.errors import CodecError
from telugu_codec.listening.plan import ANCHOR, REFERENCE
from telugu_codec.listening.ratings import (
    Ratings,
    TrialRating,
    load_ratings,
    new_ratings_path,
    save_ratings,
)
from telugu_codec.listening.scores import screen, summarise, summarise_folder


def _ratings(rater: str, reference: list[float], other: list[float] | None = None) -> Ratings:
    """`rater` scoring the hidden reference `reference[i]` and "codec" `other[i]` in item i."""
    other = other or [50.0] * len(reference)
    trials = [
        TrialRating(f"item{i}", [REFERENCE, "codec"], {REFERENCE: r, "codec": o}, "t")
        for i, (r, o) in enumerate(zip(reference, other))
    ]
    return Ratings(rater, f"s-{rater}", 1, "t", len(trials), trials)


def test_post_screening_excludes_above_15_percent_of_low_references():
    # 20 items: 3 low references is 15 % (kept), 4 is 20 % (excluded); exactly 90 is not low
    kept = screen(_ratings("a", [89] * 3 + [100] * 17))
    assert (kept.trials, kept.reference_low, kept.excluded) == (20, 3, False)
    assert kept.low_share == pytest.approx(0.15)
    out = screen(_ratings("b", [89.9] * 4 + [90] * 16))
    assert (out.reference_low, out.excluded) == (4, True)
    assert not screen(_ratings("c", [90] * 20)).excluded
    # 6 items: one low reference is 17 % > 15 %: excluded
    assert screen(_ratings("d", [10, 100, 100, 100, 100, 100])).excluded


def test_scores_are_means_with_t_intervals_over_the_kept_raters():
    a = _ratings("a", [100, 100], [60, 70])
    b = _ratings("b", [95, 100], [80, 40])
    bad = _ratings("bad", [20, 30], [0, 0])  # both references low: excluded
    summary = summarise([("a.json", a), ("b.json", b), ("bad.json", bad)])
    assert [s.rater for s in summary.kept] == ["a", "b"]
    by = {s.system: s.score for s in summary.systems}
    codec = by["codec"]  # 60, 70, 80, 40: mean 62.5, s = 17.078, t(3) = 3.182
    assert codec.n == 4 and codec.mean == pytest.approx(62.5)
    half = 3.182 * math.sqrt(((60 - 62.5) ** 2 + 7.5**2 + 17.5**2 + 22.5**2) / 3) / 2
    assert codec.high - codec.mean == pytest.approx(half)
    assert codec.mean - codec.low == pytest.approx(half)
    assert by[REFERENCE].mean == pytest.approx(98.75) and by[REFERENCE].n == 4
    assert [s.system for s in summary.systems] == [REFERENCE, "codec"]  # best first


def test_a_rater_without_trials_is_left_out():
    empty = Ratings("e", "s", 1, "t", 3, [])
    summary = summarise([("e.json", empty), ("a.json", _ratings("a", [100], [40]))])
    assert [s.rater for s in summary.screening] == ["a"]
    assert summary.systems[1].score.low is None  # one value: no interval


def test_ratings_round_trip_and_names_never_repeat(tmp_path):
    names = {new_ratings_path(tmp_path, "Ann Lee/../x") for _ in range(200)}
    assert len(names) == 200
    assert all(p.parent == tmp_path and p.name.startswith("mushra-Ann-Lee-x-") for p in names)
    r = _ratings("Ann Lee", [100, 85], [30, 45])
    path = next(iter(names))
    save_ratings(path, r)
    back = load_ratings(path)
    assert back == r and back.complete
    assert not Ratings("x", "s", 1, "t", 3, r.trials).complete  # 2 of 3 items
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left


@pytest.mark.parametrize(
    "content, expected",
    [
        ("{not json", "cannot read ratings"),
        ('{"format": "other"}', "not a MUSHRA file"),
        ("[]", "not a MUSHRA file"),
        (None, "a score outside 0-100"),
    ],
)
def test_a_bad_ratings_file_is_a_one_line_error(tmp_path, capsys, content, expected):
    path = tmp_path / "mushra-x-1.json"
    if content is None:
        save_ratings(path, _ratings("x", [100], [50]))
        data = json.loads(path.read_text())
        data["trials"][0]["scores"]["codec"] = 101
        content = json.dumps(data)
    path.write_text(content)
    with pytest.raises(CodecError, match=expected):
        load_ratings(path)
    assert main(["listen", str(tmp_path), "--summary"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and expected in err and "\n" not in err


def test_summary_command_prints_and_writes_mushra_md(tmp_path, capsys):
    for name, ref in (("a", [100, 100, 96]), ("b", [100, 50, 40])):
        r = _ratings(name, ref, [70, 60, 65])
        for t in r.trials:
            t.scores[ANCHOR] = 20
            t.order.append(ANCHOR)
        save_ratings(new_ratings_path(tmp_path, name), r)
    assert main(["listen", str(tmp_path), "--summary"]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 raters kept after post-screening" in out
    assert "| codec | 65.0 | 52.6 - 77.4 | 3 |" in out  # 70, 60, 65: t(2) = 4.303, s = 5
    assert f"| {ANCHOR} | 20.0 |" in out
    assert "| b | 3 | 2 (67%) | no (post-screening) |" in out
    assert (tmp_path / "mushra.md").read_text() in out


def test_summary_without_ratings_says_how_to_get_some(tmp_path):
    with pytest.raises(CodecError, match="telugu-codec listen"):
        summarise_folder(tmp_path)
