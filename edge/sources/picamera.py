"""The Raspberry Pi camera through picamera2: the only module that imports picamera2.

picamera2 ships with Raspberry Pi OS (``python3-picamera2``) and cannot be installed elsewhere (it
needs libcamera), so it is imported when a camera is opened, and tests pass a fake with picamera2's
real API (``camera_factory``). What this source asks of picamera2 (checked against picamera2
0.3.38's source):

- ``create_video_configuration(main=..., lores=..., raw=..., controls=..., buffer_count=...)`` with
  stream dicts ``{"size": (w, h), "format": ...}`` (sizes are tuples of even numbers; lores may not
  exceed main and must be YUV420 on a Pi 4), then ``configure`` and ``start``;
- the model-size stream: ``main`` in ``RGB888`` (B,G,R in memory) when it is the only stream, or
  ``lores`` in ``YUV420`` (converted to B,G,R here, stride padding dropped) beside a larger main;
  optionally the unpacked raw Bayer stream (``SRGGB12`` and friends: ``make_array("raw")`` is
  uint8 (h, stride), viewed here as uint16 codes) for raw-mode readout specs;
- controls: ``FrameRate`` (frames per second), ``ExposureTime`` (microseconds, with ``AeEnable``
  off) and ``AnalogueGain``;
- per frame: ``capture_request(wait=seconds)``, ``make_array``, ``get_metadata()["SensorTimestamp"]``
  (nanoseconds) and ``release()`` in a ``finally``: the request is always released.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from edge.errors import CameraError
from edge.sensor import fit_frame
from edge.sources.base import Source, SourceConfig


def _even(value: int) -> int:
    return value + (value % 2)


def _i420_to_bgr(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """picamera2's YUV420 array, (h * 3 // 2, stride) with each plane's rows padded to the stride, as B,G,R."""
    stride = array.shape[1]
    luma = array[:height, :width]
    chroma = array[height:].reshape(-1)  # U then V, each (h/2) rows of stride/2 bytes
    plane = (height // 2) * (stride // 2)
    u = chroma[:plane].reshape(height // 2, stride // 2)[:, : width // 2]
    v = chroma[plane: 2 * plane].reshape(height // 2, stride // 2)[:, : width // 2]
    packed = np.concatenate([luma.reshape(-1), u.reshape(-1), v.reshape(-1)])  # unpadded I420
    return cv2.cvtColor(packed.reshape(height * 3 // 2, width), cv2.COLOR_YUV2BGR_I420)


class PicameraSource(Source):
    live = True
    channel_order = "bgr"

    def __init__(self, height: int, width: int, *, camera_num: int = 0, main_size: tuple[int, int] | None = None,
                 raw_format: str | None = None, frame_rate: float | None = None, exposure_us: int | None = None,
                 analogue_gain: float | None = None, timeout_s: float = 2.0, buffer_count: int = 4,
                 camera_factory: Callable[[int], object] | None = None) -> None:
        super().__init__()
        self.height, self.width = height, width
        self.camera_num = camera_num
        self.main_size = main_size  # (width, height) of a larger main stream, or None
        self.raw_format = raw_format
        self.timeout_s = timeout_s
        self.buffer_count = buffer_count
        self.controls: dict[str, object] = {}
        if frame_rate is not None:
            self.controls["FrameRate"] = float(frame_rate)
        if exposure_us is not None:
            self.controls.update({"AeEnable": False, "ExposureTime": int(exposure_us)})
        if analogue_gain is not None:
            self.controls["AnalogueGain"] = float(analogue_gain)
        self._factory = camera_factory
        self._camera = None
        self._stream = "main"
        if raw_format is not None:
            self.channel_order = "raw"

    def _open(self) -> None:
        factory = self._factory
        if factory is None:
            try:
                from picamera2 import Picamera2  # the one import of picamera2 in keycam
            except ImportError as error:
                raise CameraError(f"picamera2 is not available ({error}); on Raspberry Pi OS: "
                                  f"sudo apt install python3-picamera2, and a venv made with --system-site-packages") from None
            factory = Picamera2
        try:
            camera = factory(self.camera_num)
        except (RuntimeError, IndexError) as error:
            raise CameraError(f"camera {self.camera_num} cannot be opened: {error}") from None
        model = (_even(self.width), _even(self.height))
        main = {"size": model, "format": "RGB888"}
        lores = None
        if self.main_size is not None and tuple(self.main_size) != model:
            main = {"size": (_even(self.main_size[0]), _even(self.main_size[1])), "format": "RGB888"}
            lores = {"size": model, "format": "YUV420"}
            self._stream = "lores"
        raw = {"format": self.raw_format} if self.raw_format else {}
        try:
            config = camera.create_video_configuration(main=main, lores=lores, raw=raw, controls=dict(self.controls),
                                                       buffer_count=self.buffer_count)
            camera.configure(config)
            camera.start()
        except (RuntimeError, ValueError, TypeError) as error:
            camera.close()
            raise CameraError(f"camera {self.camera_num} refused the configuration: {error}") from None
        self._camera = camera

    def _convert(self, request) -> np.ndarray:
        if self.raw_format:
            raw = request.make_array("raw")  # uint8 (h, stride)
            codes = raw.view(np.uint16)[:, : self.width]  # unpacked: 16-bit words, padding past the width dropped
            return np.ascontiguousarray(codes[: self.height])[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
        image = request.make_array(self._stream)
        if self._stream == "lores":
            image = _i420_to_bgr(image, _even(self.height), _even(self.width))
        return fit_frame(image, self.height, self.width)

    def _read(self) -> tuple[np.ndarray, int, str] | None:
        if self._camera is None:
            return None
        try:
            request = self._camera.capture_request(wait=self.timeout_s)
        except (concurrent.futures.TimeoutError, TimeoutError) as error:
            raise CameraError(f"camera {self.camera_num} delivered no frame in {self.timeout_s} s") from error
        except RuntimeError as error:
            raise CameraError(f"camera {self.camera_num} failed: {error}") from None
        try:
            image = self._convert(request)
            stamp = int(request.get_metadata().get("SensorTimestamp", 0))
        finally:
            request.release()
        return image, stamp, f"camera {self.camera_num}"

    def _close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
            finally:
                self._camera.close()
                self._camera = None


class PicameraConfig(SourceConfig):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS only)."""

    kind: Literal["picamera"] = "picamera"
    camera_num: int = Field(default=0, ge=0, le=16, description="camera number")
    frame_rate: float | None = Field(default=None, gt=0, le=240, description="frames per second")
    exposure_us: int | None = Field(default=None, gt=0, le=10_000_000, description="fixed exposure, microseconds "
                                                                                   "(empty: automatic)")

    def build(self, readout) -> Source:
        return PicameraSource(readout.height, readout.width, camera_num=self.camera_num, frame_rate=self.frame_rate,
                              exposure_us=self.exposure_us)

    def describe(self) -> str:
        return f"picamera2 camera {self.camera_num}"
