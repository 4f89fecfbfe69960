"""Results as JSON lines: one object per frame, to a file or standard output.

Fields: sequence, timestamp_ns (the frame's sensor or file time), origin, fingerprint, epoch,
outputs (per output: label, class name and score for classifiers; shape and a class histogram
for dense outputs) and, for live runs only, latency_ms per stage. Replays leave latency out so
that the same replay writes the same file, byte for byte.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TextIO

from pydantic import Field

from edge.frame import Result
from edge.sinks.base import Sink, SinkConfig, SinkContext


class ResultsSink(Sink):
    def __init__(self, target: str | Path | TextIO = "-", include_latency: bool = True) -> None:
        self.include_latency = include_latency
        if target == "-" or target is None:
            self._stream, self._owned = sys.stdout, False
        elif hasattr(target, "write"):
            self._stream, self._owned = target, False
        else:
            self._stream, self._owned = open(Path(target), "w", encoding="utf-8"), True

    def write(self, result: Result) -> None:
        record = result.to_dict(include_latency=self.include_latency)
        self._stream.write(json.dumps(record, sort_keys=True) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._owned and not self._stream.closed:
            self._stream.close()


class ResultsConfig(SinkConfig):
    """``[results]``: where each frame's answer goes, as JSON lines."""

    path: str = Field(default="-", min_length=1, description="'-' for standard output, or a file (unit: path)")

    def build(self, context: SinkContext) -> Sink:
        return ResultsSink(self.path, include_latency=not context.replay)
