"""The source interface, and the base of each source kind's configuration.

A source yields frames, one at a time, until it ends. It is opened and closed explicitly (or used as
a context manager) and read by iteration::

    with FolderSource("frames/") as source:
        for frame in source:
            ...

``live`` sources (cameras, streams) produce frames whether or not anyone reads them, so the capture
loop may drop the oldest; recorded sources (files, folders, recordings) never drop. A frame that
cannot be decoded is skipped and counted in ``skipped``, never fatal. Most sources yield plain
frames, which the run's readout stage turns into measurements at once (``edge.sources.virtual``);
``measured`` sources (recordings) yield measurements already.

Each kind has a configuration model, a :class:`SourceConfig` with a literal ``kind`` and that kind's
own fields, which builds the source (``build``) and may claim a path given on the command line
(``for_path``). ``edge.sources`` registers the kinds and makes the discriminated union.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import BeforeValidator

from edge.frame import Frame
from edge.schema import Section

if TYPE_CHECKING:
    from edge.sensor import Readout


class Source(ABC):
    """Base class of frame sources."""

    live: bool = False
    measured: bool = False  # True for sources of measurements (recordings)
    channel_order: str = "bgr"  # OpenCV's order; picamera2's RGB888 is B,G,R in memory as well

    def __init__(self) -> None:
        self.skipped = 0  # frames that could not be decoded
        self._opened = False
        self._sequence = 0

    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> tuple[np.ndarray, int, str] | None:
        """The next (image, timestamp_ns, origin), or None at the end. Skips (and counts) bad frames."""

    def _frame(self, image: np.ndarray, timestamp_ns: int, origin: str) -> Frame:
        """Wrap what ``_read`` returned (sources of measurements override this)."""
        return Frame(image, self._sequence, timestamp_ns, origin)

    def _close(self) -> None:  # noqa: B027 - optional hook: most sources hold nothing to release
        """Release what ``_open`` acquired (nothing by default)."""

    damaged = False  # a recorded source that skipped damaged frames says so

    def summary(self) -> str | None:
        """One line for the run's summary (what was skipped, for instance), or None."""
        return None

    def health(self) -> dict[str, float]:
        """Gauges and counters of the device behind the source (frames it dropped, its temperature), for metrics."""
        return {}

    def open(self) -> Source:
        if not self._opened:
            self._open()
            self._opened = True
        return self

    def close(self) -> None:
        if self._opened:
            self._opened = False
            self._close()

    def read(self) -> Frame | None:
        if not self._opened:
            self.open()
        item = self._read()
        if item is None:
            return None
        frame = self._frame(*item)
        self._sequence += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()


def _not_empty(value):
    if isinstance(value, str) and not value.strip():
        raise ValueError("the path is empty; name a file or a folder")
    return value


PathSetting = Annotated[Path, BeforeValidator(_not_empty)]
"""A path in a source's settings: not empty; a Path, so that any file name the system allows is kept as it is."""


class SourceConfig(Section):
    """One source kind's settings. Subclasses set ``kind: Literal["..."]`` and their own fields."""

    kind: str

    def build(self, readout: Readout) -> Source:
        """The source these settings describe, for a run whose readout stage is ``readout``."""
        raise NotImplementedError

    @classmethod
    def for_path(cls, path: Path) -> SourceConfig | None:
        """These settings for a path named on the command line, if this kind reads such a path."""
        return None

    def describe(self) -> str:
        """A few words for summaries: the kind and what it reads."""
        return self.kind
