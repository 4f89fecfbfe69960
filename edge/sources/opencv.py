"""OpenCV capture: a camera index (``0``), a video file, or a stream URL (rtsp://, http://).

Cameras and streams are ``live``; video files are not. Frame times: the file's position for video
files, the host's monotonic clock for live sources. A frame OpenCV fails to grab from a live source
is counted in ``skipped``; the capture loop decides when a camera has gone away.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageFileError
from edge.sources.base import Source


class OpenCVSource(Source):
    def __init__(self, target: int | str | Path, grab_retries: int = 3) -> None:
        super().__init__()
        self.target = target
        text = str(target)
        self.is_camera = isinstance(target, int) or text.isdigit()
        self.is_stream = "://" in text
        self.live = self.is_camera or self.is_stream
        self.grab_retries = grab_retries
        self._capture: cv2.VideoCapture | None = None

    def _open(self) -> None:
        if not self.live and not Path(str(self.target)).is_file():
            raise ImageFileError(f"video file '{self.target}' does not exist")
        target = int(self.target) if self.is_camera else str(self.target)
        capture = cv2.VideoCapture(target)
        if not capture.isOpened():
            capture.release()
            raise ImageFileError(f"OpenCV cannot open '{self.target}' (not a camera, readable video or stream)")
        self._capture = capture

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        assert self._capture is not None
        attempts = self.grab_retries if self.live else 1
        for _ in range(attempts):
            ok, image = self._capture.read()
            if ok and image is not None:
                if image.ndim == 2:
                    image = image[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
                if self.live:
                    stamp = time.monotonic_ns()
                else:
                    stamp = int(self._capture.get(cv2.CAP_PROP_POS_MSEC) * 1e6)
                return image, stamp, str(self.target)
            if self.live:
                self.skipped += 1
        return None

    def _close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None
