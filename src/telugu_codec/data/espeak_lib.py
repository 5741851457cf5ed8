"""espeak-ng's phone segmentation through its C library, libespeak-ng (issue 25).

The `espeak-ng` command writes audio only. The library it is built on reports a phoneme event
(`espeakEVENT_PHONEME`) at the sample where each phoneme starts, so a rendering through the
library gives phone segments for free, as Festival's `utt.save.segs` does for the NSK voice.
A phone ends where the next one starts (zero-length ones, e.g. a pause event at the same sample
as the next phone, are dropped); the last ends at the end of the audio. Names are espeak-ng's
phoneme mnemonics (`a:`, `d.`, `_` for a pause).

Why a worker process that forks once per sentence: the library keeps state from one synthesis
to the next (measured: a second rendering of the same sentence in a process is 1-11 samples
longer or shorter than the first, whatever is rendered in between; its pitch flutter runs on),
and it does not survive `espeak_Terminate` + `espeak_Initialize`. A child forked from a process
that has initialised the library but never synthesised renders exactly as the `espeak-ng`
command does, every time (`tests/test_espeak_lib.py`), so the segments belong to the command's
audio and the corpus stays reproducible. This file runs as that worker (`python espeak_lib.py`,
jobs as JSON lines on stdin, results as JSON lines on stdout) and imports nothing of the package,
so a worker starts in a few tens of milliseconds and forks cheaply.

    phone_segments([(text, "te+f2", speed, pitch), ...]) -> [[(end_s, phone), ...] | None, ...]
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import subprocess
import sys

_OUTPUT_SYNCHRONOUS = 2  # espeak_AUDIO_OUTPUT
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_AUTO = 0  # these three flags as the espeak-ng command passes them
_PHONEMES = 0x100
_ENDPAUSE = 0x1000
_RATE, _PITCH = 1, 3  # espeak_PARAMETER


class _Id(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    """espeak_EVENT (speak_lib.h)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # samples from the start of the synthesis
        ("user_data", ctypes.c_void_p),
        ("id", _Id),
    ]


_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


def segments(starts: list[tuple[int, str]], n_samples: int, rate: int) -> list[tuple[float, str]]:
    """Phoneme start events (sample, phone) -> (end_s, phone) segments (see the module doc)."""
    out: list[tuple[float, str]] = []
    events = sorted(((min(max(s, 0), n_samples), p) for s, p in starts), key=lambda e: e[0])
    for (start, phone), nxt in zip(events, [*events[1:], (n_samples, "")]):
        if nxt[0] > start and phone:
            out.append((nxt[0] / rate, phone))
    return out


class _Library:
    """libespeak-ng, initialised (never synthesised with: see the module docstring)."""

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or "libespeak-ng.so.1"
        self.lib = lib = ctypes.CDLL(name)
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]  # fmt: skip
        self.rate = lib.espeak_Initialize(
            _OUTPUT_SYNCHRONOUS, 0, None, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT
        )
        if self.rate <= 0:
            raise OSError("libespeak-ng did not initialise (is espeak-ng-data installed?)")
        self.samples = 0
        self.events: list[tuple[int, str]] = []
        self.callback = _CALLBACK(self._on_audio)  # kept referenced: the library holds it
        lib.espeak_SetSynthCallback(self.callback)

    def _on_audio(self, wav, n: int, events) -> int:
        self.samples += max(n, 0)
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            e = events[i]
            if e.type == _EVENT_PHONEME:
                self.events.append((int(e.sample), e.id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def render(self, text: str, voice: str, speed: int, pitch: int) -> dict:
        """One synthesis -> {"rate", "samples", "phones": [[end_s, phone], ...]} or {"error"}."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            return {"error": f"espeak-ng has no voice {voice!r}"}
        self.lib.espeak_SetParameter(_RATE, int(speed), 0)
        self.lib.espeak_SetParameter(_PITCH, int(pitch), 0)
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0,
                                    _CHARS_AUTO | _PHONEMES | _ENDPAUSE, None, None)  # fmt: skip
        self.lib.espeak_Synchronize()
        if err != 0 or self.samples == 0:
            return {"error": f"espeak-ng failed on {text!r} (error {err})"}
        phones = segments(self.events, self.samples, self.rate)
        return {"rate": self.rate, "samples": self.samples, "phones": phones}


def _render_forked(lib: _Library, job: list) -> dict:
    """Render `job` in a child forked for it, so that every job renders from the same state."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: render, send, leave without running any of the parent's clean-up
        os.close(read_fd)
        try:
            out = json.dumps(lib.render(*job)).encode()
        except Exception as e:  # noqa: BLE001 - reported to the parent, which raises
            out = json.dumps({"error": f"espeak-ng failed: {e}"}).encode()
        with os.fdopen(write_fd, "wb") as f:
            f.write(out)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"error": "the espeak-ng worker's child died"}


def _worker() -> None:
    """Jobs [text, voice, speed, pitch] as JSON lines on stdin -> one JSON result line each."""
    try:
        lib = _Library()
    except OSError as e:
        print(json.dumps({"unavailable": str(e)}), flush=True)
        return
    print(json.dumps({"ready": lib.rate}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_render_forked(lib, json.loads(line))), flush=True)


def phone_segments(
    jobs: list[tuple[str, str, int, int]], timeout_s: float = 300.0
) -> list[list[tuple[float, str]]] | None:
    """Phone segments of each (text, voice, speed, pitch) as the `espeak-ng` command renders it.

    Returns:
        one [(end_s, phone), ...] per job, in seconds of the rendering (the command's audio
        before any trimming); None where libespeak-ng is not available (no fork, or no library).

    Raises:
        RuntimeError: a sentence failed (the message is one line, for a `CodecError`).
    """
    if not hasattr(os, "fork") or not jobs:
        return None if jobs else []
    lines = "".join(json.dumps(list(j)) + "\n" for j in jobs)
    proc = subprocess.run([sys.executable, os.path.abspath(__file__)], input=lines,
                          capture_output=True, text=True, timeout=timeout_s)  # fmt: skip
    results = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    if not results or "unavailable" in results[0]:
        return None
    if proc.returncode != 0 or len(results) != len(jobs) + 1:
        raise RuntimeError(f"the espeak-ng phone worker failed: {proc.stderr.strip()[-300:]}")
    out = []
    for r in results[1:]:
        if "error" in r:
            raise RuntimeError(r["error"])
        out.append([(float(t), str(p)) for t, p in r["phones"]])
    return out


if __name__ == "__main__":
    _worker()
