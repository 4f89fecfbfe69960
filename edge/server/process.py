"""The server process's own limits: file descriptors for the connection cap, and memory given back when freed.

- The soft limit on open files is raised to the hard limit at start, and the connection cap must
  leave room in it for the models, the logs and the listening socket (``RESERVED_FDS``) and for the
  connections accepted before the cap can act on them: asyncio accepts up to ``BACKLOG`` connections
  per turn of the event loop, and a connection over the cap closes another one two turns later, so
  a flood holds up to ``3 * BACKLOG`` descriptors more than the cap. A process that runs out of
  descriptors stops accepting for a second at a time (health then fails); one within this never does.
- glibc's malloc serves a freed block's size from its heap from then on (the mmap threshold rises
  to the largest block freed, up to 32 MiB), and keeps such memory after it is freed: request
  bodies of a few MiB then ratchet the resident size up. Fixing the threshold at 128 KiB (glibc's
  own starting value) maps every larger block on its own and unmaps it when freed (measured: the
  server's RSS returns to within a few MiB of idle after each abuse phase of
  tests/edge/server/test_abuse.py, instead of climbing by 100+ MiB).
"""

from __future__ import annotations

import ctypes
import resource

from edge.errors import ServerError

DEFAULT_CONNECTIONS = 1000

RESERVED_FDS = 64
BACKLOG = 128  # the listening socket's queue, and asyncio's accepts per turn of its loop
HEADROOM = RESERVED_FDS + 3 * BACKLOG  # descriptors beyond the connection cap
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 128 << 10


def raise_fd_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one (as far as the kernel allows); the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for target in (hard, 1 << 20, 1 << 16):
        if target == resource.RLIM_INFINITY or (soft != resource.RLIM_INFINITY and target <= soft):
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            return target
        except (ValueError, OSError):
            continue
    return soft


def fit_connections(wanted: int | None, soft: int) -> int:
    """The connection cap: ``wanted``, refused if the descriptors cannot hold it; None: 1000 or what they hold."""
    room = soft - HEADROOM if soft != resource.RLIM_INFINITY else 1 << 30
    if wanted is None:
        if room < 1:
            raise ServerError(f"this process may open only {soft} files, too few to serve ({HEADROOM} are needed "
                              f"beyond the connections); raise the limit (ulimit -n; LimitNOFILE= under systemd)")
        return min(DEFAULT_CONNECTIONS, room)
    if wanted > room:
        raise ServerError(f"--max-connections {wanted} needs more file descriptors than this process may open "
                          f"({soft}, of which {HEADROOM} are kept for models, logs and connections being "
                          f"accepted); lower it to {max(1, room)} or raise the limit (ulimit -n; LimitNOFILE= "
                          f"under systemd)")
    return wanted


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold (see above); False where the C library is not glibc."""
    try:
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
