"""A fake of picamera2's ``Picamera2`` for machines without a Raspberry Pi camera.

It mirrors the real API that keycam uses, as read in picamera2 0.3.38's source: the constructor
(``RuntimeError`` for a camera number that does not exist), ``create_video_configuration`` (stream
dicts with only format/size/stride/preserve_ar keys, sizes as tuples of even numbers, a lores stream
no larger than main and YUV420 on a Pi 4), ``configure`` (refused while started), ``start``,
``stop``, ``close``, ``set_controls`` (only advertised controls; ``FrameRate`` becomes
``FrameDurationLimits`` in microseconds), ``capture_request(wait=...)`` returning a request whose
``make_array`` copies uint8 arrays (RGB888 (h, w, 3) B,G,R; YUV420 (h*3//2, stride); raw (h, stride)),
``get_metadata()`` with ``SensorTimestamp`` in nanoseconds, and reference-counted ``release()``.
The scene is a deterministic picture, so tests can check what comes out.
"""

from __future__ import annotations

import concurrent.futures

import cv2
import numpy as np

ADVERTISED = {"FrameDurationLimits", "ExposureTime", "AnalogueGain", "AeEnable", "ScalerCrop"}
STREAM_KEYS = {"format", "size", "stride", "preserve_ar"}


def scene(height: int, width: int) -> np.ndarray:
    """The fake sensor's picture, B,G,R: smooth gradients (so YUV round trips stay close)."""
    rows = np.linspace(0, 255, height)[:, None]
    cols = np.linspace(0, 255, width)[None, :]
    return np.stack([rows + 0 * cols, cols + 0 * rows, (rows + cols) / 2], axis=-1).astype(np.uint8)


class FakeRequest:
    def __init__(self, camera: FakePicamera2, sequence: int) -> None:
        self.camera, self.sequence = camera, sequence
        self.refcount = 1
        camera.outstanding += 1

    def make_array(self, name: str) -> np.ndarray:
        config = self.camera.config
        if not config or not config.get(name):
            raise RuntimeError(f"Stream {name!r} is not defined")
        stream = config[name]
        width, height = stream["size"]
        if name == "raw":
            stride = width * 2 + 32  # unpacked 16-bit words, padded rows
            codes = (scene(height, width)[:, :, 0].astype(np.uint16) * 16 + self.sequence) & 0x0FFF
            out = np.zeros((height, stride), np.uint8)
            out[:, : width * 2] = codes.view(np.uint8).reshape(height, width * 2)
            return out
        picture = scene(height, width)
        if stream["format"] == "RGB888":
            return picture.copy()
        if stream["format"] == "YUV420":
            stride = width + 64
            i420 = cv2.cvtColor(picture, cv2.COLOR_BGR2YUV_I420).reshape(-1)
            y, u, v = (i420[: height * width].reshape(height, width),
                       i420[height * width: height * width * 5 // 4].reshape(height // 2, width // 2),
                       i420[height * width * 5 // 4:].reshape(height // 2, width // 2))
            out = np.zeros((height * 3 // 2, stride), np.uint8)
            out[:height, :width] = y
            chroma = np.zeros((2, height // 2, stride // 2), np.uint8)
            chroma[0, :, : width // 2], chroma[1, :, : width // 2] = u, v
            out[height:] = chroma.reshape(height // 2, stride)
            return out
        raise RuntimeError(f"fake does not render {stream['format']}")

    def get_metadata(self) -> dict:
        return {"SensorTimestamp": 1_000_000_000 + self.sequence * 33_333_333, "ExposureTime": 10_000}

    def acquire(self) -> None:
        self.refcount += 1

    def release(self) -> None:
        if self.refcount <= 0:
            raise RuntimeError("CompletedRequest: acquire/release mismatch")
        self.refcount -= 1
        if self.refcount == 0:
            self.camera.outstanding -= 1
            self.camera.released += 1


class FakePicamera2:
    cameras = 1
    platform = "VC4"  # Pi 4: lores must be YUV

    def __init__(self, camera_num: int = 0, verbose_console=None, tuning=None, allocator=None) -> None:
        if camera_num >= self.cameras:
            raise RuntimeError(f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to check '
                               f"connected cameras")
        self.camera_num = camera_num
        self.config: dict | None = None
        self.controls: dict = {}
        self.started = False
        self.closed = False
        self.outstanding = 0
        self.released = 0
        self.sequence = 0
        self.fail_after: int | None = None  # raise TimeoutError after this many frames
        FakePicamera2.last = self

    @staticmethod
    def global_camera_info() -> list[dict]:
        return [{"Model": "imx708", "Location": 2, "Rotation": 180, "Id": "/base/fake", "Num": 0}]

    def _check_stream(self, name: str, stream: dict) -> None:
        bad = set(stream) - STREAM_KEYS
        if bad:
            raise ValueError(f"Bad key {sorted(bad)[0]!r}: valid stream configuration keys are {sorted(STREAM_KEYS)}")
        size = stream.get("size")
        if size is not None and (not isinstance(size, tuple) or len(size) != 2 or size[0] % 2 or size[1] % 2):
            raise RuntimeError(f"{name} stream size {size} must be a tuple of two even numbers")

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=None, colour_space=None,  # noqa: B006
                                   buffer_count=6, controls={}, display="main", encode="main", queue=True,  # noqa: B006
                                   sensor={}, use_case="video") -> dict:  # noqa: B006 - picamera2's own defaults
        main = {"format": "XBGR8888", "size": (1280, 720)} | dict(main)
        self._check_stream("main", main)
        if lores is not None:
            lores = {"format": "YUV420", "size": main["size"], "preserve_ar": False} | dict(lores)
            self._check_stream("lores", lores)
            if lores["size"][0] > main["size"][0] or lores["size"][1] > main["size"][1]:
                raise RuntimeError("lores stream dimensions may not exceed main stream")
            if self.platform == "VC4" and lores["format"] not in ("YUV420", "YVU420"):
                raise RuntimeError("lores stream must be YUV")
        raw = dict(raw) if raw else None
        if raw is not None:
            raw.setdefault("size", main["size"])
        return {"use_case": use_case, "main": main, "lores": lores, "raw": raw, "buffer_count": buffer_count,
                "controls": {"FrameDurationLimits": (33333, 33333)} | dict(controls)}

    def configure(self, camera_config=None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            raise TypeError("fake configure takes a configuration dict")
        self.config = camera_config
        self.set_controls(camera_config.get("controls", {}))

    def set_controls(self, controls: dict) -> None:
        for name, value in controls.items():
            if name == "FrameRate":  # a virtual control
                name, value = "FrameDurationLimits", (int(1e6 / value), int(1e6 / value))
            if name not in ADVERTISED:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            self.controls[name] = value

    def start(self, config=None, show_preview=False) -> None:
        if self.config is None:
            raise RuntimeError("fake: configure before start")
        self.started = True

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.started = False
        self.closed = True

    def capture_request(self, wait=None, signal_function=None, flush=None) -> FakeRequest:
        if not self.started:
            raise RuntimeError("Camera is not running")
        if self.fail_after is not None and self.sequence >= self.fail_after:
            raise concurrent.futures.TimeoutError()
        request = FakeRequest(self, self.sequence)
        self.sequence += 1
        return request
