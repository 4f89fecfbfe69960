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
                 chunk_size: int = 256 * 1024) -> None:
        self.recorder = Recorder(path, spec, fingerprint, force=force, chunk_size=chunk_size)

    def write(self, result: Result, measurement: np.ndarray) -> None:
        self.recorder.write(measurement, result.epoch, result.sequence, result.timestamp_ns)

    def close(self) -> None:
        self.recorder.close()
