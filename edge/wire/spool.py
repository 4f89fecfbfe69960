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

The spool is bounded in entries and in bytes; what happens when it is full is the caller's
policy (``edge.sinks.forward``: drop the oldest, or stop capture until there is room).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path

from edge.errors import SpoolError
from firmware_sim.files import write_atomic

MAGIC = b"KCS2"
LEGACY = b"KCS1"
SUFFIX = ".kcs"
QUARANTINE = "quarantine"
REQUIRED = ("id", "sequence", "timestamp_ns", "origin", "fingerprint", "epoch", "header_length")


class Spool:
    def __init__(self, folder: str | Path, *, max_entries: int = 10_000, max_bytes: int = 512 << 20) -> None:
        self.folder = Path(folder)
        self.max_entries, self.max_bytes = max_entries, max_bytes
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SpoolError(f"spool folder '{self.folder}' cannot be created: {error.strerror}") from None
        if not self.folder.is_dir():
            raise SpoolError(f"spool '{self.folder}' is not a folder")
        for stale in self.folder.glob(".*.tmp"):  # an interrupted write: the entry never existed
            stale.unlink(missing_ok=True)
        self.sizes: dict[int, int] = {}
        for path in sorted(self.folder.glob("*" + SUFFIX)):
            if path.stem.isdigit():
                self.sizes[int(path.stem)] = path.stat().st_size
        self.bytes = sum(self.sizes.values())
        self.next = max(self.sizes, default=-1) + 1

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
            write_atomic(self._path(counter), payload)
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
            payload = path.read_bytes()
        except OSError as error:
            raise SpoolError(f"spool entry '{path}' cannot be read: {error.strerror}") from None
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
        missing = [key for key in REQUIRED if not isinstance(meta, dict) or key not in meta]
        if missing:
            raise SpoolError(f"spool entry '{path}' lacks {', '.join(missing)} in its metadata")
        return meta, body

    def quarantine(self, counter: int) -> Path:
        """Move a damaged entry aside (``quarantine/`` in the spool), out of the delivery order; its new path."""
        folder = self.folder / QUARANTINE
        folder.mkdir(exist_ok=True)
        source, target = self._path(counter), folder / self._path(counter).name
        try:
            os.replace(source, target)
        except FileNotFoundError:
            pass
        except OSError as error:
            raise SpoolError(f"spool entry '{source}' cannot be moved to '{folder}': {error.strerror}") from None
        self.bytes -= self.sizes.pop(counter, 0)
        return target

    def remove(self, counter: int) -> None:
        self._path(counter).unlink(missing_ok=True)
        self.bytes -= self.sizes.pop(counter, 0)
