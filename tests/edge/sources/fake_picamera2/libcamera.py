"""Stand-ins for the two libcamera value types keycam's picamera source touches: ``Transform`` and ``ColorSpace``.

They take the real constructors' keywords and expose the real attributes (libcamera @26bfadc,
``src/py/libcamera/py_transform.cpp`` and ``py_color_space.cpp``: ``ColorSpace.ycbcrEncoding`` and
``ColorSpace.range`` are pybind enums, read by name), nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class YcbcrEncoding(Enum):  # py_color_space.cpp: "Null", "Rec601", "Rec709", "Rec2020"
    Null = 0
    Rec601 = 1
    Rec709 = 2
    Rec2020 = 3


class Range(Enum):
    Full = 0
    Limited = 1


@dataclass(frozen=True)
class ColorSpace:
    name: str
    ycbcrEncoding: YcbcrEncoding  # noqa: N815 - libcamera's own attribute names
    range: Range

    @staticmethod
    def Sycc() -> ColorSpace:  # noqa: N802 - libcamera's static constructors
        return ColorSpace("sYCC", YcbcrEncoding.Rec601, Range.Full)

    @staticmethod
    def Smpte170m() -> ColorSpace:  # noqa: N802
        return ColorSpace("SMPTE170M", YcbcrEncoding.Rec601, Range.Limited)

    @staticmethod
    def Rec709() -> ColorSpace:  # noqa: N802
        return ColorSpace("Rec709", YcbcrEncoding.Rec709, Range.Limited)

    @staticmethod
    def Raw() -> ColorSpace:  # noqa: N802
        return ColorSpace("RAW", YcbcrEncoding.Null, Range.Full)

    def __str__(self) -> str:
        return f"<libcamera.ColorSpace '{self.name}'>"


@dataclass(frozen=True)
class Transform:
    """``libcamera.Transform(hflip=0, vflip=0, transpose=0)``."""

    hflip: int = 0
    vflip: int = 0
    transpose: int = 0

    def __post_init__(self) -> None:
        if self.transpose:  # camera_sensor_legacy.cpp L958-965: a sensor cannot transpose
            raise RuntimeError("Unknown transform Transform(transpose=1)")
