"""A folder of segments: a recording that lasts, a new file on every start, the oldest removed first.

``[record] path`` names a folder. Each segment is an ordinary recording (``edge.recording.writer``) named by the
wall-clock time it started, UTC, to the second: ``20261207T004512Z.mcap`` (``_001``, ``_002``, ... for a second
segment started within the same second), so the names sort as the segments were made. A new segment starts

- at every start of a run: a restarted service never refuses, never appends to, never overwrites a segment; the
  segment a killed run left behind stays, readable up to its last complete chunk;
- when the segment has lasted ``segment_s`` seconds, or would pass ``segment_mb`` megabytes with the next frame.

Retention removes whole segments, oldest (by name) first, never the one being written:

- ``keep_days``: a segment whose end is older than that (its file's modification time, which keycam sets to its
  clock's time when it closes a segment; the next segment's start where that is not between the segment's own
  start and the next one's), checked at every start, every new segment and once a minute;
- ``keep_gb``: before each frame, as many of the oldest segments as it takes for everything in the folder that
  keycam wrote (the closed segments, the one being written with the chunk in flight and the frame to come, and
  the summary its close will add) to stay within the budget. Without ``segment_mb`` a segment ends at a tenth of
  the budget (1000 MB without one), so that retention removes a tenth of the history at a time; ``segment_mb``
  may not be more than half the budget, so that there is always an older segment to remove.

Megabytes and gigabytes are 10^6 and 10^9 bytes. The clock (UTC nanoseconds) is injected, so a week of segments
can be tested in a second. One run writes to a folder at a time (a lock file held while it records).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import time
from calendar import timegm
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ImageFileError
from edge.frame import Result
from edge.recording.writer import CHUNK_SIZE, Recorder

log = logging.getLogger(__name__)

NAME = re.compile(r"^(\d{8}T\d{6}Z)(?:_(\d{3}))?\.mcap$")
STAMP = "%Y%m%dT%H%M%SZ"
LOCK = ".keycam-recording.lock"
MB, GB, SECOND, DAY = 10**6, 10**9, 10**9, 86_400 * 10**9
SUMMARY_RESERVE = 64 * 1024  # plus 1 % of the segment: what closing it adds (indexes, statistics)
EXPIRY_CHECK_NS = 60 * SECOND
AUTOMATIC_SEGMENT = 1000 * MB  # without segment_mb or keep_gb (a FAT32 stick takes files below 4 GiB)


@dataclass(frozen=True)
class Segment:
    path: Path
    start_ns: int  # from its name: the wall-clock time it started, UTC
    size: int  # bytes
    writing: bool = False  # the segment being written now (never removed)

    @property
    def name(self) -> str:
        return self.path.name


def segment_start(name: str) -> int | None:
    """The start of a segment named ``name`` (UTC nanoseconds), or None for a file that is not a segment."""
    found = NAME.match(name)
    return timegm(time.strptime(found.group(1), STAMP)) * SECOND if found else None


def segment_name(start_ns: int, taken: set[str]) -> str:
    """The name of a segment started at ``start_ns``, not one of ``taken``."""
    stamp = time.strftime(STAMP, time.gmtime(start_ns // SECOND))
    for n in range(1000):
        name = f"{stamp}.mcap" if n == 0 else f"{stamp}_{n:03d}.mcap"
        if name not in taken:
            return name
    raise ImageFileError(f"a thousand segments started at {stamp}: set record.segment_s or segment_mb higher")


def list_segments(folder: str | Path) -> list[Segment]:
    """The segments in ``folder``, oldest first (files keycam did not name as segments are not among them)."""
    found = []
    with os.scandir(folder) as entries:
        for entry in entries:
            start = segment_start(entry.name)
            if start is not None and entry.is_file(follow_symlinks=False):
                found.append(Segment(Path(entry.path), start, entry.stat(follow_symlinks=False).st_size))
    return sorted(found, key=lambda s: s.name)


def check_folder(folder: str | Path) -> Path:
    """Refuse, before anything is written, a segment folder keycam cannot use (it makes the last folder only)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ImageFileError(f"recording folder '{folder}' is a file; name a folder, or a file ending in .mcap")
    if not folder.exists() and not folder.parent.is_dir():
        raise ImageFileError(f"cannot record to '{folder}': directory '{folder.parent}' does not exist")
    where = folder if folder.exists() else folder.parent
    if not os.access(where, os.W_OK | os.X_OK):
        raise ImageFileError(f"cannot record to '{folder}': folder '{where}' is not writable")
    return folder


@dataclass(frozen=True)
class Retention:
    """When a segment ends and which old ones go (see the module's docstring); 0 turns a limit off."""

    segment_s: float = 0.0
    segment_mb: float = 0.0
    keep_days: float = 0.0
    keep_gb: float = 0.0

    @property
    def budget(self) -> int:
        return int(self.keep_gb * GB)

    @property
    def segment_bytes(self) -> int:
        """The size a segment ends before: ``segment_mb``, else a tenth of the budget, else 1000 MB."""
        if self.segment_mb:
            return int(self.segment_mb * MB)
        return self.budget // 10 if self.budget else AUTOMATIC_SEGMENT

    def expired(self, closed: list[Segment], next_start_ns: int, now_ns: int) -> list[Segment]:
        """The closed segments (oldest first) whose last frame is older than ``keep_days``."""
        if not self.keep_days:
            return []
        cutoff = now_ns - int(self.keep_days * DAY)
        gone = []
        for segment, following in zip(closed, [s.start_ns for s in closed[1:]] + [next_start_ns]):
            try:
                modified = segment.path.stat().st_mtime_ns
            except FileNotFoundError:
                continue
            end = modified if segment.start_ns <= modified <= following else following
            if end <= cutoff:
                gone.append(segment)
        return gone


def lock_folder(folder: Path):
    """Hold the folder's lock while recording (released by the kernel, whatever ends the process)."""
    handle = open(folder / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise ImageFileError(f"recording folder '{folder}' is in use by another keycam run; give each run a folder "
                             f"of its own") from None
    return handle


class SegmentedRecorder:
    """Records into a folder of segments (``open_segment(path)`` makes each one's Recorder)."""

    def __init__(self, folder: str | Path, open_segment: Callable[[Path], Recorder], retention: Retention, *,
                 clock: Callable[[], int] = time.time_ns, chunk_size: int = CHUNK_SIZE, plain: bool = False) -> None:
        self.folder = check_folder(folder)
        self.open_segment, self.retention, self.clock = open_segment, retention, clock
        self.chunk_size, self.plain = chunk_size, plain
        self.closed: list[Segment] = []
        self.current: Recorder | None = None
        self.current_start_ns = 0
        self.opened = self.removed = 0
        self._finished_frames = 0  # the frames of segments this run closed
        self._lock = None
        self._next_expiry = 0

    def start(self) -> None:
        self.folder.mkdir(mode=0o700, exist_ok=True)  # its recordings are private; so is the list of them
        self._lock = lock_folder(self.folder)
        self.closed = list_segments(self.folder)
        self._open(self.clock())

    def _open(self, now: int) -> None:
        name = segment_name(now, {s.name for s in self.closed})
        self.current = self.open_segment(self.folder / name)
        self.current_start_ns = segment_start(name)
        self.opened += 1
        log.info("recording into segment %s", self.current.path)
        self._expire(now)

    def _expire(self, now: int) -> None:
        for segment in self.retention.expired(self.closed, self.current_start_ns, now):
            self._remove(segment, f"older than {self.retention.keep_days:g} days")
        self._next_expiry = now + EXPIRY_CHECK_NS

    def _remove(self, segment: Segment, why: str) -> None:
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        self.closed.remove(segment)
        self.removed += 1
        log.info("removed recording segment %s (%s)", segment.name, why)

    def writing(self, incoming: int = 0) -> int:
        """At most the bytes the current segment will hold once a frame of ``incoming`` bytes is in and it is
        closed: what is on disk, the chunk in flight, the frame, and the summary."""
        size = self.current.size
        return size + self.chunk_size + incoming + SUMMARY_RESERVE + size // 100

    def used(self, incoming: int = 0) -> int:
        return sum(s.size for s in self.closed) + self.writing(incoming)

    @property
    def frames(self) -> int:
        """The frames this run recorded: those of the segments it closed and of the one being written (after a
        failed write, only those that reached the file)."""
        current = self.current
        return self._finished_frames + (current.frames if current is not None and not current.closed else 0)

    def _finish(self, now: int) -> Path:
        """Close the current segment; its modification time is its end, by the recorder's clock (``keep_days``)."""
        try:
            self.current.close()
        finally:
            self._finished_frames += self.current.frames
        path = self.current.path
        os.utime(path, ns=(now, now))
        return path

    def _roll(self, now: int) -> None:
        path = self._finish(now)
        self.closed.append(Segment(path, self.current_start_ns, path.stat().st_size))
        self.closed.sort(key=lambda s: s.name)
        self._open(now)

    def _due(self, now: int, incoming: int) -> bool:
        if not self.current.frames:
            return False
        elapsed = now - self.current_start_ns
        if self.retention.segment_s and elapsed >= self.retention.segment_s * SECOND:
            return True
        limit = self.retention.segment_bytes
        return bool(limit) and self.writing(incoming) > limit

    def _make_room(self, now: int, incoming: int) -> None:
        budget = self.retention.budget
        while budget and self.used(incoming) > budget:
            if self.closed:
                self._remove(self.closed[0], f"record.keep_gb = {self.retention.keep_gb:g}")
            elif self.current.frames:
                self._roll(now)  # the segment being written is too large to keep beside the next frame
            else:
                break  # nothing left to remove: the settings' check keeps a frame far below the budget

    def record(self, result: Result) -> None:
        if self.current is None:
            self.start()
        now = self.clock()
        found = self.current.encode(result, plain=self.plain)  # the same in any segment: encoded once
        if self._due(now, found.size):
            self._roll(now)
        self._make_room(now, found.size)
        self.current.add(found)
        if now >= self._next_expiry:
            self._expire(now)

    def segments(self) -> list[Segment]:
        """The folder's segments, oldest first, the one being written last (``writing``)."""
        if self.current is None:
            return list_segments(self.folder)
        return [*self.closed, Segment(self.current.path, self.current_start_ns, self.current.size, writing=True)]

    def close(self) -> None:
        try:
            if self.current is not None:
                self._finish(self.clock())
        finally:
            if self._lock is not None:
                self._lock.close()
                self._lock = None
