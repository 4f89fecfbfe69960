"""Recording sink: every frame's private measurement into an MCAP recording (``edge.recording``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from edge.frame import Result
from edge.recording import Recorder
from edge.sinks.base import Sink, SinkConfig, SinkContext
from firmware_sim.spec import ReadoutSpec


class RecordingSink(Sink):
    role = "frames"

    def __init__(self, path: str | Path, spec: ReadoutSpec, fingerprint: str, *, force: bool = False,
                 chunk_size: int = 256 * 1024, record_plain: bool = False) -> None:
        self._open = lambda: Recorder(path, spec, fingerprint, force=force, chunk_size=chunk_size,
                                      record_plain=record_plain)
        Recorder.check(path, force=force)  # refused now, before the run touches anything
        self.path = Path(path)
        self.recorder: Recorder | None = None
        self.wants_plain = record_plain

    def start(self) -> None:
        if self.recorder is None:
            self.recorder = self._open()

    def write(self, result: Result) -> None:
        self.start()
        frame = result.frame
        self.recorder.write(frame.image, frame.epoch, frame.sequence, frame.timestamp_ns,
                            plain=frame.plain if self.wants_plain else None, source_size=frame.source_size,
                            masks=frame.masks)

    def close(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def summary(self) -> str:
        frames = self.recorder.frames if self.recorder is not None else 0
        return f"recorded {frames} measurements to {self.path}"


class RecordConfig(SinkConfig):
    """``[record]``: keep the private measurements in an MCAP recording (replay it with ``keycam replay``)."""

    path: str = Field(default="", description="the recording, .mcap (empty: do not record; unit: path)")
    plain_debug: bool = Field(default=False, description="DEBUG ONLY: also record the plain frames; anyone with "
                                                         "the file sees the scene (loud warning)")

    @model_validator(mode="after")
    def _plain_needs_a_recording(self) -> RecordConfig:
        if self.plain_debug and not self.path:
            raise ValueError("record.plain_debug needs record.path (the recording the plain frames go into)")
        return self

    def build(self, context: SinkContext) -> Sink | None:
        if not self.path:
            return None
        return RecordingSink(self.path, context.manifest.spec, context.key.fingerprint, force=context.force,
                             record_plain=self.plain_debug)
