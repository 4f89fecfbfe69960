"""Connections that cannot stall the server: a deadline for every request head, and a cap that idle ones yield to.

uvicorn's h11 protocol times out only a connection idle *between* requests (``timeout_keep_alive``,
armed after an answer and cancelled by any byte): a client that connects and sends nothing, or
sends a request head a byte at a time, holds its connection, and a file descriptor, for ever (its
only bound is h11's 16 KiB on a head's size). This protocol adds:

- **a head deadline**: from the moment a request may begin (the connection opens, or the previous
  answer is sent) its whole head must arrive within ``header_timeout_s``; otherwise the connection
  is closed, after a 408 when part of a head came;
- **a connection cap**: past ``max_connections`` open connections, a new one closes the connection
  that has waited longest for a request head (an idle or trickling one), so a health probe always
  gets in; if every connection is busy with a request, the newcomer is answered 503 and closed;
- **no unread bodies**: a connection whose request was answered before its body was read (401,
  413, 503, 408) is closed, so a client cannot trickle a body for ever after its answer.

The body's own deadline (``body_timeout_s``, 408) is the application's (``edge.server.body``).
"""

from __future__ import annotations

import json
import time

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from edge.server.limits import Limits


class ConnectionStats:
    """Counters for /metrics: connections closed by each guard."""

    def __init__(self) -> None:
        self.open = 0
        self.head_timeouts = 0
        self.evicted = 0
        self.refused = 0
        self.unread_bodies = 0


def _raw(status: int, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n").encode()
    return head + body


class GuardedProtocol(H11Protocol):
    """uvicorn's h11 protocol with a head deadline, a connection cap and no unread bodies."""

    limits = Limits()
    stats = ConnectionStats()

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.timeout_keep_alive = self.limits.keep_alive_s
        self._head_timer = None
        self._waiting_since = time.monotonic()

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.stats.open += 1
        self._await_head()
        if len(self.connections) > self.limits.max_connections:
            self._make_room()

    def connection_lost(self, exc) -> None:
        self.stats.open -= 1
        self._cancel_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None and self.conn.their_state is not h11.IDLE:  # the head is whole
            self._cancel_head_timer()

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.SEND_BODY and not self.transport.is_closing():
            self.stats.unread_bodies += 1  # answered before its body was read: the rest is not wanted
            self.transport.close()
        super().on_response_complete()
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._await_head()

    # -- the head deadline --------------------------------------------------------------------

    def _await_head(self) -> None:
        self._cancel_head_timer()
        self._waiting_since = time.monotonic()
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.stats.head_timeouts += 1
        if self.conn.trailing_data[0]:  # part of a head came: say why the connection ends
            self.transport.write(_raw(408, "Request Timeout", f"the request head did not arrive within "
                                      f"{self.limits.header_timeout_s:g} s (--header-timeout-s)"))
        self.transport.close()

    # -- the connection cap -------------------------------------------------------------------

    def _idle(self) -> bool:
        return (self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)
                and not self.transport.is_closing())

    def _make_room(self) -> None:
        others = [p for p in self.connections if p is not self and not p.transport.is_closing()]
        if len(others) < self.limits.max_connections:
            return  # connections already closing make the room
        idle = [p for p in others if isinstance(p, GuardedProtocol) and p._idle()]
        if idle:
            oldest = min(idle, key=lambda p: p._waiting_since)
            self.stats.evicted += 1
            oldest.transport.close()
            return
        self.stats.refused += 1
        self.transport.write(_raw(503, "Service Unavailable", f"the server holds {self.limits.max_connections} "
                                  f"busy connections (--max-connections); retry in a second"))
        self.transport.close()


def guarded_protocol(limits: Limits, stats: ConnectionStats) -> type[GuardedProtocol]:
    """A protocol class for one server: uvicorn builds one instance per connection."""
    return type("GuardedProtocol", (GuardedProtocol,), {"limits": limits, "stats": stats})
