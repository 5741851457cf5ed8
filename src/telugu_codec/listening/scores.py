"""MUSHRA scores per system with 95 % confidence intervals, after BS.1534 post-screening.

ITU-R BS.1534-3 sec. 9.3 (post-screening): an assessor is excluded who rates the hidden
reference below 90 in more than 15 % of the test items. The scores of the raters who remain are
summarised per system as the mean over every (rater, item) score with its 95 % Student-t
interval, mean ± t_{0.975, N-1} * s / sqrt(N) (BS.1534-3 sec. 9.2).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import atomic_write_text
from ..errors import CodecError
from ..evaluation.intervals import Interval, mean_interval
from .plan import ANCHOR, REFERENCE
from .ratings import Ratings, load_all

REFERENCE_FLOOR = 90.0  # a hidden reference rated below this counts against the rater
MAX_LOW_SHARE = 0.15  # ... in more than this share of the items excludes the rater
SUMMARY_FILE = "mushra.md"


@dataclass
class Screening:
    """One rater through the post-screening rule.

    Attributes:
        rater: the name given.
        source: the ratings file.
        trials: items rated.
        reference_low: items where the hidden reference scored below `REFERENCE_FLOOR`.
        excluded: more than `MAX_LOW_SHARE` of the items had the reference low.
    """

    rater: str
    source: str
    trials: int
    reference_low: int
    excluded: bool

    @property
    def low_share(self) -> float:
        return self.reference_low / self.trials if self.trials else 0.0


@dataclass
class SystemScore:
    """One system's MUSHRA score over the kept raters' (rater, item) answers."""

    system: str
    score: Interval


@dataclass
class MushraSummary:
    """The post-screening of every rater and the score of every system (best first)."""

    screening: list[Screening]
    systems: list[SystemScore]

    @property
    def kept(self) -> list[Screening]:
        return [s for s in self.screening if not s.excluded]


def screen(
    ratings: Ratings,
    source: str = "",
    floor: float = REFERENCE_FLOOR,
    max_share: float = MAX_LOW_SHARE,
) -> Screening:
    """Apply the BS.1534-3 post-screening rule to one rater (see the module docstring).

    A trial without a hidden-reference score counts as neither low nor rated.
    """
    rated = [t for t in ratings.trials if REFERENCE in t.scores]
    low = sum(1 for t in rated if t.scores[REFERENCE] < floor)
    excluded = bool(rated) and low / len(rated) > max_share
    return Screening(ratings.rater, source, len(rated), low, excluded)


def summarise(
    ratings: Sequence[tuple[str, Ratings]],
    floor: float = REFERENCE_FLOOR,
    max_share: float = MAX_LOW_SHARE,
) -> MushraSummary:
    """Screen every rater, then score every system over the raters kept.

    Args:
        ratings: (source name, ratings) per rater; raters with no trials are left out.
        floor, max_share: the post-screening rule.

    Returns:
        The screening of each rater and each system's mean with its 95 % interval, the
        highest mean first.
    """
    screening, values = [], {}
    for source, r in ratings:
        if not r.trials:
            continue
        s = screen(r, source, floor, max_share)
        screening.append(s)
        if s.excluded:
            continue
        for t in r.trials:
            for system, score in t.scores.items():
                values.setdefault(system, []).append(float(score))
    systems = [SystemScore(name, mean_interval(v)) for name, v in values.items()]
    systems.sort(key=lambda s: (-(s.score.mean or 0.0), s.system))
    return MushraSummary(screening, systems)


def _fmt(iv: Interval) -> tuple[str, str]:
    if iv.mean is None:
        return "n/a", ""
    ci = "" if iv.low is None else f"{iv.low:.1f} - {iv.high:.1f}"
    return f"{iv.mean:.1f}", ci


def render_summary(summary: MushraSummary, report_dir: str | Path) -> str:
    """The summary as Markdown: the score table, then every rater and the screening verdict."""
    kept = summary.kept
    lines = [
        "# MUSHRA listening test",
        "",
        f"Report: `{report_dir}`. {len(kept)} of {len(summary.screening)} raters kept after "
        f"post-screening (ITU-R BS.1534-3: a rater who scores the hidden reference below "
        f"{REFERENCE_FLOOR:g} in more than {MAX_LOW_SHARE:.0%} of the items is excluded).",
        "",
        "Scores 0-100, the mean over every (rater, item) answer with the 95 % Student-t "
        f"interval. `{REFERENCE}` is the hidden reference, `{ANCHOR}` the 3.5 kHz low-pass anchor.",
        "",
        "| system | MUSHRA | 95 % CI | n |",
        "|---|---|---|---|",
    ]
    for s in summary.systems:
        mean, ci = _fmt(s.score)
        lines.append(f"| {s.system} | {mean} | {ci or 'n/a'} | {s.score.n} |")
    lines += [
        "",
        "## Raters",
        "",
        "| rater | items | reference < 90 | kept | file |",
        "|---|---|---|---|---|",
    ]
    for s in summary.screening:
        verdict = "no (post-screening)" if s.excluded else "yes"
        lines.append(
            f"| {s.rater} | {s.trials} | {s.reference_low} ({s.low_share:.0%}) | {verdict} | "
            f"`{Path(s.source).name}` |"
        )
    return "\n".join(lines) + "\n"


def summarise_folder(report_dir: str | Path) -> tuple[MushraSummary, str, Path]:
    """Read every ratings file in `report_dir`, summarise, and write `SUMMARY_FILE` there.

    Returns:
        (the summary, its Markdown, the file written).

    Raises:
        CodecError: no report folder, no ratings with any trial, or a bad ratings file.
    """
    root = Path(report_dir)
    if not root.is_dir():
        raise CodecError(f"report folder not found: {root}")
    loaded = [(str(p), r) for p, r in load_all(root)]
    summary = summarise(loaded)
    if not summary.screening:
        raise CodecError(
            f"{root} holds no answered listening test (mushra-*.json); run "
            f"`telugu-codec listen {root}` first"
        )
    text = render_summary(summary, root)
    atomic_write_text(root / SUMMARY_FILE, text)
    return summary, text, root / SUMMARY_FILE
