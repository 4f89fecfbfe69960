"""The page in a real browser: Debian's headless Chromium, driven by Playwright's Python package (``executable_path``:
no browser download). The run is real: the embedded default's face detector on scikit-image's astronaut, read out by
the virtual sensor, through the capture loop, with tracking and a zone when the events extra is installed.

The browser is refused without the token (no frame, 401s), logs in, sees a frame arrive, sees the face's box drawn over
noise where the answer puts it, follows an event (a detection without tracking) and sees it drawn as followed.
Screenshots go to the test's folder (and to ``$KEYCAM_WEB_SCREENSHOTS`` when it is set: docs/web-page.png is one).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import httpx
import pytest

from tests.edge.web.pages import TOKEN, running_page, token_file

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WAIT_MS = 30_000  # hang protection only
BOX, FOLLOWED = (0, 230, 118), (255, 145, 0)  # style.css: --box, --follow
ZONE = [[120, 40], [360, 40], [360, 320], [120, 320]]  # around the astronaut's face, camera pixels
MASK = [[420, 420], [500, 420], [500, 500], [420, 500]]  # a privacy mask in a corner, away from the face

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).is_file(), reason="Debian's chromium is not installed "
                                "(scripts/setup-venv.sh installs it with the test extras: apt-get install chromium)")


def _shot(page, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / name))
    keep = os.environ.get("KEYCAM_WEB_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(folder / name, Path(keep) / name)


def _until(page, expression: str) -> None:
    """Wait until ``expression`` holds in the page. (Playwright's wait_for_function evaluates its predicate with eval,
    which the page's Content-Security-Policy forbids, rightly; page.evaluate is not subject to it.)"""
    for _ in range(WAIT_MS // 50):  # hang protection only
        if page.evaluate(expression):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"the page never had {expression}")


def _pixel(page, x: float, y: float) -> tuple[int, int, int]:
    return tuple(page.evaluate("([x, y]) => Array.from(document.querySelector('#view').getContext('2d')"
                               ".getImageData(Math.round(x), Math.round(y), 1, 1).data.slice(0, 3))", [x, y]))


def _near(colour, wanted, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, wanted))


ROUGHNESS = """() => {  // mean |difference| of neighbouring picture pixels (green), one per streamed pixel
  const canvas = document.querySelector('#view'), step = window.keycam.scale;
  const data = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let total = 0, count = 0;
  for (let y = step * 40; y < canvas.height; y += step * 7)
    for (let x = 0; x + step < canvas.width; x += step) {
      total += Math.abs(data[(y * canvas.width + x) * 4 + 1] - data[(y * canvas.width + x + step) * 4 + 1]); count++;
    }
  return total / count;
}"""


def _refused(page, url: str, folder: Path) -> None:
    page.goto(url)
    page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
    assert page.locator("#page").is_hidden()
    for path in ("stream.mjpeg", "api/health", "api/events", "api/recordings"):
        assert page.request.get(url + path).status == 401, path
    page.fill("#token", "not-the-token")
    page.click("#login button")
    page.locator("#login-error").wait_for(state="visible", timeout=WAIT_MS)
    assert page.evaluate("window.keycam.frames") == 0
    _shot(page, folder, "web-refused.png")


def _face_drawn(page, results: Path) -> dict:
    _until(page, "window.keycam.frames >= 3")
    _until(page, "window.keycam.drawn.some(item => item.label === 'face')")
    answer, drawn = page.evaluate("[window.keycam.answer, window.keycam.drawn]")
    face = next(item for item in drawn if item["label"] == "face")
    written = {json.loads(line)["sequence"]: json.loads(line) for line in results.read_text().splitlines()}
    (detection,) = written[answer["sequence"]]["outputs"]["detections"]  # the answer the results file has
    assert detection["class"] == "face" and face["score"] == detection["score"]
    assert face["track"] == detection.get("track")
    x0, y0, x1, y1 = face["drawn"]
    assert _near(_pixel(page, x0, (y0 + y1) / 2), BOX) and _near(_pixel(page, (x0 + x1) / 2, y1), BOX)
    assert page.evaluate(ROUGHNESS) > 40, "the view should show noise, not a picture"
    return face


def _follow(page, tracking: bool) -> None:
    entry = page.locator("#event-list li", has_text="[new] face" if tracking else "face").first
    entry.wait_for(timeout=WAIT_MS)
    entry.click()
    page.locator("#event-detail").wait_for(state="visible", timeout=WAIT_MS)
    assert "face" in page.locator("#event-fields").inner_text()
    _until(page, "window.keycam.followed > 0")
    x0, y0, x1, y1 = next(item for item in page.evaluate("window.keycam.drawn") if item["followed"])["drawn"]
    assert _near(_pixel(page, x0, (y0 + y1) / 2), FOLLOWED)


def test_the_page_in_a_real_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    tracking = importlib.util.find_spec("trackers") is not None  # the events extra: events, else detections
    sections = {"readout": {"masks": [MASK]}}
    if tracking:
        sections |= {"events": {"enabled": True}, "zones": {"porch": {"coordinates": ZONE}}}
    with running_page(tmp_path, {"token_file": str(token_file(tmp_path))}, **sections) as (job, web), \
            sync_playwright() as playwright:
        url = web.server.url
        assert httpx.get(url + "stream.mjpeg", timeout=30).status_code == 401
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=ARGS,
            viewport={"width": 1100, "height": 900})
        try:
            page = browser.new_page()
            _refused(page, url, tmp_path)
            page.fill("#token", TOKEN)
            page.click("#login button")
            _face_drawn(page, tmp_path / "results.jsonl")
            answer = page.evaluate("window.keycam.answer")
            assert len(answer["masks"]) == 1 and [z["name"] for z in answer["zones"]] == (["porch"] if tracking else [])
            _follow(page, tracking)
            _until(page, "/measurement: 1 watching, [1-9]/.test(document.querySelector('#health-list').innerText)")
            page.evaluate("window.scrollTo(0, 0)")
            _shot(page, tmp_path, "web-page.png")
            page.click("#logout")
            page.locator("#login").wait_for(state="visible", timeout=WAIT_MS)
            assert page.request.get(url + "api/health").status == 401
        finally:
            browser.close()
