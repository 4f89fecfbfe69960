"""Results as JSON lines: one object per frame, to a file or standard output.

Fields: sequence, timestamp_ns (the frame's sensor or file time), origin, fingerprint, epoch,
outputs (per output: label, class name and score for classifiers; shape and a class histogram
for dense outputs) and, for live runs only, latency_ms per stage. Replays leave latency out so
that the same replay writes the same file, byte for byte. Every line is strict JSON: a NaN or an
infinity in an answer (a broken model's, or a server's) is written as null.

An existing results file is appended to by default, so a service restarted after a failure (or
delivering an earlier run's spool) never erases the results it wrote before; ``rotate`` moves it to
``NAME.1`` (``NAME.1`` to ``NAME.2``, ... keeping five) and starts a new one; ``replace`` starts over
(what ``keycam replay --output`` does, so that the same replay writes the same file). The file is
opened only when the run starts.
"""

from __future__ import annotations

import json
import math
import sys
import os
from pathlib import Path
from typing import Literal, TextIO

from pydantic import Field

from edge.errors import ConfigError
from edge.frame import Result
from edge.outputs import open_output
from edge.sinks.base import Sink, SinkConfig, SinkContext


KEEP = 5  # rotated files kept: NAME.1 .. NAME.5
MODES = ("append", "rotate", "replace")


def rotate(path: Path, keep: int = KEEP) -> None:
    """NAME -> NAME.1, NAME.1 -> NAME.2, ..., the oldest beyond ``keep`` dropped."""
    for index in range(keep, 0, -1):
        older = path.with_name(f"{path.name}.{index}")
        if index == keep:
            older.unlink(missing_ok=True)
        newer = path if index == 1 else path.with_name(f"{path.name}.{index - 1}")
        if newer.exists():
            os.replace(newer, older)


def json_line(record: dict) -> str:
    """``record`` as one line of strict JSON: a NaN or an infinity (a model's, or a server's answer) is null."""
    try:
        return json.dumps(record, sort_keys=True, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(record), sort_keys=True, allow_nan=False)


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


class ResultsSink(Sink):
    def __init__(self, target: str | Path | TextIO = "-", include_latency: bool = True, mode: str = "append") -> None:
        if mode not in MODES:
            raise ConfigError(f"results mode {mode!r}; use one of {', '.join(MODES)}")
        self.include_latency, self.mode = include_latency, mode
        self._path: Path | None = None
        if target == "-" or target is None:
            self._stream, self._owned = sys.stdout, False
        elif hasattr(target, "write"):
            self._stream, self._owned = target, False
        else:
            self._stream, self._owned, self._path = None, True, Path(target)

    def start(self) -> None:
        if self._stream is not None or self._path is None:
            return
        if self.mode == "rotate" and self._path.exists():
            rotate(self._path)
        self._stream = open_output(self._path, append=self.mode == "append")  # never through a link

    def write(self, result: Result) -> None:
        if self._stream is None:
            self.start()
        record = result.to_dict(include_latency=self.include_latency)
        self._stream.write(json_line(record) + "\n")
        self._stream.flush()

    def close(self) -> None:
        if self._owned and self._stream is not None and not self._stream.closed:
            self._stream.close()


class ResultsConfig(SinkConfig):
    """``[results]``: where each frame's answer goes, as JSON lines."""

    path: str = Field(default="-", min_length=1, description="'-' for standard output, or a file (unit: path)")
    existing: Literal["append", "rotate", "replace"] = Field(
        default="append", description="an existing results file is appended to, rotated to NAME.1 (five kept), "
                                      "or replaced")

    def build(self, context: SinkContext) -> Sink:
        return ResultsSink(self.path, include_latency=not context.replay, mode=self.existing)
