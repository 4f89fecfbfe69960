"""The page's Starlette application.

    GET  /                         the page (static/index.html); /static/...: its script and style
    GET  /healthz                  200 "ok" while the page serves (never behind the token, for probes)
    GET  /api/session              {"token_required", "authenticated", "plain_view"} (never behind the token)
    POST /api/login                {"token": "..."}: sets the session cookie, or 401
    POST /api/logout               clears it
    GET  /stream.mjpeg             the measurement with its answer (edge.web.stream)          behind the token
    GET  /stream/plain.mjpeg       the restored plain view, only with [web] plain_view = true  behind the token
    GET  /api/health               the run's health (edge.web.panels)                         behind the token
    GET  /api/events?label=&zone=  the events, or each frame's detections                     behind the token
    GET  /api/recordings           the recordings of [record] path                            behind the token
    GET  /recordings/{name}        one of them, downloaded (measurements only)                 behind the token

Every answer carries a strict Content-Security-Policy (the page's own files only: no CDN, no inline script),
``nosniff``, no referrer and no framing; the data endpoints are not cached.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from edge.web.auth import COOKIE, REFUSED, Guard
from edge.web.panels import Recordings, events, health, recordings_path
from edge.web.stream import MEDIA_TYPE

log = logging.getLogger(__name__)
STATIC = Path(__file__).with_name("static")
LOGIN_BYTES = 4096  # a login body, at most
REFUSAL_PAUSE_S = 0.5  # a wrong token is answered after this pause
HEADERS = [(b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self'; "
                                        b"script-src 'self'; connect-src 'self'; frame-ancestors 'none'"),
           (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer"),
           (b"x-frame-options", b"DENY")]


class _Secured:
    """ASGI middleware: the security headers on every answer (streams included: nothing is buffered)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + HEADERS
            await send(message)

        await self.app(scope, receive, sending)


def _client(request: Request) -> str:
    return f"{request.client.host}:{request.client.port}" if request.client else "?"


class _Page:
    """The endpoints of one page (``edge.web.WebServer``)."""

    def __init__(self, server) -> None:
        self.server, self.sink = server, server.sink
        self.guard = Guard(self.sink.token)
        self.recordings = Recordings()

    def _refused(self, request: Request) -> Response | None:
        if self.guard.allows(request.headers, request.cookies):
            return None
        return JSONResponse({"error": REFUSED}, status_code=401, headers={"WWW-Authenticate": "Bearer"})

    async def index(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def session(self, request: Request) -> Response:
        return JSONResponse({"token_required": self.guard.required, "plain_view": "plain" in self.server.streams,
                             "authenticated": self.guard.allows(request.headers, request.cookies)})

    async def login(self, request: Request) -> Response:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > LOGIN_BYTES:
                return JSONResponse({"error": f"a login is at most {LOGIN_BYTES} bytes"}, status_code=413)
        try:
            token = json.loads(body or b"{}").get("token", "")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not self.guard.matches(token):
            log.warning("[web] refused a login from %s: wrong token", _client(request))
            await asyncio.sleep(REFUSAL_PAUSE_S)
            return JSONResponse({"error": "wrong token"}, status_code=401)
        answer = JSONResponse({"authenticated": True})
        answer.set_cookie(COOKIE, self.guard.session, httponly=True, samesite="strict", path="/",
                          secure=request.url.scheme == "https")
        return answer

    async def logout(self, request: Request) -> Response:
        answer = JSONResponse({"authenticated": False})
        answer.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    async def stream(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        view = request.path_params.get("view", "measurement")
        stream = self.server.streams.get(view)
        if stream is None:
            return JSONResponse({"error": "the plain view is off ([web] plain_view = false)"}, status_code=404)
        if self.server.viewers >= self.sink.settings.viewers:
            return JSONResponse({"error": f"{self.server.viewers} streams are open, the most [web] viewers allows"},
                                status_code=503, headers={"Retry-After": "5"})
        return StreamingResponse(stream.frames(), media_type=MEDIA_TYPE,
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    def health(self, request: Request) -> Response:  # sync: Starlette runs it in its thread pool
        return self._refused(request) or JSONResponse(health(self.sink, self.server.streams),
                                                      headers={"Cache-Control": "no-store"})

    def events(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        _, records, _, _ = self.sink.feed.snapshot()
        tracking = self.sink.context.tracking
        zones = [zone.name for zone in getattr(tracking, "zones", None) or []]
        found = events(records, tracking is not None, zones, request.query_params.get("label", ""),
                       request.query_params.get("zone", ""))
        return JSONResponse(found, headers={"Cache-Control": "no-store"})

    def recording_list(self, request: Request) -> Response:
        return self._refused(request) or JSONResponse(self.recordings.listing(self.sink.run),
                                                      headers={"Cache-Control": "no-store"})

    def recording(self, request: Request) -> Response:
        refused = self._refused(request)
        if refused is not None:
            return refused
        found = self.recordings.find(self.sink.run, request.path_params["name"])
        if found is None:
            where = recordings_path(self.sink.run)
            return JSONResponse({"error": f"no recording {request.path_params['name']!r} in "
                                          f"{str(where) if where else '[record] path (none)'}"}, status_code=404)
        return FileResponse(found, media_type="application/octet-stream", filename=found.name)


def create_app(server) -> Starlette:
    """The page of ``server`` (an ``edge.web.WebServer``)."""
    page = _Page(server)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        loop = asyncio.get_running_loop()
        for stream in server.streams.values():
            stream.bind(loop)
        yield

    routes = [Route("/", page.index), Route("/healthz", page.healthz), Route("/api/session", page.session),
              Route("/api/login", page.login, methods=["POST"]), Route("/api/logout", page.logout, methods=["POST"]),
              Route("/stream.mjpeg", page.stream), Route("/stream/{view}.mjpeg", page.stream),
              Route("/api/health", page.health), Route("/api/events", page.events),
              Route("/api/recordings", page.recording_list), Route("/recordings/{name}", page.recording),
              Mount("/static", StaticFiles(directory=STATIC), name="static")]
    app = Starlette(routes=routes, lifespan=lifespan)
    return _Secured(app)
