"""listening/server.py over real HTTP: the blind flow, concurrent raters, refused requests."""

from __future__ import annotations

import http.client
import json
import shutil
import threading
from pathlib import Path

import pytest

from telugu_codec.cli import main
from telugu_codec.errors import CodecError
from telugu_codec.listening import server as S
from telugu_codec.listening.plan import ANCHOR, REFERENCE, load_items
from telugu_codec.listening.ratings import load_ratings

from .listening_helpers import SYSTEMS, tiny_report


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    tiny_report(folder)
    return folder


@pytest.fixture
def running(tmp_path, template):
    """A server on a free port of 127.0.0.1 over a tiny report; yields (test, port, folder)."""
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    test = S.ListeningTest(tmp_path, load_items(tmp_path), "Ann")
    server = S.make_server(test, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield test, server.server_address[1], tmp_path
    server.shutdown()
    server.server_close()


def _request(port, method, path, body=None, headers=None):
    """(status, headers, body bytes); `body` a dict is sent as JSON, bytes as they are."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), data


def _json(port, method, path, body=None):
    status, _, data = _request(port, method, path, body)
    return status, json.loads(data)


def test_binds_127_0_0_1_by_default(tmp_path, template, monkeypatch):
    shutil.copytree(template, tmp_path, dirs_exist_ok=True)
    server = S.make_server(S.ListeningTest(tmp_path, load_items(tmp_path)), port=0)
    assert server.server_address[0] == "127.0.0.1"
    server.server_close()
    seen = {}
    monkeypatch.setattr(S, "serve", lambda report_dir, **kw: seen.update(kw))
    assert main(["listen", str(tmp_path)]) == 0  # the CLI passes the default on
    assert seen["host"] == "127.0.0.1" and seen["port"] == S.DEFAULT_PORT
    assert main(["listen", str(tmp_path), "--host", "0.0.0.0", "--port", "9"]) == 0
    assert seen["host"] == "0.0.0.0" and seen["port"] == 9


def test_a_port_in_use_is_a_one_line_error(running):
    test, port, _ = running
    with pytest.raises(CodecError, match=f"cannot listen on 127.0.0.1:{port}"):
        S.make_server(test, port=port)
    with pytest.raises(CodecError, match="0-65535"):
        S.make_server(test, port=70000)


def test_a_blind_trial_end_to_end(running):
    test, port, folder = running
    status, _, page = _request(port, "GET", "/")
    assert status == 200 and b"/static/listen.js" in page
    assert _request(port, "GET", "/static/listen.js")[0] == 200
    assert _json(port, "GET", "/api/info") == (200, {"rater": "Ann", "trials": 2})
    status, session = _json(port, "POST", "/api/session", {"rater": "Ann"})
    assert status == 200 and len(session["trials"]) == 2
    assert session["trials"][0]["slots"] == len(SYSTEMS) + 2  # + hidden reference + anchor
    text = json.dumps(session).lower()  # nothing tells the page which system is which
    assert not any(w in text for w in ("opus", "codec2", "codec-", REFERENCE, "anchor"))
    sid, trial = session["session"], session["trials"][0]
    plan = test.sessions[sid].trials[trial["index"]]
    # each slot serves the file of the system the server keeps behind it
    for slot, path in enumerate(plan.files):
        status, headers, data = _request(port, "GET", f"/audio/{sid}/{trial['index']}/{slot}.wav")
        assert (
            status == 200 and data == path.read_bytes() and headers["Content-Type"] == "audio/wav"
        )
    status, _, data = _request(port, "GET", f"/audio/{sid}/0/ref.wav")
    assert status == 200 and data == plan.reference.read_bytes()
    # a Range request (how the audio element seeks) gets exactly those bytes
    status, headers, data = _request(
        port, "GET", f"/audio/{sid}/0/1.wav", headers={"Range": "bytes=10-29"}
    )
    assert status == 206 and data == plan.files[1].read_bytes()[10:30]
    assert headers["Content-Range"] == f"bytes 10-29/{plan.files[1].stat().st_size}"
    scores = [10 * i for i in range(trial["slots"])]
    status, result = _json(
        port, "POST", "/api/rate", {"session": sid, "trial": 0, "scores": scores}
    )
    assert status == 200 and result["done"] == 1 and result["total"] == 2 and not result["complete"]
    saved = load_ratings(folder / result["saved"])
    assert saved.rater == "Ann" and len(saved.trials) == 1 and not saved.complete
    assert saved.trials[0].scores == dict(zip(plan.order, scores))  # unshuffled by the server
    assert {REFERENCE, ANCHOR} <= set(saved.trials[0].scores)
    status, result = _json(
        port, "POST", "/api/rate", {"session": sid, "trial": 1, "scores": [50] * trial["slots"]}
    )
    assert status == 200 and result["complete"] and load_ratings(folder / result["saved"]).complete
    assert [p.name for p in folder.glob("*.json")] == [result["saved"]]  # one file, no temp left


def test_concurrent_raters_each_get_their_own_file(running):
    test, port, folder = running
    n = 6
    barrier = threading.Barrier(n)
    results: dict[int, dict] = {}

    def rater(i: int) -> None:
        _, session = _json(port, "POST", "/api/session", {"rater": "same name"})
        slots = session["trials"][0]["slots"]
        barrier.wait(timeout=30)  # every POST at once
        body = {"session": session["session"], "trial": 0, "scores": [i] * slots}
        results[i] = _json(port, "POST", "/api/rate", body)[1]

    threads = [threading.Thread(target=rater, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    files = sorted(folder.glob("mushra-*.json"))
    assert len(files) == n and len({r["saved"] for r in results.values()}) == n
    for i, r in results.items():  # nobody's answer was lost or overwritten
        saved = load_ratings(folder / r["saved"])
        assert set(saved.trials[0].scores.values()) == {i}


@pytest.mark.parametrize(
    "path, body, status",
    [
        ("/api/session", b"{not json", 400),
        ("/api/session", b"[1, 2]", 400),
        ("/api/session", b"\xff\xfe", 400),
        ("/api/session", {"rater": ""}, 400),
        ("/api/session", {"rater": "x" * 81}, 400),
        ("/api/session", {"rater": "bell\x07"}, 400),
        ("/api/rate", {"session": "0" * 32, "trial": 0, "scores": []}, 404),
        ("/api/nope", {}, 404),
    ],
)
def test_malformed_posts_are_refused(running, path, body, status):
    _, port, folder = running
    got, data = _json(port, "POST", path, body)
    assert got == status and data["error"]
    assert not list(folder.glob("mushra-*.json"))


@pytest.mark.parametrize(
    "change",
    [
        {"scores": "50"},
        {"scores": [50, 50]},  # too few
        {"scores": "many"},
        {"scores": [101]},
        {"scores": [-1]},
        {"scores": [True]},
        {"scores": ["50"]},
        {"trial": 2},
        {"trial": "0"},
        {"trial": True},
    ],
)
def test_bad_ratings_are_refused_and_nothing_is_written(running, change):
    _, port, folder = running
    _, session = _json(port, "POST", "/api/session", {"rater": "x"})
    slots = session["trials"][0]["slots"]
    body = {"session": session["session"], "trial": 0, "scores": [50] * slots}
    for key, value in change.items():
        body[key] = [value[0]] * slots if key == "scores" and len(value) == 1 else value
    status, data = _json(port, "POST", "/api/rate", body)
    assert status == 400 and data["error"]
    assert not list(folder.glob("mushra-*.json"))


def test_oversized_and_lengthless_posts_are_refused(running):
    _, port, _ = running
    big = json.dumps({"rater": "x" * (S.MAX_BODY_BYTES + 10)}).encode()
    assert _request(port, "POST", "/api/session", big)[0] == 413
    # a declared length over the limit is refused before any of the body is read
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/api/session")
    conn.putheader("Content-Length", str(10**9))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("POST", "/api/session")
    conn.endheaders()  # no Content-Length
    assert conn.getresponse().status == 400
    conn.close()


@pytest.mark.parametrize(
    "path",
    [
        "/nope",
        "/report.json",
        "/audio/utt0/original.wav",
        "/static/../server.py",
        "/static/%2e%2e/server.py",
        "/static/../../../../etc/passwd",
        "/../../../etc/passwd",
        "/audio/../report.html",
        "/static/",
        "/api/info/../../plan.py",
    ],
)
def test_unknown_paths_are_404_and_nothing_outside_is_served(running, path):
    _, port, _ = running
    status, _, data = _request(port, "GET", path)
    assert status == 404 and b"import" not in data and b"root:" not in data


def test_audio_of_an_unknown_session_or_slot_is_404(running):
    _, port, _ = running
    _, session = _json(port, "POST", "/api/session", {"rater": "x"})
    sid, slots = session["session"], session["trials"][0]["slots"]
    assert _request(port, "GET", f"/audio/{sid}/0/{slots}.wav")[0] == 404
    assert _request(port, "GET", f"/audio/{'a' * 32}/0/0.wav")[0] == 404
    assert _request(port, "GET", f"/audio/{sid}/9/0.wav")[0] == 400
