"""The service manager's notification protocol (``sd_notify(3)``), for ``Type=notify`` with a watchdog.

systemd hands a service the address of its notification socket in ``$NOTIFY_SOCKET``: an AF_UNIX datagram socket,
a path, or an abstract name written with a leading ``@`` (sent with a leading NUL byte). Each message is one
datagram of newline-separated ``NAME=value`` lines. With ``WatchdogSec=`` it also sets ``$WATCHDOG_USEC`` (and
``$WATCHDOG_PID``: the watchdog is ours only where that is our process id, as ``sd_watchdog_enabled(3)`` says).
The protocol is a dozen lines, written here: no package (``sdnotify``'s last release is from 2017, and
``systemd-python`` needs libsystemd's headers to build).

:class:`Notifier` is what the capture loop (``edge.loop``) tells systemd:

- ``READY=1`` once the source is open and its first frame has been answered and handed to the sinks (the service
  does its job); until then systemd's start timeout applies (``TimeoutStartSec=``), not the watchdog. While the
  first open is retried (``[loop] open_retries``), each wait sends ``EXTEND_TIMEOUT_USEC=`` (the wait plus
  :data:`OPEN_ALLOWANCE_S` for the next open and its first frame), so a camera that is slow to appear is not killed
  for it, however the retries are configured;
- ``WATCHDOG=1`` from the loop's own thread each time a frame has gone through every stage (at most one every
  :data:`BEAT_S` seconds, or every quarter of the watchdog's timeout where that is shorter): a loop that is wedged
  anywhere (a camera that hangs, a model, a sink) sends none, and systemd restarts the service. No thread beats on
  a timer. (A run whose every frame fails with ``on_frame_error = "skip"`` sends none either: it is restarted too);
- ``STATUS=`` lines (``systemctl status keycam``): opening, retrying, running (frames, drops, errors), stopping;
- ``STOPPING=1`` when the loop stops (a signal, the end of the source, an error), before the sinks are closed.

Without ``$NOTIFY_SOCKET`` (not a ``Type=notify`` service) every call does nothing. A message that cannot be sent
(the socket gone) is logged once and never stops the loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

BEAT_S = 1.0  # at most one WATCHDOG=1 (with a STATUS= line) a second
OPEN_ALLOWANCE_S = 120.0  # after a retry's wait: time for the next open and its first frame (an RTSP connect: 30 s)


def socket_address(value: str) -> str | bytes | None:
    """``$NOTIFY_SOCKET`` as ``socket.sendto`` takes it: a path, or an abstract name (``@name`` -> ``b"\\0name"``);
    None for anything else (empty, or a kind of address this protocol does not use here, such as ``vsock:``)."""
    if value.startswith("@") and len(value) > 1:
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None


def watchdog_seconds(environ: Mapping[str, str], pid: int) -> float | None:
    """The watchdog's timeout in seconds when it watches process ``pid`` (``sd_watchdog_enabled``), else None."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    owner = environ.get("WATCHDOG_PID", "")
    if usec <= 0 or (owner and owner != str(pid)):
        return None
    return usec / 1e6


class Notifier:
    """Messages to the service manager (see the module's docstring). ``environ``: where ``$NOTIFY_SOCKET`` and
    ``$WATCHDOG_USEC`` are read (default: this process's); ``clock``: monotonic seconds, for the beats' spacing."""

    def __init__(self, environ: Mapping[str, str] | None = None, clock: Callable[[], float] = time.monotonic,
                 pid: int | None = None) -> None:
        environ = os.environ if environ is None else environ
        self.address = socket_address(environ.get("NOTIFY_SOCKET", ""))
        self.watchdog_s = watchdog_seconds(environ, os.getpid() if pid is None else pid)
        self.interval_s = min(BEAT_S, self.watchdog_s / 4) if self.watchdog_s else BEAT_S
        self.clock = clock
        self.ready_sent = False
        self._last_beat: float | None = None
        self._socket: socket.socket | None = None
        self._failed = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, **fields) -> bool:
        """One message: ``NAME=value`` lines (``STATUS`` on one line). False when there is no socket or it failed."""
        if self.address is None:
            return False
        lines = [f"{name}={' '.join(str(value).split()) if name == 'STATUS' else value}"
                 for name, value in fields.items() if value is not None]
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._socket.sendto("\n".join(lines).encode(), self.address)
                return True
            except OSError as error:
                if not self._failed:  # once: a service manager that went away must not flood the log
                    log.warning("the service manager's notification socket %r cannot be reached (%s); the service "
                                "goes on without telling it", os.fsdecode(self.address).replace("\0", "@"),
                                error.strerror or error)
                    self._failed = True
                return False

    def status(self, text: str) -> bool:
        return self.send(STATUS=text)

    def ready(self, status: str) -> bool:
        """Start-up is complete: the first frame went through the loop."""
        self.ready_sent = True
        self._last_beat = self.clock()
        return self.send(READY=1, STATUS=status, WATCHDOG=1 if self.watchdog_s else None)

    def extend(self, seconds: float, status: str) -> bool:
        """Before READY=1: start-up goes on for at most ``seconds`` more (systemd's start timeout is moved on)."""
        return self.send(EXTEND_TIMEOUT_USEC=int(seconds * 1e6), STATUS=status)

    def beat(self, status: Callable[[], str]) -> bool:
        """A frame went through the loop: ``WATCHDOG=1`` (where the watchdog is on) and ``STATUS=status()``, at most
        every ``interval_s``. Call it only from the loop's own work, never from a timer."""
        if self.address is None:
            return False
        now = self.clock()
        if self._last_beat is not None and now - self._last_beat < self.interval_s:
            return False
        self._last_beat = now
        return self.send(WATCHDOG=1 if self.watchdog_s else None, STATUS=status())

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING=1, STATUS=status)

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None
