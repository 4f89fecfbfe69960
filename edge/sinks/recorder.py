"""Recording sink: every frame's private measurement into an MCAP recording (``edge.recording``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.pipeline import Result
from edge.recording import Recorder
from edge.sinks.base import Sink
from firmware_sim.spec import ReadoutSpec


class RecordingSink(Sink):
    def __init__(self, path: str | Path, spec: ReadoutSpec, fingerprint: str, *, force: bool = False,
                 chunk_size: int = 256 * 1024, record_plain: bool = False) -> None:
        self.recorder = Recorder(path, spec, fingerprint, force=force, chunk_size=chunk_size,
                                 record_plain=record_plain)
        self.wants_plain = record_plain

    def write(self, result: Result, measurement: np.ndarray, plain: np.ndarray | None = None) -> None:
        self.recorder.write(measurement, result.epoch, result.sequence, result.timestamp_ns,
                            plain=plain if self.wants_plain else None)

    def close(self) -> None:
        self.recorder.close()
