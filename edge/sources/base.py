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

A source returns :class:`~edge.frame.Frame` objects (``_read``), numbered by the base in the order it
produced them; a frame goes forward from there and never comes back.

Each kind has a configuration model, a :class:`SourceConfig` with a literal ``kind`` and that kind's
own fields, which builds the source for the sensor it feeds (``build``, given the run's
:class:`~edge.sensor.SensorFormat`) and may claim a path given on the command line (``claim``: how
surely it reads it; ``for_path``: its settings for it). ``edge.sources`` registers the kinds and makes
the discriminated union.
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
    from edge.sensor import SensorFormat


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
    def _read(self) -> Frame | None:
        """The next frame (made with :meth:`_frame`), or None at the end. Skips (and counts) bad frames."""

    def _frame(self, image: np.ndarray, timestamp_ns: int, origin: str, **provenance) -> Frame:
        """The source's next frame: ``image`` with the next sequence number, its time, its origin and, for sources
        of measurements, the rest of its provenance (``measured``, ``epoch``, ``fingerprint``, ``source_size``)."""
        return Frame(image, self._sequence, timestamp_ns, origin, **provenance)

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
        frame = self._read()
        if frame is not None:
            self._sequence = frame.sequence + 1
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


CLAIM_NONE, CLAIM_FALLBACK, CLAIM_EXACT = 0, 1, 2
"""How surely a source kind reads a path named on the command line (:meth:`SourceConfig.claim`): not at all,
as a fallback (a video: any file no other kind names), or by what the path is (a folder, an image, a .mcap)."""


class SourceConfig(Section):
    """One source kind's settings. Subclasses set ``kind: Literal["..."]`` and their own fields."""

    kind: str

    def build(self, sensor: SensorFormat) -> Source:
        """The source these settings describe, for a run whose sensor reads frames of format ``sensor``."""
        raise NotImplementedError

    @classmethod
    def claim(cls, path: Path) -> int:
        """How surely this kind reads ``path`` (:data:`CLAIM_NONE`, :data:`CLAIM_FALLBACK`, :data:`CLAIM_EXACT`);
        the strongest claim wins, and two equal strongest claims are refused (``edge.sources.config_for_path``)."""
        return CLAIM_NONE

    @classmethod
    def for_path(cls, path: Path) -> SourceConfig:
        """These settings for a path this kind claims."""
        raise NotImplementedError(f"source kind {cls.model_fields['kind'].default!r} reads no path")

    def describe(self) -> str:
        """A few words for summaries: the kind and what it reads."""
        return self.kind
