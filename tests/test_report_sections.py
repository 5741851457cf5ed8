"""`replace_marked`: the generated sections of the model card and BENCHMARKS.md."""

from __future__ import annotations

import pytest

from telugu_codec.evaluation.report import replace_marked


def test_only_the_marked_spans_change(tmp_path):
    doc = tmp_path / "card.md"
    doc.write_text(
        "# Card\n<!-- a:start -->\nold a\n<!-- a:end -->\nkept\n<!-- b:start -->\nold b\n"
        "<!-- b:end -->\ntail\n",
        encoding="utf-8",
    )
    replace_marked(doc, {"a": "<!-- a:start -->\nnew a\n<!-- a:end -->"})
    assert doc.read_text(encoding="utf-8") == (
        "# Card\n<!-- a:start -->\nnew a\n<!-- a:end -->\nkept\n<!-- b:start -->\nold b\n"
        "<!-- b:end -->\ntail\n"
    )


def test_a_missing_marker_or_a_section_without_its_markers_is_refused(tmp_path):
    doc = tmp_path / "card.md"
    doc.write_text("<!-- a:start -->\nx\n<!-- a:end -->\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has no <!-- b:start -->"):
        replace_marked(doc, {"b": "<!-- b:start -->\ny\n<!-- b:end -->"})
    with pytest.raises(ValueError, match="must begin with"):
        replace_marked(doc, {"a": "no markers"})
    assert doc.read_text(encoding="utf-8") == "<!-- a:start -->\nx\n<!-- a:end -->\n"
