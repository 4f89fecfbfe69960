"""Listening: the socket bound before anything is announced, and uvicorn configured as the server needs.

A server that cannot bind says so in one line before it says it is starting (uvicorn would log its
own error after the announcement and exit 1). uvicorn runs the guarded h11 protocol
(``edge.server.connections``) whatever else is installed, with the limits' keep-alive.
"""

from __future__ import annotations

import errno
import socket

from edge.errors import ServerError
from edge.server.limits import Limits

QUEUE = 2048  # connections the kernel holds for the server to accept (capped by net.core.somaxconn)


class _Listener(socket.socket):
    """A listening socket whose kernel queue stays ``QUEUE`` long whatever asyncio asks for.

    asyncio uses one number for the queue and for the connections it accepts per turn of its loop
    (``backlog``); the server wants a small turn (``BACKLOG``: the descriptors a flood can take
    before the cap acts) and a long queue (a probe waits its turn rather than have its SYN dropped,
    which costs it a second)."""

    def listen(self, backlog: int = QUEUE) -> None:
        super().listen(max(backlog, QUEUE))


def open_socket(host: str, port: int) -> socket.socket:
    """A bound (not yet listening) TCP socket on ``host:port``, or a ``ServerError`` that says why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = _Listener(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # asyncio sets TCP_NODELAY only for this proto
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart may rebind past TIME_WAIT
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        where = f"cannot listen on {host}:{port}"
        if error.errno == errno.EADDRINUSE:
            raise ServerError(f"{where}: port {port} is in use (another keycam serve?); stop that server or "
                              f"choose another --port") from None
        if error.errno == errno.EACCES:
            raise ServerError(f"{where}: port {port} needs privileges here; choose a port above 1023") from None
        if error.errno == errno.EADDRNOTAVAIL or isinstance(error, socket.gaierror):
            raise ServerError(f"{where}: {host!r} is not an address of this machine; use 127.0.0.1, 0.0.0.0 or "
                              f"one of its addresses (--host)") from None
        raise ServerError(f"{where}: {error.strerror or error}") from None
    return sock


def uvicorn_config(app, *, host: str, port: int, log_level: str = "warning"):
    """uvicorn's configuration for an app from ``create_app``: its limits, guarded connections, no websockets."""
    import uvicorn

    from edge.server.connections import guarded_protocol

    from edge.server.process import BACKLOG

    limits: Limits = app.state.limits
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False, ws="none",
                          http=guarded_protocol(limits, app.state.connections), timeout_graceful_shutdown=5,
                          timeout_keep_alive=limits.keep_alive_s, backlog=BACKLOG)
