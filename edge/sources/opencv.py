"""OpenCV capture: a camera index (``0``), a video file, or a stream URL (rtsp://, http://).

Cameras and streams are ``live``; video files are not. Frame times: the file's position for video
files (so a replay keeps them); for live sources the wall clock (UTC) when the frame was taken, and
the host's monotonic clock beside it. A frame OpenCV fails to grab from a live source
is counted in ``skipped``; the capture loop decides when a camera has gone away.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field, model_validator

from edge.errors import ImageFileError
from edge.frame import Frame
from edge.sources.base import Source, SourceConfig


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a file name that is not UTF-8 (os.fsdecode's surrogates)
        return False
    return True


class OpenCVSource(Source):
    """``target``: a camera index, a stream URL or a video file; ``is_file`` says which when a name is ambiguous."""

    def __init__(self, target: int | str | Path, grab_retries: int = 3, *, is_file: bool | None = None) -> None:
        super().__init__()
        self.target = target
        text = str(target)
        if is_file is None:
            is_file = not (isinstance(target, int) or text.isdigit() or "://" in text)
        self.is_camera = not is_file and (isinstance(target, int) or text.isdigit())
        self.is_stream = not is_file and not self.is_camera
        self.live = not is_file
        self.grab_retries = grab_retries
        self._capture: cv2.VideoCapture | None = None
        self._fd: int | None = None

    def _open(self) -> None:
        if not self.live and not Path(str(self.target)).is_file():
            raise ImageFileError(f"video file '{self.target}' does not exist")
        target = int(self.target) if self.is_camera else str(self.target)
        if not self.live and not _utf8(target):  # OpenCV crashes on such names: open the file, pass its fd path
            self._fd = os.open(target, os.O_RDONLY)
            target = f"/proc/self/fd/{self._fd}"
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise ImageFileError(f"OpenCV cannot open '{self.target}' (not a camera, readable video or stream)")
        self._capture = capture

    def _read(self) -> Frame | None:
        assert self._capture is not None
        attempts = self.grab_retries if self.live else 1
        for _ in range(attempts):
            position = self._capture.get(cv2.CAP_PROP_POS_MSEC)  # before the read: the time of the frame it reads
            ok, image = self._capture.read()
            if ok and image is not None:
                if image.ndim == 2:
                    image = image[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
                if self.live:  # when it was taken: UTC, and the device's own clock for intervals
                    return self._frame(image, time.time_ns(), str(self.target), monotonic_ns=time.monotonic_ns())
                stamp = int(position * 1e6)  # a file's own time (0 for its first frame): replays keep it
                return self._frame(image, stamp, str(self.target))
            if self.live:
                self.skipped += 1
        return None

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class OpenCVConfig(SourceConfig):
    """A camera OpenCV opens by index (V4L2, USB webcams) or a network stream; both are live."""

    kind: Literal["opencv"] = "opencv"
    camera: int | None = Field(default=None, ge=0, le=255, description="camera index, e.g. 0 for /dev/video0")
    url: str = Field(default="", description="a stream URL instead of a camera, e.g. rtsp://host/stream")

    @model_validator(mode="after")
    def _one_target(self) -> OpenCVConfig:
        if (self.camera is None) == (not self.url):
            raise ValueError("set exactly one of source.camera (an index) and source.url (a stream)")
        if self.url and "://" not in self.url:
            raise ValueError(f"source.url {self.url!r} is not a URL (scheme://...); a video file is "
                             f"kind = \"video\" with path = ...")
        return self

    def build(self, sensor) -> Source:
        return OpenCVSource(self.url or self.camera, is_file=False)

    def describe(self) -> str:
        return f"stream {self.url}" if self.url else f"OpenCV camera {self.camera}"
