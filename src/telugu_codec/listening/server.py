"""The blind MUSHRA test page, served from the Python standard library (`http.server`).

Routes (everything else is 404; no path from the request ever reaches the file system):

- ``GET /``, ``GET /static/<name>``: the page and its script and style (package data);
- ``GET /api/info``: the number of trials and the default rater name;
- ``POST /api/session`` ``{"rater": NAME}``: a new rater: their own trial order, slider order
  and ratings file; answers ``{"session", "file", "trials": [{"index", "item", "slots"}]}``;
- ``GET /audio/<session>/<trial>/<slot>.wav``: the audio behind a slider (``ref`` is the open
  reference); the URL names no system, so the page cannot tell which is which;
- ``POST /api/rate`` ``{"session", "trial", "scores": [0-100 per slider]}``: records the trial and
  rewrites the rater's file (`ratings.save_ratings`).

POST bodies must be JSON objects with a Content-Length of at most `MAX_BODY_BYTES` (400 for a
malformed one, 413 for one too large). The server binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import CodecError
from .plan import Item, Trial, load_items, plan_trials
from .ratings import MAX_RATER_CHARS, SCORE_RANGE, Ratings, TrialRating, new_ratings_path, now
from .ratings import save_ratings as _save

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_BODY_BYTES = 64 * 1024
MAX_SESSIONS = 1000
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
_AUDIO_PATH = re.compile(r"/audio/([0-9a-f]{32})/([0-9]{1,4})/(ref|[0-9]{1,3})\.wav")


class HttpError(Exception):
    """A request the server refuses: the status and a one-line reason for the page."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Session:
    """One rater's run through the test."""

    ratings: Ratings
    trials: list[Trial]
    path: Path


class ListeningTest:
    """The test's state: the items, every rater's session, and their ratings files.

    Args:
        report_dir: the report folder (the ratings files are written there).
        items: from `plan.load_items`.
        default_rater: the name the page suggests (``--rater``).
    """

    def __init__(self, report_dir: Path, items: list[Item], default_rater: str = "") -> None:
        self.report_dir = Path(report_dir)
        self.items = items
        self.default_rater = default_rater
        self.sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def info(self) -> dict[str, Any]:
        return {"rater": self.default_rater, "trials": len(self.items)}

    def start(self, rater: Any) -> dict[str, Any]:
        """A new session for `rater` (a non-empty name of printable characters)."""
        ok = isinstance(rater, str) and 0 < len(rater.strip()) <= MAX_RATER_CHARS
        if not ok or not rater.isprintable():
            raise HttpError(400, f"rater must be a name of 1-{MAX_RATER_CHARS} characters")
        rater = rater.strip()
        seed = secrets.randbelow(2**31)
        trials = plan_trials(self.items, seed)
        session_id = secrets.token_hex(16)
        path = new_ratings_path(self.report_dir, rater)
        with self._lock:
            if len(self.sessions) >= MAX_SESSIONS:
                raise HttpError(503, "too many sessions; restart the server")
            ratings = Ratings(rater, session_id, seed, now(), len(trials))
            self.sessions[session_id] = Session(ratings, trials, path)
        return {
            "session": session_id,
            "rater": rater,
            "file": path.name,
            "trials": [
                {"index": i, "item": t.item, "slots": len(t.order)} for i, t in enumerate(trials)
            ],
        }

    def _session(self, session_id: Any) -> Session:
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None:
            raise HttpError(404, "no such session; reload the page to start again")
        return session

    def _trial(self, session: Session, index: Any) -> Trial:
        if not isinstance(index, int) or isinstance(index, bool):
            raise HttpError(400, "trial must be an integer")
        if not 0 <= index < len(session.trials):
            raise HttpError(400, f"trial {index} out of range 0-{len(session.trials) - 1}")
        return session.trials[index]

    def rate(self, session_id: Any, index: Any, scores: Any) -> dict[str, Any]:
        """Record one trial's scores (one per slider, 0-100) and rewrite the rater's file."""
        session = self._session(session_id)
        trial = self._trial(session, index)
        lo, hi = SCORE_RANGE
        ok = isinstance(scores, list) and len(scores) == len(trial.order)
        ok = ok and all(
            isinstance(s, int | float) and not isinstance(s, bool) and math.isfinite(s)
            and lo <= s <= hi for s in scores
        )  # fmt: skip
        if not ok:
            raise HttpError(400, f"scores must be {len(trial.order)} numbers in {lo}-{hi}")
        answer = TrialRating(
            trial.item, list(trial.order), {n: int(round(s)) for n, s in zip(trial.order, scores)},
            now(),
        )  # fmt: skip
        with self._lock:  # one writer at a time: a file is never written by two requests
            r = session.ratings
            r.trials = [t for t in r.trials if t.item != trial.item] + [answer]
            _save(session.path, r)
            done = len(r.trials)
        return {
            "saved": session.path.name,
            "done": done,
            "total": len(session.trials),
            "complete": done >= len(session.trials),
        }

    def audio(self, session_id: str, index: int, slot: str) -> Path:
        """The WAV behind slider `slot` of trial `index` (``ref``: the open reference)."""
        session = self._session(session_id)
        trial = self._trial(session, index)
        if slot == "ref":
            return trial.reference
        if int(slot) >= len(trial.files):
            raise HttpError(404, "no such slot")
        return trial.files[int(slot)]


def _static_files() -> dict[str, Any]:
    folder = resources.files(__package__) / "static"
    return {p.name: p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}


class _Handler(BaseHTTPRequestHandler):
    server_version = "telugu-codec-listen"
    timeout = 30  # a client that stops sending does not hold a thread for ever
    test: ListeningTest
    static: dict[str, Any]

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass  # quiet: the terminal shows the URL and the files written

    def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _body(self) -> dict[str, Any]:
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            raise HttpError(400, "a POST needs a Content-Length")
        n = int(length)
        if n > MAX_BODY_BYTES:
            self.close_connection = True  # the body is not read
            raise HttpError(413, f"request body over {MAX_BODY_BYTES} bytes")
        raw = self.rfile.read(n)
        if len(raw) < n:
            raise HttpError(400, "request body cut short")
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise HttpError(400, "request body is not JSON") from None
        if not isinstance(data, dict):
            raise HttpError(400, "request body must be a JSON object")
        return data

    def _file(self, path: Path, ctype: str) -> None:
        """Send `path`, honouring a single ``Range: bytes=a-b`` (the audio element seeks)."""
        data = path.read_bytes()
        size = len(data)
        m = re.fullmatch(r"bytes=([0-9]*)-([0-9]*)", (self.headers.get("Range") or "").strip())
        if m is None or not (m[1] or m[2]):
            self._send(200, data, ctype, {"Accept-Ranges": "bytes"})
            return
        if m[1]:
            start, end = int(m[1]), min(int(m[2]) if m[2] else size - 1, size - 1)
        else:
            start, end = max(0, size - int(m[2])), size - 1
        if start > end:
            self._send(416, b"", ctype, {"Content-Range": f"bytes */{size}"})
            return
        extra = {"Accept-Ranges": "bytes", "Content-Range": f"bytes {start}-{end}/{size}"}
        self._send(206, data[start : end + 1], ctype, extra)

    def _handle(self, fn) -> None:
        try:
            fn(urlsplit(self.path).path)
        except HttpError as e:
            self._json(e.status, {"error": str(e)})
        except CodecError as e:  # a ratings file that cannot be written (disk full, ...)
            self._json(500, {"error": str(e)})

    def _get(self, path: str) -> None:
        if path in ("/", "/index.html"):
            path = "/static/index.html"
        if path.startswith("/static/") and path[len("/static/") :] in self.static:
            name = path[len("/static/") :]
            ctype = _CONTENT_TYPES.get(Path(name).suffix, "application/octet-stream")
            self._send(200, self.static[name].read_bytes(), ctype)
        elif path == "/api/info":
            self._json(200, self.test.info())
        elif m := _AUDIO_PATH.fullmatch(path):
            self._file(self.test.audio(m[1], int(m[2]), m[3]), "audio/wav")
        else:
            raise HttpError(404, f"not found: {path[:200]}")

    def _post(self, path: str) -> None:
        if path not in ("/api/session", "/api/rate"):
            self.close_connection = True
            raise HttpError(404, f"not found: {path[:200]}")
        body = self._body()
        if path == "/api/session":
            self._json(200, self.test.start(body.get("rater")))
        else:
            result = self.test.rate(body.get("session"), body.get("trial"), body.get("scores"))
            self._json(200, result)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._handle(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._handle(self._post)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the browser dropped an audio download it no longer needs
        super().handle_error(request, client_address)


def make_server(
    test: ListeningTest, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
) -> ThreadingHTTPServer:
    """A threading HTTP server for `test`, bound to `host`:`port` (port 0: any free port).

    Raises:
        CodecError: the address cannot be bound (in use, not this machine's, no permission).
    """
    if not 0 <= port <= 65535:
        raise CodecError(f"--port must be 0-65535, got {port}")
    handler = type("Handler", (_Handler,), {"test": test, "static": _static_files()})
    try:
        return _Server((host, port), handler)
    except OSError as e:
        why = e.strerror or str(e)
        raise CodecError(f"cannot listen on {host}:{port}: {why}; try another --port") from e


def serve(
    report_dir: str | Path,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    rater: str = "",
    log=print,
) -> None:
    """Check the report folder, write the anchors and serve the test until interrupted."""
    items = load_items(report_dir)
    server = make_server(ListeningTest(Path(report_dir), items, rater), host, port)
    bound_host, bound_port = server.server_address[:2]
    n_sliders = max(len(item.systems) for item in items) + 1  # + the hidden reference
    log(
        f"listening test: {len(items)} trials, up to {n_sliders} sliders each (hidden reference "
        f"and 3.5 kHz anchor included); open http://{bound_host}:{bound_port}/ ; Ctrl-C to stop"
    )
    log(f"answers go to {Path(report_dir) / 'mushra-<rater>-<time>-<id>.json'}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
