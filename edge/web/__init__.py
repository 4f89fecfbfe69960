"""The page the device serves (``[web]``, docs/web.md): beside the device core, reached only through the ``[web]`` sink
(``edge.sinks.web``), which imports this package when the page starts.

- ``stream``: the live view, an MJPEG stream (``multipart/x-mixed-replace``) per view, encoded by a thread of
  its own from the latest result only while someone watches; each part carries its frame's answer in a header;
- ``pictures``: measurement codes as a picture, and the plain view (the measurement restored with the key);
- ``overlay``: a frame's answer (boxes, labels, track ids), the zones and the privacy masks, in the streamed
  picture's pixels;
- ``panels``: the events (or per-frame detections), the run's health and the recordings, as JSON;
- ``auth``: the token (a bearer header, or a cookie the login sets);
- ``app``: the Starlette application; ``static/``: the page itself (HTML, JS, CSS; no build step, no CDN).

:class:`WebServer` binds its socket before anything is announced (an address or port it cannot have is one
line), runs uvicorn in a thread of its own and stops with the run.
"""

from __future__ import annotations

import errno
import socket
import threading
import time

from edge.errors import ConfigError
from edge.web.pictures import MeasurementView, PlainView
from edge.web.stream import Stream

STARTUP_S = 10.0  # uvicorn's start, at most


def open_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket on ``host:port`` (uvicorn listens on it), or a ``ConfigError`` that says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may rebind past TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        where = f"[web] cannot listen on {host}:{port}"
        if error.errno == errno.EADDRINUSE:
            raise ConfigError(f"{where}: the port is in use; choose another web.port (0: any free one)") from None
        if error.errno == errno.EACCES:
            raise ConfigError(f"{where}: the port needs privileges here; choose a web.port above 1023") from None
        if error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
            raise ConfigError(f"{where}: {host!r} is not an address of this machine; use 127.0.0.1 or one of its "
                              f"addresses (web.host)") from None
        raise ConfigError(f"{where}: {error.strerror or error}") from None
    return sock


class WebServer:
    """The page of one run: its streams, its application, and uvicorn in a thread (``start``, ``stop``)."""

    def __init__(self, sink) -> None:
        from edge.web.app import create_app

        self.sink, self.settings = sink, sink.settings
        views = [MeasurementView(sink)] + ([PlainView(sink)] if self.settings.plain_view else [])
        self.streams = {view.name: Stream(view.name, sink.feed, view, self.settings.fps) for view in views}
        self.app = create_app(self)
        self.port = self.settings.port
        self.started_at = time.time()
        self._server = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @property
    def viewers(self) -> int:
        return sum(stream.viewers for stream in self.streams.values())

    def start(self) -> None:
        import uvicorn

        sock = open_socket(self.settings.host, self.settings.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False, http="h11",
                                ws="none", lifespan="on", timeout_graceful_shutdown=2, timeout_keep_alive=5)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, name="keycam-web",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + STARTUP_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise ConfigError(f"[web] the page on {self.url} did not start (see the log above)")
            time.sleep(0.01)
        for stream in self.streams.values():
            stream.start()

    def stop(self) -> None:
        """Stop the encoders, end every stream, and stop uvicorn (open connections get two seconds)."""
        for stream in self.streams.values():
            stream.stop()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def summary(self) -> str:
        parts = ", ".join(f"{s.name} {s.encoded} frames to {s.served} viewers" for s in self.streams.values())
        return f"web page on {self.url}: {parts}"
