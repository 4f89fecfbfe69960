"""The live view as an MJPEG stream: ``multipart/x-mixed-replace``, one JPEG per part, the answer in a part header.

Why MJPEG: every browser shows it in a plain ``<img>`` with no plug-in and no script (so do VLC, ffmpeg and Home
Assistant's MJPEG camera), it is plain HTTP (the cookie or bearer token authenticates it like any request, it
passes proxies) and it needs nothing beyond Starlette and uvicorn (uvicorn's WebSockets would need another
package on the device). The page reads the same stream with ``fetch`` and draws each part's answer
(``X-Keycam-Answer``, JSON) over that very frame, so the boxes never lag the picture.

Threads: the capture loop only replaces the feed's latest result (``edge.sinks.web.Feed``). One encoder
thread per view waits for a newer result while at least one viewer watches, at most ``fps`` times a second,
encodes it once for every viewer (OpenCV's JPEG encoder, which releases the GIL) and publishes the part; it
runs at a lower priority (niceness 10 on Linux), so on a busy CPU the loop's threads are scheduled first.
Viewers are coroutines on uvicorn's event loop: each is woken when a part is published and sends the newest
one; a viewer still sending (a slow link, a stalled browser) misses the parts published meanwhile. Nothing
queues, and nothing here ever waits on the loop's side.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

BOUNDARY = "keycamframe"
MEDIA_TYPE = f"multipart/x-mixed-replace; boundary={BOUNDARY}"
IDLE_S = 0.5  # how often an idle encoder looks at its stop flag


def part(jpeg: bytes, answer: dict) -> bytes:
    """One MJPEG part: the boundary, the headers (the answer as ASCII JSON on one line), the JPEG."""
    head = (f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n"
            f"X-Keycam-Answer: {json.dumps(answer, separators=(',', ':'))}\r\n\r\n")
    return head.encode("ascii") + jpeg + b"\r\n"


NICENESS = 10  # the encoder's niceness (Linux): on a busy CPU the capture loop's threads run first


def _yield_to_the_loop() -> None:
    """Lower this thread's scheduling priority, where the system allows it (Linux: niceness per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
    except (AttributeError, OSError):  # another system, or not allowed: the encoder runs at the loop's priority
        pass


class Stream:
    """One view's stream: its encoder thread (``start``, ``stop``) and its viewers (``frames``, on the event loop).

    ``render(result)`` turns a result into ``(jpeg, answer)`` or None (a frame it cannot show)."""

    def __init__(self, name: str, feed, render, fps: float) -> None:
        self.name, self.feed, self.render = name, feed, render
        self.period = 1.0 / fps
        self.viewers = 0  # coroutines streaming now (event loop thread)
        self.served = 0  # viewers since the start
        self.encoded, self.encode_s, self.bytes = 0, 0.0, 0  # parts made, time spent making them, their size
        self._part: tuple[int, bytes] | None = None  # (version, bytes) of the newest part
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakers: set[asyncio.Event] = set()
        self._wanted = threading.Event()  # set while anyone watches
        self._closing = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the encoder thread -------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._encode_forever, name=f"keycam-web-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._closing.set()
        self._wanted.set()
        self.feed.wake()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _encode_forever(self) -> None:
        _yield_to_the_loop()
        seen, last = 0, 0.0
        while not self._closing.is_set():
            if not self._wanted.wait(IDLE_S):
                continue
            pause = last + self.period - time.monotonic()
            if pause > 0 and self._closing.wait(pause):
                break
            version, result = self.feed.wait(seen, IDLE_S)
            if version == seen or result is None or self._closing.is_set():
                continue
            seen, last = version, time.monotonic()
            try:
                made = self.render(result)
            except Exception:  # noqa: BLE001 - a frame the page cannot draw must not end the page
                log.exception("[web] could not draw frame %d; the stream goes on", result.frame.sequence)
                continue
            if made is not None:
                self._publish(version, part(*made), time.monotonic() - last)

    def _publish(self, version: int, data: bytes, took_s: float) -> None:
        self._part = (version, data)
        self.encoded += 1
        self.encode_s += took_s
        self.bytes += len(data)
        self._wake()

    def _wake(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._wake_viewers)
            except RuntimeError:  # the event loop closed meanwhile: nobody is left to wake
                pass

    # -- the viewers (uvicorn's event loop) ------------------------------------------------------------------------

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def _wake_viewers(self) -> None:
        for waker in self._wakers:
            waker.set()

    async def frames(self):
        """The parts for one viewer: the newest on arrival, then each newer one it is ready for."""
        waker = asyncio.Event()
        self._wakers.add(waker)
        self.viewers += 1
        self.served += 1
        self._wanted.set()
        try:
            sent = -1
            while not self._closing.is_set():
                newest = self._part
                if newest is not None and newest[0] != sent:
                    sent = newest[0]
                    yield newest[1]
                    continue
                waker.clear()
                await waker.wait()
        finally:
            self._wakers.discard(waker)
            self.viewers -= 1
            if not self.viewers:
                self._wanted.clear()

    def stats(self) -> dict:
        return {"viewers": self.viewers, "served": self.served, "encoded": self.encoded,
                "encode_ms": round(self.encode_s / self.encoded * 1e3, 2) if self.encoded else None,
                "kb_per_frame": round(self.bytes / self.encoded / 1024, 1) if self.encoded else None,
                "fps_max": round(1.0 / self.period, 2)}
