"""The README.md written into a synthetic corpus: contents, provenance and licence notes."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path

from . import synth_voices as sv
from .synth_render import (
    EDGE_KEEP_S,
    NSK_F0_SCALE,
    NSK_STRETCH,
    PEAK_DBFS,
    PITCH,
    SPEED_WPM,
    VARIANTS,
    VOICES,
    Utterance,
)

WHAT = {
    "espeak": "the espeak-ng formant synthesiser (no recorded speech in its Telugu voice)",
    "festival": (
        "Festival with the `festvox-te-nsk` diphone voice, which joins short pieces (diphones) "
        "of one male speaker's recordings: a human voice's timbre with synthetic prosody"
    ),
}

ESPEAK_LICENCE = """\
espeak-ng is licensed GPL-3.0-or-later. It was only *run* to make the audio; no part of it is
included here. GPL-3.0 section 2 says the output from running a covered work is covered by the
licence only if the output, given its content, constitutes a covered work (the GPL FAQ: only if
substantial parts of the program are copied into the output). The audio is computed by
espeak-ng's formant synthesiser from the project's own text; the Telugu voice and the variants
used contain no recorded speech, and no MBROLA voice was used. We therefore read the espeak-ng
audio as not encumbered by the GPL. This is the project's reading, not legal advice."""

FESTIVAL_LICENCE = """\
Festival is distributed by CSTR, University of Edinburgh, under a permissive MIT-style licence
(`/usr/share/doc/festival/copyright`). The voice `festvox-te-nsk` (festival-te, Chaithanya
Kamishetty and DONLab, IIT Madras, 2006) is GPL-2.0-or-later
(`/usr/share/doc/festvox-te-nsk/copyright`). Unlike espeak-ng's formant voice, a diphone voice's
database *is* recorded speech, and every NSK file here is assembled from pieces of it (its LPC
residuals, resynthesised at new durations and pitch). The argument above for espeak-ng's output
does not clearly hold, so we treat the NSK audio as possibly a work based on that GPL-2.0-or-later
voice: this corpus is generated on the user's machine and is neither committed to nor
distributed with telugu-codec. Whoever redistributes the NSK audio should do so under
GPL-2.0-or-later with the notice above, or take advice. This is the project's reading, not legal
advice."""


def _table(utts: list[Utterance], voices: Sequence[str]) -> str:
    rows = ["| split | voice | files | minutes |", "|---|---|---:|---:|"]
    for split in ("train", "val"):
        for voice in voices:
            part = [u for u in utts if u.split == split and u.voice == voice]
            rows.append(
                f"| {split} | {voice} | {len(part)} | {sum(u.duration for u in part) / 60:.1f} |"
            )
    total = sum(u.duration for u in utts) / 60
    rows.append(f"| total | {' + '.join(voices)} | {len(utts)} | {total:.1f} |")
    return "\n".join(rows)


def _provenance(voices: Sequence[str], seed: int, sample_rate: int) -> list[str]:
    lines = []
    if "espeak" in voices:
        lines.append(
            f"- espeak-ng: `{sv.espeak_version()}`, Telugu voice `te` with the variants "
            f"{', '.join(VARIANTS)}; per file, drawn from a generator seeded with {seed}: "
            f"variant, speed ({SPEED_WPM[0]}-{SPEED_WPM[1]} words/min), pitch "
            f"({PITCH[0]}-{PITCH[1]}). Resampled from 22050 Hz to {sample_rate} Hz with soxr (HQ)."
        )
    if "festival" in voices:
        lines.append(
            f"- Festival: `{sv.festival_version()}`, voice `{sv.NSK_VOICE}` (Debian package "
            "`festvox-te-nsk`), its intonation function `telugu_NSK_targ_func1`; per file, from "
            f"a second generator seeded with [{seed}, 1]: phone durations x{NSK_STRETCH[0]:g} to "
            f"x{NSK_STRETCH[1]:g} of the voice's own (Duration_Stretch {sv.NSK_DURATION_STRETCH}) "
            f"and F0 targets x{NSK_F0_SCALE[0]:g} to x{NSK_F0_SCALE[1]:g}. Native 16000 Hz."
        )
    lines.append(
        f"- Every file: peak level drawn from {PEAK_DBFS[0]:g} to {PEAK_DBFS[1]:g} dBFS; leading "
        f"and trailing silence trimmed to {EDGE_KEEP_S} s."
    )
    return lines


def _wrap(paragraph: str) -> str:
    """A paragraph or a '- ' bullet, filled to 100 columns."""
    indent = "  " if paragraph.startswith("- ") else ""
    return textwrap.fill(paragraph, 100, subsequent_indent=indent, break_on_hyphens=False)


def write_readme(
    utts: list[Utterance],
    out: Path,
    seed: int,
    sample_rate: int,
    voices: Sequence[str],
    n_sentences: int,
    command: str,
) -> None:
    """Write `out/README.md` for the corpus of `utts` (their files already written)."""
    voices = [v for v in VOICES if v in voices]
    size_mb = sum((out / u.path).stat().st_size for u in utts) / 1e6
    intro = (
        "**This is synthetic speech, not recordings of people.** Every sentence was rendered by "
        f"{' and by '.join(WHAT[v] for v in voices)}. It exists so that the toolkit's demo, tests "
        "and benchmarks run without a download. A codec trained on it learns these voices, not "
        "natural Telugu speech: for real models use real corpora (see `docs/data.md`: OpenSLR "
        "SLR66, IIT Madras IndicTTS, Mozilla Common Voice Telugu)."
    )
    columns = (
        f"{size_mb:.1f} MB of 16-bit mono FLAC at {sample_rate} Hz, one file per sentence and "
        "voice. `manifest.tsv` lists `path` (relative to this folder), `duration` (seconds), "
        "`speaker` (the espeak-ng voice variant, e.g. `m3`, `f2`, or `nsk`), `voice` (`espeak` "
        "or `festival`), `split` (`train`/`val`), `text` and `phones`."
    )
    columns += (
        ' `phones` holds the phone segmentation as JSON `[[end_s, "phone"], ...]` (end times in '
        "seconds in the file, after trimming): Festival's `utt.save.segs` in its voice's phone "
        "set (`pau` = pause), and espeak-ng's phoneme events in its mnemonics (`_` = pause; "
        "empty where libespeak-ng could not be loaded and the `espeak-ng` command rendered)."
    )
    columns += (
        " The validation split holds every 10th sentence of the list, so its sentences never "
        "occur in training; every voice is in both splits."
    )
    same = "the same seed and synthesiser versions give the same audio"
    provenance = [
        f"- Text: the first {n_sentences} sentences of `scripts/demo_sentences_te.txt` followed "
        "by `scripts/sentences_te_extra.txt`, written for this project.",
        *_provenance(voices, seed, sample_rate),
        f"- Rebuild: `{command}` ({same})." if command else f"- Rebuilding: {same}.",
    ]
    ours = (
        "The sentences and the espeak-ng audio were" if "espeak" in voices else "The sentences were"
    )
    licences = [
        f"{ours} made for the telugu-codec project and are distributed under the project's "
        "licence (MIT, see `pyproject.toml`)."
    ]
    licences += [ESPEAK_LICENCE] if "espeak" in voices else []
    licences += [FESTIVAL_LICENCE] if "festival" in voices else []
    parts = [
        f"# {out.name}: a SYNTHETIC Telugu speech corpus",
        _wrap(intro),
        "## Contents",
        _table(utts, voices),
        _wrap(columns),
        "## Provenance",
        "\n".join(_wrap(line) for line in provenance),
        "## Licence",
        *(_wrap(" ".join(par.split())) for par in licences),
    ]
    (out / "README.md").write_text("\n\n".join(parts) + "\n", encoding="utf-8")
