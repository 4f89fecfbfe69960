"""The page over HTTP, on a real run (the face detector on the astronaut, tests/edge/web/pages.py): off by default and
guarded, the token (bearer or the login's cookie), the MJPEG stream (noise with its answer; the plain view only where
it is turned on, restored with the key), the recordings, and a page that never holds the loop up."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from edge.config import Config
from edge.errors import ConfigError
from edge.job import build_job
from edge.recording import Recorder
from edge.sinks.web import WebConfig, is_loopback
from firmware_sim.spec import DEFAULT_SPEC
from tests.edge.web.pages import TOKEN, configuration, page_of, parts, running_page, token_file

BEARER = {"Authorization": f"Bearer {TOKEN}"}
WAIT_S = 30  # hang protection only: this machine is shared, and a request may wait its turn


def _get(url: str, **request) -> httpx.Response:
    return httpx.get(url, timeout=WAIT_S, **request)


def _post(url: str, **request) -> httpx.Response:
    return httpx.post(url, timeout=WAIT_S, **request)
GUARDED = ("stream.mjpeg", "api/health", "api/events", "api/recordings", "recordings/x.mcap")


def _picture(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_the_page_is_off_by_default_on_loopback_and_guarded_elsewhere(tmp_path):
    assert not Config().web.enabled and Config().web.host == "127.0.0.1"
    assert WebConfig().build(None) is None
    with pytest.raises(ValidationError, match="reachable from other machines: set web.token_file"):
        WebConfig(enabled=True, host="0.0.0.0")
    with pytest.raises(ValidationError, match="plain_view shows the scene: it needs web.token_file"):
        WebConfig(enabled=True, plain_view=True)
    with pytest.raises(ValidationError, match="plain_view is set but web.enabled is false"):
        WebConfig(plain_view=True, token_file="t")
    loose = tmp_path / "loose.token"
    loose.write_text(TOKEN)
    loose.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        WebConfig(enabled=True, host="0.0.0.0", token_file=str(loose)).build(None)
    assert [is_loopback(h) for h in ("127.0.0.1", "127.3.2.1", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.20", "camera.local")] == [False] * 4


def test_a_port_in_use_is_one_line_before_anything_is_served(tmp_path):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        page = page_of(build_job(configuration(tmp_path, {"port": taken.getsockname()[1]})))
        with pytest.raises(ConfigError, match=r"^\[web\] cannot listen on 127\.0\.0\.1:\d+: the port is in use"):
            page.start()
        assert page.server is None
    finally:
        taken.close()


def test_without_the_token_only_the_page_itself_is_served(tmp_path):
    with running_page(tmp_path, {"token_file": str(token_file(tmp_path))}) as (_, page):
        url = page.server.url
        index = _get(url)
        assert index.status_code == 200 and "script-src 'self'" in index.headers["content-security-policy"]
        assert "<canvas" in index.text and "http" not in index.text.replace("http-equiv", "")  # no CDN
        assert _get(url + "healthz").text == "ok"
        assert _get(url + "api/session").json() == {"token_required": True, "plain_view": False,
                                                         "authenticated": False}
        for path in GUARDED:
            assert _get(url + path).status_code == 401, path
            assert _get(url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401, path
        assert _get(url + "api/health", headers=BEARER).status_code == 200
        assert _post(url + "api/login", json={"token": "wrong"}).status_code == 401
        with httpx.Client(base_url=url, timeout=WAIT_S) as browser:
            login = browser.post("api/login", json={"token": TOKEN})
            cookie = login.headers["set-cookie"]
            assert login.status_code == 200 and "HttpOnly" in cookie and "SameSite=strict" in cookie
            assert TOKEN not in cookie
            assert browser.get("api/session").json()["authenticated"] is True
            assert browser.get("api/events").status_code == 200
            browser.post("api/logout")
            assert browser.get("api/events").status_code == 401


def test_the_stream_is_the_measurement_with_its_answer_and_the_plain_view_is_off(tmp_path):
    with running_page(tmp_path) as (job, page):
        url = page.server.url
        assert _get(url + "stream/plain.mjpeg").status_code == 404
        (headers, jpeg), = parts(url + "stream.mjpeg")
        answer = json.loads(headers["x-keycam-answer"])
        picture = _picture(jpeg)
        plain = job.readout.prepare(job.plain_source.picture)[..., ::-1]  # the sensor's RGB -> B, G, R
        assert picture.shape == plain.shape == (128, 128, 3)
        assert np.abs(picture.astype(int) - plain).mean() > 40  # noise: nothing of the scene
        (face,) = answer["items"]
        assert face["label"] == "face" and answer["width"] == answer["height"] == 128
        x0, y0, x1, y1 = face["box"]  # the face's box in the streamed picture's pixels (model input, 128 x 128)
        assert 30 < x0 < x1 < 90 and 5 < y0 < y1 < 60
        health = _get(url + "api/health").json()
        assert health["fingerprint"] == job.key.fingerprint and health["measurement"] == [128, 128, 3]
        assert set(health["stage_ms"]) >= {"transform", "model", "decode"} and health["lost"] == 0


def test_the_plain_view_is_the_scene_restored_with_the_key_behind_the_token_with_a_warning(tmp_path, caplog):
    settings = {"token_file": str(token_file(tmp_path)), "plain_view": True}
    with running_page(tmp_path, settings) as (job, page):
        url = page.server.url
        assert any("plain_view is on" in r.getMessage() and "PLAIN" in r.getMessage() for r in caplog.records)
        assert _get(url + "api/session").json()["plain_view"] is True
        assert _get(url + "stream/plain.mjpeg").status_code == 401
        (headers, jpeg), = parts(url + "stream/plain.mjpeg", headers=BEARER)
        plain = job.readout.prepare(job.plain_source.picture)[..., ::-1]
        assert np.abs(_picture(jpeg).astype(int) - plain).mean() < 6  # the scene (JPEG's loss only)
        assert json.loads(headers["x-keycam-answer"])["view"] == "plain"
        (headers, jpeg), = parts(url + "stream.mjpeg", headers=BEARER)
        assert np.abs(_picture(jpeg).astype(int) - plain).mean() > 40


def _recordings(folder: Path) -> Path:
    folder.mkdir()
    with Recorder(folder / "2026-12-01T10-00-00Z.mcap", DEFAULT_SPEC, "kc1:0123456789abcdef") as recorder:
        for i in range(3):
            recorder.write(np.full((24, 32, 3), i, np.uint8), 0, i, 1_800_000_000_000_000_000 + i * 1000)
    whole = (folder / "2026-12-01T10-00-00Z.mcap").read_bytes()
    (folder / "2026-12-01T11-00-00Z.mcap").write_bytes(whole[: len(whole) // 2])  # being written: no summary yet
    (folder / "notes.txt").write_text("not a recording")
    return folder


def test_the_recordings_are_listed_and_downloaded_behind_the_token_and_nothing_else(tmp_path):
    folder = _recordings(tmp_path / "recordings")
    with running_page(tmp_path, {"token_file": str(token_file(tmp_path))}) as (job, page):
        url = page.server.url
        assert _get(url + "api/recordings", headers=BEARER).json() == {"path": None, "files": []}
        page.attach(SimpleNamespace(config=SimpleNamespace(record=SimpleNamespace(path=str(folder))),
                                    source=job.source, sinks=job.sinks, readout=job.readout))
        listed = _get(url + "api/recordings", headers=BEARER).json()
        assert listed["path"] == str(folder)
        first, second = listed["files"]
        assert first["name"] == "2026-12-01T10-00-00Z.mcap" and first["complete"] and first["messages"] >= 3
        assert first["start_ns"] == 1_800_000_000_000_000_000 and first["bytes"] == (folder / first["name"]).stat().st_size
        assert second["name"] == "2026-12-01T11-00-00Z.mcap" and not second["complete"]
        got = _get(url + "recordings/" + first["name"], headers=BEARER)
        assert got.status_code == 200 and got.content == (folder / first["name"]).read_bytes()
        assert "attachment" in got.headers["content-disposition"]
        assert _get(url + "recordings/" + first["name"]).status_code == 401
        for name in ("notes.txt", "..%2F..%2Fetc%2Fpasswd", "nothing.mcap"):
            assert _get(url + "recordings/" + name, headers=BEARER).status_code == 404, name


def _until(condition) -> None:
    for _ in range(1200):  # hang protection only
        if condition():
            return
        threading.Event().wait(0.05)
    raise AssertionError("never happened")


def _sequence(page) -> int:
    return page.feed.latest()[1].frame.sequence


def test_too_many_viewers_get_503_and_a_viewer_leaving_makes_room(tmp_path):
    with running_page(tmp_path, {"viewers": 1}) as (_, page):
        url = page.server.url
        with httpx.stream("GET", url + "stream.mjpeg", timeout=30) as first:
            chunks = first.iter_bytes()  # held: a dropped iterator closes the stream
            next(chunks)
            refused = _get(url + "stream.mjpeg")
            assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
        _until(lambda: page.server.viewers == 0)
        assert len(parts(url + "stream.mjpeg")) == 1  # the first viewer left: room again


def test_the_loop_never_waits_for_the_page_a_stuck_encoder_or_a_stalled_viewer(tmp_path):
    """The encoder stuck inside a frame, then a viewer that never reads: the run goes on, every write returns at once
    (the feed holds the newest result only), parts the stalled viewer cannot take are skipped, not queued, and a viewer
    who comes later gets frames newer than its arrival."""
    with running_page(tmp_path, {"fps": 60}, fps=30) as (_, page):
        stream = page.server.streams["measurement"]
        draw, release, inside = stream.render, threading.Event(), threading.Event()

        def stuck(result):
            inside.set()
            release.wait(60)  # hang protection only
            return draw(result)

        def padded(result):  # 200 KB parts: a stalled viewer's socket is full after a few
            jpeg, answer = draw(result)
            return jpeg, {**answer, "padding": "x" * 200_000}

        stream.render = stuck
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", page.server.port))
        stalled.sendall(b"GET /stream.mjpeg HTTP/1.1\r\nHost: camera\r\n\r\n")  # and never reads
        assert inside.wait(30)
        first, received = _sequence(page), page.feed.version
        for _ in range(2000):  # the loop's side, from this thread, while the encoder is stuck
            page.write(page.feed.latest()[1])
        assert page.feed.version >= received + 2000
        _until(lambda: _sequence(page) >= first + 10)  # and the run went on meanwhile
        stream.render = padded
        release.set()
        encoded = stream.encoded
        _until(lambda: stream.encoded >= encoded + 60)  # 12 MB the stalled viewer never took
        stream.render = draw
        arrived = _sequence(page)
        _, (headers, _) = parts(page.server.url + "stream.mjpeg", 2)
        assert json.loads(headers["x-keycam-answer"])["sequence"] > arrived
    stalled.close()  # only now: the run stopped, and its page with it, with the stalled viewer still connected
