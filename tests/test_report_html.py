"""evaluation/html_report.py: report.html holds a player per file and system, opens from disk."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from telugu_codec.evaluation.html_report import render_html

from .listening_helpers import METRIC_KEYS, SYSTEMS, parse_report_html, tiny_report


@pytest.fixture
def report_dir(tmp_path) -> Path:
    tiny_report(tmp_path / "report")
    return tmp_path / "report"


def test_a_player_for_every_file_and_system_with_its_metrics(report_dir):
    parsed = parse_report_html((report_dir / "report.html").read_text(encoding="utf-8"))
    assert sorted(parsed.players) == ["utt0.wav", "utt1.wav"]
    for file, players in parsed.players.items():
        assert list(players) == ["original"] + [s[0] for s in SYSTEMS]
        for system, src in players.items():
            assert (report_dir / unquote(src)).is_file(), src
            assert Path(src).stem == system and src.startswith(f"audio/{Path(file).stem}/")
        # beside each system's player: its kbps and this file's metrics, in the table's order
        for j, (system, *_rest, noise) in enumerate(SYSTEMS):
            cells = parsed.cells[(file, system)]
            assert cells[0] == system and cells[1] == ""  # name, the player's cell
            expected = [20.0 - 100 * noise, 4.0 - 20 * noise, 0.9 - j / 50]
            assert [float(c) for c in cells[3:]] == pytest.approx(expected, abs=0.006)
        assert len(parsed.cells[(file, "original")]) == 3 + len(METRIC_KEYS)


def test_it_opens_from_disk_without_the_network(report_dir):
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    parsed = parse_report_html(text)
    assert "link" not in parsed.tags  # the style is inline
    for link in parsed.links:
        parts = urlsplit(link)
        assert not parts.scheme and not parts.netloc and not link.startswith("/"), link
    # every image and player it names is there (the .md / .csv / .json links come from evaluate)
    shown = [x for x in parsed.links if x.endswith((".png", ".wav"))]
    assert len(shown) == 1 + 2 * (1 + 1 + len(SYSTEMS))  # curves + per file: spectrogram, players
    assert all((report_dir / unquote(x)).is_file() for x in shown)
    assert "<style>" in text and "http://" not in text and "https://" not in text


def test_every_text_is_escaped(tmp_path):
    evil = 'a<script>alert("x")</script>&b.wav'
    report = tiny_report(tmp_path / "r", names=(evil,), seconds=(0.5,), skipped_reason="<img>")
    report.checkpoint = "<b>ckpt</b>"
    text = render_html(report)
    assert "<script>alert" not in text and "<b>ckpt" not in text and "<img>" not in text
    assert "a&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;b.wav" in text
    assert "&lt;b&gt;ckpt&lt;/b&gt;" in text and "&lt;img&gt;" in text
    parsed = parse_report_html(text)
    assert list(parsed.players) == [evil]  # the attribute round-trips to the real name
    assert parsed.tags.count("script") == 1  # only the page's own inline script
    src = parsed.players[evil]["original"]
    assert (tmp_path / "r" / unquote(src)).is_file()
