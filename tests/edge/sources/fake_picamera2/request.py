"""The fake's ``CompletedRequest``: reference-counted, its arrays copies, unusable after release.

picamera2 0.3.38 ``request.py``: ``make_array`` copies the buffer (L179-183) with shapes from the stream's
size and stride (``_make_array_shared`` L299-348: RGB888 (h, w, 3) with the row padding removed; YUV420
(h * 3 // 2, stride) with it kept; raw uint8 (h, stride)); ``release`` decrements the count and raises
``RuntimeError("CompletedRequest: lock now has negative ref_count")`` below zero (L117-118); after the last
release the request's config is emptied (L150-152), so ``make_array`` raises
``RuntimeError("Stream 'main' is not defined")`` (L171-173) and ``get_metadata`` an ``AssertionError`` (L164);
``release`` re-queues the buffers, which raises ``RuntimeError("Failed to queue request")`` when the device
has gone (L146, the binding's ``queue_request``).
"""

from __future__ import annotations

import numpy as np

from tests.edge.sources.fake_picamera2 import scene


class FakeRequest:
    def __init__(self, camera, sequence: int, timestamp_ns: int, metadata: dict) -> None:
        self.camera, self.sequence = camera, sequence
        self.config = {name: dict(camera.camera_config[name]) for name in ("main", "lores", "raw")
                       if camera.camera_config.get(name)}
        self.crops = dict(camera.crops)
        self.colour_space = camera.camera_config["colour_space"]
        self.metadata = dict(metadata, SensorTimestamp=timestamp_ns)
        self.ref_count = 1
        self.request = object()
        camera.outstanding += 1

    def make_array(self, name: str) -> np.ndarray:
        if name not in self.config:
            raise RuntimeError(f"Stream {name!r} is not defined")
        stream = self.config[name]
        sensor = self.camera.sensor
        size, fmt = stream["size"], stream["format"]
        rgb = scene.render(size, self.crops[name], sensor.pixel_array)
        if name == "raw":
            order = self.camera.raw_order
            bits = self.camera.camera_config["sensor"]["bit_depth"]
            black = sensor.black_level >> (16 - bits)  # SensorBlackLevels is out of 16 bits
            codes = scene.mosaic(rgb, order or "GGGG", bits, black)
            codes = (codes + self.sequence % 3) & ((1 << bits) - 1)  # frames differ a little, as real ones do
            msb_shift = 16 - bits if fmt.endswith("16") else 0  # PiSP: the code in the top bits
            return scene.raw_bytes(codes, stream["stride"], msb_shift, one_byte=fmt.endswith("8"))
        if fmt in ("RGB888", "BGR888"):
            picture = scene.bgr888(rgb)
            return picture if fmt == "RGB888" else picture[..., ::-1].copy()
        if fmt in ("YUV420", "YVU420"):
            encoding = self.colour_space.ycbcrEncoding.name
            return scene.i420(rgb, stream["stride"], encoding, self.colour_space.range.name == "Full",
                              v_first=fmt == "YVU420")
        raise RuntimeError(f"the fake does not render {fmt}")

    def get_metadata(self) -> dict:
        assert self.request is not None  # request.py L164
        return dict(self.metadata)

    def acquire(self) -> None:
        if self.ref_count == 0:
            raise RuntimeError("CompletedRequest: acquiring lock with ref_count 0")
        self.ref_count += 1

    def release(self) -> None:
        self.ref_count -= 1
        if self.ref_count < 0:
            raise RuntimeError("CompletedRequest: lock now has negative ref_count")
        if self.ref_count == 0:
            self.camera.outstanding -= 1
            self.camera.released += 1
            self.config, self.request = {}, None
            if self.camera.device_gone or self.camera.requeue_fails:
                raise RuntimeError("Failed to queue request: No such device")
