"""Recording sink: every frame's measurement, provenance, answer and events into MCAP (``edge.recording``).

``[record] path`` names a folder of segments (the form for a service: every start opens a new segment, and
``segment_s``, ``segment_mb``, ``keep_days`` and ``keep_gb`` bound them) or one file ending in ``.mcap`` (the form
for ``keycam record OUT.mcap``: refused if it exists, unless ``--force``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from edge.errors import ImageFileError
from edge.frame import Result
from edge.recording import Recorder, Retention, SegmentedRecorder, check_folder
from edge.recording.writer import CHUNK_SIZE
from edge.sinks.base import Sink, SinkConfig, SinkContext
from firmware_sim.spec import ReadoutSpec

SEGMENT_SETTINGS = ("segment_s", "segment_mb", "keep_days", "keep_gb")


def is_folder(path: str | Path) -> bool:
    """Whether a recording path names a folder of segments (no suffix, or an existing folder) or one .mcap file;
    one line for anything else."""
    path = Path(path)
    if path.suffix == ".mcap":
        return False
    if path.is_dir() or not path.suffix:
        return True
    raise ImageFileError(f"recording '{path}' should be a folder (no suffix: segments) or a file ending in .mcap")


class RecordingSink(Sink):
    role = "frames"

    def __init__(self, path: str | Path, spec: ReadoutSpec, fingerprint: str, *, force: bool = False,
                 chunk_size: int = CHUNK_SIZE, record_plain: bool = False, compression: str = "zstd",
                 retention: Retention | None = None, channel_order: str = "rgb", fit: str = "crop",
                 clock: Callable[[], int] = time.time_ns, tracking=None) -> None:
        self.path = Path(path)
        self.folder = is_folder(self.path)

        def one(target: Path, replace: bool = False) -> Recorder:
            return Recorder(target, spec, fingerprint, force=replace, chunk_size=chunk_size,
                            record_plain=record_plain, compression=compression, channel_order=channel_order, fit=fit)

        if self.folder:  # refused now, before the run touches anything
            self.segmented = SegmentedRecorder(self.path, one, retention or Retention(), clock=clock,
                                               chunk_size=chunk_size, plain=record_plain)
        else:
            Recorder.check(self.path, force=force)
            self._open = lambda: one(self.path, force)
        self.recorder: Recorder | None = None
        self.wants_plain = record_plain
        self.tracking = tracking  # the run's tracking stage: its last end events are recorded at close
        self._last = (0, 0)  # the last frame's sequence and time

    def start(self) -> None:
        if self.folder:
            if self.segmented.current is None:
                self.segmented.start()
        elif self.recorder is None:
            self.recorder = self._open()

    def write(self, result: Result) -> None:
        self.start()
        if self.folder:
            self.segmented.record(result)
        else:
            self.recorder.record(result, plain=self.wants_plain)
        self._last = (result.frame.sequence, result.frame.timestamp_ns)

    @property
    def _current(self) -> Recorder | None:
        return self.segmented.current if self.folder else self.recorder

    def close(self) -> None:
        current = self._current
        try:
            if current is not None and self.tracking is not None and current.frames:
                ended = self.tracking.finish()
                if ended:
                    current.write_events(ended, None, *self._last)
        finally:
            if self.folder:
                self.segmented.close()
            elif self.recorder is not None:
                self.recorder.close()

    def summary(self) -> str:
        if not self.folder:
            frames = self.recorder.frames if self.recorder is not None else 0
            return f"recorded {frames} measurements to {self.path}"
        segmented = self.segmented
        removed = f", {segmented.removed} old removed" if segmented.removed else ""
        return (f"recorded {segmented.frames} measurements to {self.path} ({segmented.opened} new "
                f"segment{'s' * (segmented.opened != 1)}{removed})")


class RecordConfig(SinkConfig):
    """``[record]``: keep the private measurements in MCAP (view them in Foxglove, replay them with ``keycam
    replay``): a folder of segments with retention, or one .mcap file."""

    path: str = Field(default="", description="a folder (segments named by their UTC start; every run opens a new "
                                              "one) or one file ending in .mcap (empty: do not record; unit: path)")
    segment_s: float = Field(default=3600.0, ge=0, le=7 * 86400, description="start a new segment after this "
                             "long (0: no time limit; unit: seconds; folders only)")
    segment_mb: float = Field(default=0.0, ge=0, le=10**6, description="start a new segment before it passes "
                              "this size (0: a tenth of keep_gb, or 1000 without it; unit: megabytes, 10^6 bytes; "
                              "folders only)")
    keep_days: float = Field(default=0.0, ge=0, le=36500, description="remove segments older than this, oldest "
                             "first (0: keep them; unit: days; folders only)")
    keep_gb: float = Field(default=0.0, ge=0, le=10**6, description="remove the oldest segments to keep the "
                           "folder's recordings within this (0: no limit; at least 0.01; unit: gigabytes, 10^9 "
                           "bytes; folders only)")
    chunk_kb: int = Field(default=256, ge=16, le=16384, description="messages a chunk holds before it is compressed "
                          "and written: what a killed process can lose; bigger chunks compress a still scene better "
                          "(unit: KiB)")
    compression: Literal["zstd", "lz4", "none"] = Field(default="zstd", description="how chunks are compressed "
                                                        "(zstd: smaller; lz4: faster; docs/benchmarks.md)")
    plain_debug: bool = Field(default=False, description="DEBUG ONLY: also record the plain frames; anyone with "
                                                         "the file sees the scene (loud warning)")

    @model_validator(mode="after")
    def _settings_agree(self) -> RecordConfig:
        if self.plain_debug and not self.path:
            raise ValueError("record.plain_debug needs record.path (the recording the plain frames go into)")
        try:
            folder = is_folder(self.path) if self.path else True
        except ImageFileError as error:
            raise ValueError(str(error)) from None
        if not folder:
            fields = type(self).model_fields
            named = [name for name in SEGMENT_SETTINGS if getattr(self, name) != fields[name].default]
            if named:
                raise ValueError(f"record.{named[0]} applies to a folder of segments; record.path '{self.path}' "
                                 f"names one file (drop the .mcap to record in segments)")
        if self.keep_gb and self.keep_gb < 0.01:
            raise ValueError(f"record.keep_gb = {self.keep_gb:g} is below 0.01 (10 MB): too small for a recording")
        if self.keep_gb and self.segment_mb * 2 > self.keep_gb * 1000:
            raise ValueError(f"record.segment_mb = {self.segment_mb:g} is more than half of record.keep_gb = "
                             f"{self.keep_gb:g} GB: retention could not keep one segment beside the one being "
                             f"written (set segment_mb to at most {self.keep_gb * 500:g})")
        return self

    @property
    def retention(self) -> Retention:
        return Retention(self.segment_s, self.segment_mb, self.keep_days, self.keep_gb)

    def check(self, force: bool = False) -> None:
        """What ``run`` refuses of the recording's path before it starts (``validate-config`` asks the same)."""
        if not self.path:
            return
        if is_folder(self.path):
            check_folder(self.path)
        else:
            Recorder.check(self.path, force=force)

    def build(self, context: SinkContext) -> Sink | None:
        if not self.path:
            return None
        manifest = context.manifest
        fit = context.answers.fit if context.answers is not None else manifest.input.fit
        return RecordingSink(self.path, manifest.spec, context.key.fingerprint, force=context.force,
                             chunk_size=self.chunk_kb * 1024, record_plain=self.plain_debug,
                             compression=self.compression, retention=self.retention,
                             channel_order=manifest.input.channel_order, fit=fit,
                             tracking=getattr(context, "tracking", None))
