"""The source interface: something that yields frames, one at a time, until it ends.

A source is opened and closed explicitly (or used as a context manager) and read by iteration::

    with FolderSource("frames/") as source:
        for frame in source:
            ...

``live`` sources (cameras, streams) produce frames whether or not anyone reads them, so the capture
loop may drop the oldest; recorded sources (files, folders, recordings) never drop. A frame that
cannot be decoded is skipped and counted in ``skipped``, never fatal.

:func:`fit_frame` brings a frame to the model's input size the way a sensor bins before it
digitises: centre-crop to the target's aspect ratio, then area-average down (or interpolate up).
It runs before the ADC transform, never after.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # (H, W, C) codes in the source's channel order
    sequence: int  # 0, 1, 2, ... in the order the source produced them
    timestamp_ns: int  # the sensor's or the file's time of the frame, nanoseconds
    origin: str  # where it came from: a file name, a camera, a stream
    measured: bool = False  # True when ``image`` is already a private measurement (virtual sensor, recording)
    epoch: int = 0  # key epoch of a measurement
    fingerprint: str = ""  # the key a measurement was made with, when the source knows it (recordings)


class Source(ABC):
    """Base class of frame sources."""

    live: bool = False
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


def fit_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre-crop ``image`` (H, W, C) to the aspect ratio of height x width, then resize to it."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if h * width > w * height:  # too tall: crop rows
        keep = max(1, round(w * height / width))
        top = (h - keep) // 2
        image = image[top:top + keep]
    elif h * width < w * height:  # too wide: crop columns
        keep = max(1, round(h * width / height))
        left = (w - keep) // 2
        image = image[:, left:left + keep]
    shrinking = image.shape[0] >= height and image.shape[1] >= width
    resized = cv2.resize(np.ascontiguousarray(image), (width, height),
                         interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    if resized.ndim == 2:
        resized = resized[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    return resized


def to_sensor(image: np.ndarray, spec, height: int, width: int, source_order: str = "bgr",
              sensor_order: str = "bgr") -> np.ndarray:
    """A picture as a sensor of ``spec`` would deliver it: model size, channel count and order, code depth.

    8-bit pictures on a deeper sensor are left-aligned (code << (bits - 8)).
    """
    image = fit_frame(image, height, width)
    if spec.channels == 1 and image.shape[2] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    elif spec.channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    elif spec.channels == 3 and sensor_order != source_order:
        image = image[:, :, ::-1]
    if image.dtype != spec.input_dtype:
        image = image.astype(spec.input_dtype) << (spec.input_bits - 8)
    return np.ascontiguousarray(image)
