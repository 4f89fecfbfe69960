"""A bounded on-disk spool: requests waiting for a server that is down, kept in order across restarts.

One file per request, named by a counter that only grows (``00000000000000000042.kcs``), so the
directory listing *is* the delivery order, and a device that restarts delivers what an earlier
run left before anything new. Each file is written atomically (temporary file, fsync, rename):
a crash leaves whole entries or none, never half of one::

    entry = b"KCS2" || u32 little-endian L || SHA-256(metadata || body) || L bytes of JSON metadata || body

The digest is checked before an entry is sent, so a flipped byte on disk is never delivered: an
entry that fails it, or is truncated, or whose metadata lacks what a request needs, is moved to
``quarantine/`` inside the spool (:meth:`Spool.quarantine`) and counted, and delivery goes on with
the next. Entries of the first format (``KCS1``, no digest) are still read.

The metadata is checked against a schema (:func:`check_meta`: each field's type and range), so an entry
whose digest holds but whose fields are of the wrong type (``"source_size": "ab"``) is quarantined like a
damaged one, in one log line, never a crash at every restart.

Only regular files are read (:func:`read_regular`: ``O_NOFOLLOW``, ``O_NONBLOCK``, then ``fstat``): a FIFO,
a device or a symbolic link named like an entry is moved to ``quarantine/`` when the spool opens (one log
line each), and one that appears later is refused when it is read, never waited on or followed.

One process writes a spool at a time: it holds an exclusive lock (``flock``) on ``SPOOL/.lock``, which
holds its process id, from :class:`Spool` until :meth:`Spool.close` (or its exit). A second process is
refused in one line naming the folder and the first process, so two writers never share the counter.
Temporary files of an interrupted write are removed at start, under the lock; one that cannot be removed
is skipped, never the end of the start.

The spool is bounded in entries and in bytes; what happens when it is full is the caller's
policy (``edge.sinks.forward``: drop the oldest, or stop capture until there is room).
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import stat
import struct
from pathlib import Path

from edge.errors import SpoolError
from firmware_sim.files import write_atomic

log = logging.getLogger(__name__)
MAGIC = b"KCS2"
LEGACY = b"KCS1"
SUFFIX = ".kcs"
QUARANTINE = "quarantine"
LOCK = ".lock"
ENTRY = re.compile(r"^[0-9]+\.kcs$")
REQUIRED = ("id", "sequence", "timestamp_ns", "origin", "fingerprint", "epoch", "header_length")
_INT, _TEXT = "a whole number >= 0", "a string"
_SCHEMA = {  # field: (the test of its value, in words); None is allowed where the writer may write None
    "id": (lambda v: isinstance(v, str) and v != "", "a non-empty string"),
    "sequence": (lambda v: _natural(v), _INT),
    "timestamp_ns": (lambda v: isinstance(v, int) and not isinstance(v, bool), "a whole number"),
    "origin": (lambda v: isinstance(v, str), _TEXT),
    "fingerprint": (lambda v: isinstance(v, str), _TEXT),
    "epoch": (lambda v: _natural(v), _INT),
    "header_length": (lambda v: v is None or _natural(v), f"{_INT} or null"),
    "rows": (lambda v: _natural(v) and v >= 1, "a whole number >= 1"),
    "latency_ms": (lambda v: v is None or (isinstance(v, dict) and all(
        isinstance(k, str) and isinstance(x, (int, float)) and not isinstance(x, bool) for k, x in v.items())),
        "an object of stage names to numbers, or null"),
    "source_size": (lambda v: v is None or (isinstance(v, list) and len(v) == 2 and all(
        _natural(x) and x >= 1 for x in v)), "[width, height] of whole numbers >= 1, or null"),
    "masks": (lambda v: v is None or isinstance(v, str), f"{_TEXT} or null"),
}


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_meta(meta: object, where: str) -> dict:
    """``meta`` if every field a request needs is there with a value of its type (extra fields pass); else
    SpoolError naming the first field that is missing or wrong, and its value."""
    if not isinstance(meta, dict):
        raise SpoolError(f"{where}: its metadata is a JSON {type(meta).__name__}, not an object")
    missing = [key for key in REQUIRED if key not in meta]
    if missing:
        raise SpoolError(f"{where} lacks {', '.join(missing)} in its metadata")
    for key, (fits, words) in _SCHEMA.items():
        if key in meta and not fits(meta[key]):
            shown = json.dumps(meta[key])
            raise SpoolError(f"{where}: metadata field {key!r} is {shown[:60]}, not {words}")
    return meta


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``limit`` bytes; OSError otherwise. Never
    follows a symbolic link (ELOOP), never waits on a FIFO (``O_NONBLOCK``), never reads a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a symbolic link, which is never followed") from None
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a device" if stat.S_ISCHR(info.st_mode) or \
                stat.S_ISBLK(info.st_mode) else "a folder" if stat.S_ISDIR(info.st_mode) else "a special file"
            raise OSError(errno.EINVAL, f"it is {kind}, not a regular file")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"it holds {info.st_size} bytes, over the {limit} allowed")
        with os.fdopen(os.dup(fd), "rb") as handle:
            return handle.read(limit + 1)[:limit]
    finally:
        os.close(fd)


class Spool:
    def __init__(self, folder: str | Path, *, max_entries: int = 10_000, max_bytes: int = 512 << 20) -> None:
        self.folder = Path(folder)
        self.max_entries, self.max_bytes = max_entries, max_bytes
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.folder.is_dir() and not self.folder.is_symlink():
                os.chmod(self.folder, 0o700)  # measurements wait here: the owner's only, whatever the umask
        except OSError as error:
            raise SpoolError(f"spool folder '{self.folder}' cannot be created: {error.strerror}") from None
        if not self.folder.is_dir():
            raise SpoolError(f"spool '{self.folder}' is not a folder")
        self._lock = _lock(self.folder)
        self.sizes: dict[int, int] = {}
        try:
            self._scan()
        except BaseException:
            self.close()
            raise
        self.bytes = sum(self.sizes.values())
        self.next = max(self.sizes, default=-1) + 1

    def _scan(self) -> None:
        """Index the entries (regular files only), remove interrupted writes, move special files aside."""
        with os.scandir(self.folder) as found:
            names = [(entry.name, entry) for entry in found]
        for name, entry in sorted(names):
            try:
                regular = entry.is_file(follow_symlinks=False)
                if name.startswith(".") and name.endswith(".tmp"):  # an interrupted write: the entry never existed
                    if regular or entry.is_symlink():
                        os.unlink(entry.path)
                elif ENTRY.match(name) and regular:
                    self.sizes[int(name[:-len(SUFFIX)])] = entry.stat(follow_symlinks=False).st_size
                elif ENTRY.match(name):
                    where = self._set_aside(name)
                    log.error("spool entry '%s' is not a regular file; moved to %s, never read", entry.path, where)
            except OSError as error:  # gone meanwhile, or not ours to remove: skipped, never the end of a start
                log.warning("spool '%s': skipped %r (%s)", self.folder, name, error.strerror or error)

    def close(self) -> None:
        """Release the spool's lock (another process may open it then)."""
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def __len__(self) -> int:
        return len(self.sizes)

    def _path(self, counter: int) -> Path:
        return self.folder / f"{counter:020d}{SUFFIX}"

    def fits(self, size: int) -> bool:
        return len(self.sizes) < self.max_entries and self.bytes + size <= self.max_bytes

    def put(self, counter: int, meta: dict, body: bytes) -> None:
        header = json.dumps(meta, separators=(",", ":"), sort_keys=True).encode()
        payload = MAGIC + struct.pack("<I", len(header)) + hashlib.sha256(header + body).digest() + header + body
        try:
            write_atomic(self._path(counter), payload, mode=0o600)
        except OSError as error:
            raise SpoolError(f"spool '{self.folder}': cannot write entry {counter}: {error.strerror}") from None
        self.sizes[counter] = len(payload)
        self.bytes += len(payload)
        self.next = max(self.next, counter + 1)

    def oldest(self, skip: int | None = None) -> int | None:
        for counter in sorted(self.sizes):
            if counter != skip:
                return counter
        return None

    def read(self, counter: int) -> tuple[dict, bytes]:
        """The entry's metadata and request body, or SpoolError when it is damaged (then quarantine it)."""
        path = self._path(counter)
        try:
            payload = read_regular(path, max(self.max_bytes, self.sizes.get(counter, 0)))
        except OSError as error:
            raise SpoolError(f"spool entry '{path}' cannot be read: {error.strerror or error}") from None
        if len(payload) < 8 or payload[:4] not in (MAGIC, LEGACY):
            raise SpoolError(f"spool entry '{path}' is not a keycam spool entry ({len(payload)} bytes)")
        (length,) = struct.unpack("<I", payload[4:8])
        start = 8 + (32 if payload[:4] == MAGIC else 0)
        if len(payload) < start + length:
            raise SpoolError(f"spool entry '{path}' is truncated")
        header, body = payload[start:start + length], payload[start + length:]
        if payload[:4] == MAGIC and hashlib.sha256(header + body).digest() != payload[8:40]:
            raise SpoolError(f"spool entry '{path}' is damaged (its SHA-256 digest does not match)")
        try:
            meta = json.loads(header)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise SpoolError(f"spool entry '{path}' has damaged metadata") from None
        meta = check_meta(meta, f"spool entry '{path}'")
        if meta["header_length"] is not None and meta["header_length"] > len(body):
            raise SpoolError(f"spool entry '{path}': metadata field 'header_length' is {meta['header_length']}, "
                             f"past the {len(body)} bytes of its request")
        return meta, body

    def quarantine(self, counter: int) -> Path:
        """Move a damaged entry aside (``quarantine/`` in the spool), out of the delivery order; its new path."""
        target = self._set_aside(self._path(counter).name)
        self.bytes -= self.sizes.pop(counter, 0)
        return target

    def _set_aside(self, name: str) -> Path:
        folder = self.folder / QUARANTINE
        source, target = self.folder / name, folder / name
        try:
            folder.mkdir(mode=0o700, exist_ok=True)
            os.replace(source, target)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise SpoolError(f"spool entry '{source}' cannot be moved to '{folder}': {error.strerror}") from None
        return target

    def remove(self, counter: int) -> None:
        self._path(counter).unlink(missing_ok=True)
        self.bytes -= self.sizes.pop(counter, 0)


def _lock(folder: Path) -> int:
    """An exclusive lock on ``folder/.lock`` (its descriptor), holding this process's id; SpoolError naming the
    process that holds it already."""
    path = folder / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise SpoolError(f"spool '{folder}': its lock file '{path}' cannot be opened: {error.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.pread(fd, 32, 0).decode("ascii", errors="replace").strip() or "unknown"
        os.close(fd)
        raise SpoolError(f"spool '{folder}' is in use by another keycam process (pid {holder}); give each run its "
                         f"own forward.spool, or stop that process first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd
