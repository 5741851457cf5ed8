"""The two Telugu speech synthesisers behind the synthetic corpora (`synth_corpus`).

- espeak-ng: a formant synthesiser, one process per sentence (about 25 ms each); its library's
  phoneme events give the phone segments (data/espeak_lib.py). Its Telugu voice `te`
  has no recorded speech in it; the variants (`te+m3`, `te+f2`, ...) change the formant settings.
- Festival with `festvox-te-nsk` (Debian/Ubuntu): a diphone voice cut from the recordings of one
  male speaker (NSK, IIT Madras), so the output is a real human voice's timbre. Many sentences
  are rendered by one Festival process (its start-up costs more than a sentence), each with
  its own duration stretch and F0 scale, and Festival's phone segmentation is kept.

Both return `Synthesised` audio at the synthesiser's own rate; trimming, resampling and levels
are the corpus builder's job.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from ..errors import CodecError
from . import espeak_lib

ESPEAK = "espeak-ng"
FESTIVAL = "festival"
NSK_VOICE = "voice_telugu_NSK_diphone"
# the NSK voice's own Duration_Stretch (telugu_NSK_diphone.scm); `FestivalLine.stretch` scales it
NSK_DURATION_STRETCH = 1.4
INSTALL_HINT = "Debian/Ubuntu: apt-get install festival festvox-te-nsk, or `make sysdeps`"

# Festival (SIOD) set-up, once per process: the NSK voice, and its intonation function
# telugu_NSK_targ_func1 (F0 targets of a flat hat, about 120-140 Hz) wrapped so that every
# target is multiplied by tc_f0_scale. Festival resynthesises the diphones' LPC residual at the
# new pitch marks, so this moves the pitch without changing duration or formants.
_FESTIVAL_PRELUDE = f"""
({NSK_VOICE})
(set! tc_f0_scale 1.0)
(define (tc_targ_func utt syl)
  (mapcar (lambda (p) (list (car p) (* tc_f0_scale (cadr p))))
          (telugu_NSK_targ_func1 utt syl)))
(set! int_general_params (list (list 'targ_func tc_targ_func)))
(Parameter.set 'Int_Method 'General)
(define (tc_say text stretch f0_scale wav segs)
  (set! tc_f0_scale f0_scale)
  (Parameter.set 'Duration_Stretch stretch)
  ;; Utterance does not evaluate its arguments (Festival's own SayText builds the call likewise)
  (let ((utt (eval (list 'Utterance 'Text text))))
    (utt.synth utt)
    (utt.save.wave utt wav 'riff)
    (utt.save.segs utt segs)))
"""


@dataclass
class Synthesised:
    """One rendered sentence, as the synthesiser wrote it.

    Attributes:
        wav: (T,) float32 in [-1, 1].
        sample_rate: Hz of `wav`.
        phones: (end time in s, phone) per segment, in order (Festival's segments, or
            espeak-ng's phoneme events); empty where none was given (no libespeak-ng).
    """

    wav: np.ndarray
    sample_rate: int
    phones: list[tuple[float, str]] = field(default_factory=list)


@dataclass(frozen=True)
class FestivalLine:
    """One sentence for Festival: `stretch` multiplies the voice's phone durations (> 1 is
    slower) and `f0_scale` its F0 targets (> 1 is higher)."""

    text: str
    stretch: float = 1.0
    f0_scale: float = 1.0


def find_espeak() -> str | None:
    """The espeak-ng binary on PATH, or None."""
    return shutil.which(ESPEAK)


def find_festival() -> str | None:
    """The festival binary on PATH, or None."""
    return shutil.which(FESTIVAL)


def festival_missing() -> str | None:
    """None when Festival and its Telugu NSK voice work, else one line saying what is missing."""
    binary = find_festival()
    if binary is None:
        return f"festival is not installed ({INSTALL_HINT})"
    with tempfile.TemporaryDirectory() as tmp:
        try:
            proc = subprocess.run(
                [binary, "-b", f"({NSK_VOICE})"], cwd=tmp, capture_output=True, timeout=60
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"festival does not run ({e})"
    if proc.returncode != 0:
        return f"festival has no Telugu NSK voice ({INSTALL_HINT})"
    return None


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(rate)


def espeak_render(text: str, variant: str, speed: int, pitch: int) -> Synthesised:
    """espeak-ng's Telugu voice `te+<variant>` at `speed` words/min and `pitch` (0-99); audio
    only (`espeak_phones` adds the segments).

    Raises:
        CodecError: espeak-ng is missing or fails on the text.
    """
    binary = find_espeak()
    if binary is None:
        raise CodecError("espeak-ng is not installed (Debian/Ubuntu: apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = [binary, "-v", f"te+{variant}", "-s", str(speed), "-p", str(pitch)]
        proc = subprocess.run([*cmd, "-w", str(wav), text], capture_output=True, timeout=120)
        if proc.returncode != 0 or not wav.is_file():
            err = proc.stderr.decode(errors="replace").strip()[-300:]
            raise CodecError(f"espeak-ng failed on {text!r}: {err or 'no output'}")
        data, rate = _read_wav(wav)
    return Synthesised(data, rate)


def espeak_phones(
    rendered: list[Synthesised], jobs: list[tuple[str, str, int, int]]
) -> list[Synthesised]:
    """`rendered[i]` (the command's audio of jobs[i] = (text, variant, speed, pitch)) with its
    phone segments from libespeak-ng's phoneme events (data/espeak_lib.py).

    Without the library the phones stay empty; a rendering whose segments do not end where its
    audio ends (another espeak-ng build than the command's, say) keeps none rather than wrong
    ones.

    Raises:
        CodecError: the library failed on a sentence.
    """
    try:
        found = espeak_lib.phone_segments([(t, f"te+{v}", s, p) for t, v, s, p in jobs])
    except (RuntimeError, OSError, subprocess.SubprocessError) as e:
        raise CodecError(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    if found is None:
        return rendered
    out = []
    for s, phones in zip(rendered, found):
        if not phones or abs(phones[-1][0] * s.sample_rate - len(s.wav)) > 1:
            phones = []
        out.append(Synthesised(s.wav, s.sample_rate, phones))
    return out


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_segs(path: Path) -> list[tuple[float, str]]:
    """Festival's `utt.save.segs` file: a header up to a '#' line, then 'end_time 100 phone'."""
    lines = path.read_text(encoding="utf-8").splitlines()
    body = lines[lines.index("#") + 1 :] if "#" in lines else lines
    out = []
    for line in body:
        parts = line.split()
        if len(parts) >= 3:
            out.append((float(parts[0]), parts[2]))
    return out


def festival_render(lines: list[FestivalLine], timeout_s: float = 600.0) -> list[Synthesised]:
    """Render `lines` with the Festival NSK voice in one Festival process.

    Raises:
        CodecError: Festival or the voice is missing, or a sentence could not be rendered (the
            message names the first one).
    """
    binary = find_festival()
    if binary is None:
        raise CodecError(f"festival is not installed ({INSTALL_HINT})")
    with tempfile.TemporaryDirectory() as tmp:
        # the Telugu scheme files may write scratch files into the working folder: keep it here
        folder = Path(tmp)
        script = [_FESTIVAL_PRELUDE]
        for i, line in enumerate(lines):
            args = (
                _scheme_string(line.text),
                f"{NSK_DURATION_STRETCH * line.stretch:.4f}",
                f"{line.f0_scale:.4f}",
                _scheme_string(str(folder / f"{i}.wav")),
                _scheme_string(str(folder / f"{i}.segs")),
            )
            script.append(f"(tc_say {' '.join(args)})")
        (folder / "render.scm").write_text("\n".join(script) + "\n", encoding="utf-8")
        try:
            proc = subprocess.run(
                [binary, "-b", "render.scm"], cwd=folder, capture_output=True, timeout=timeout_s
            )
        except subprocess.TimeoutExpired as e:
            raise CodecError(f"festival took longer than {timeout_s:.0f} s") from e
        out = []
        for i, line in enumerate(lines):
            wav, segs = folder / f"{i}.wav", folder / f"{i}.segs"
            if not (wav.is_file() and segs.is_file()):
                err = proc.stderr.decode(errors="replace").strip()[-300:]
                raise CodecError(
                    f"festival could not render {line.text!r} (exit {proc.returncode}): "
                    f"{err or 'no output'}"
                )
            data, rate = _read_wav(wav)
            out.append(Synthesised(data, rate, read_segs(segs)))
    return out


def espeak_version() -> str:
    """e.g. 'eSpeak NG text-to-speech: 1.51'."""
    out = subprocess.run([ESPEAK, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.split("Data at")[0].strip()


def festival_version() -> str:
    """e.g. 'Festival Speech Synthesis System: 2.5.0:release December 2017'."""
    out = subprocess.run([FESTIVAL, "--version"], capture_output=True, text=True, check=True)
    return out.stdout.strip().removeprefix("festival: ")
