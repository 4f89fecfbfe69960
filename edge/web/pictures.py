"""What the streams show: the measurement as it leaves the sensor, or (key holders, ``plain_view``) restored.

Codes become an 8-bit picture the way ``keycam preview`` shows them: the spec's top 8 bits, one channel
repeated for grey, a Bayer cell (R, Gr, Gb, B) as one pixel (B, (Gr + Gb) / 2, R). The measurement is shown
as it is: it is what leaves the sensor, and it looks like noise. The plain view puts the measurement's
positions back in order with the run's key and the frame's own key epoch (``edge.transform``), in the encoder
thread, only while someone watches it. Under a sealed spec the measurement that leaves the sensor is ciphertext:
the measurement view shows it as it is, and the plain view opens it with the key first (``edge.seal``).
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

from edge.errors import FrameError
from edge.seal import Opener
from edge.transform import AdcTransform
from edge.web.overlay import Overlay

log = logging.getLogger(__name__)


def as_picture(codes: np.ndarray, spec, channel_order: str) -> np.ndarray:
    """(H, W, C) codes of the spec's output bits -> an (H, W, 3) uint8 picture in OpenCV's B, G, R."""
    if codes.ndim == 2:
        codes = codes[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    if spec.output_bits != 8:
        codes = (codes >> (spec.output_bits - 8)).astype(np.uint8)
    if codes.shape[2] == 1:
        return np.repeat(codes, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    if codes.shape[2] == 4:
        green = ((codes[..., 1].astype(np.uint16) + codes[..., 2]) // 2).astype(np.uint8)
        return np.stack([codes[..., 3], green, codes[..., 0]], axis=-1)  # (H, W, 4) cells -> (H, W, 3) B, G, R
    return codes[..., ::-1] if channel_order == "rgb" else codes


def jpeg(picture: np.ndarray, quality: int) -> bytes:
    done, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not done:
        raise ValueError(f"OpenCV could not encode a {picture.shape} picture as JPEG")
    return data.tobytes()


class MeasurementView:
    """A result -> (JPEG of its measurement, its answer in the picture's pixels), or None without a measurement."""

    name = "measurement"

    def __init__(self, sink) -> None:
        manifest = sink.context.manifest
        self.spec, self.order = manifest.spec, manifest.input.channel_order
        self.quality = sink.settings.quality
        self.overlay = Overlay(sink)

    def codes(self, frame) -> np.ndarray | None:
        return frame.image

    def __call__(self, result) -> tuple[bytes, dict] | None:
        codes = self.codes(result.frame) if result.frame.image is not None else None
        if codes is None:
            return None
        picture = as_picture(codes, self.spec, self.order)
        answer = self.overlay(result, picture.shape[1], picture.shape[0])
        answer["view"] = self.name
        return jpeg(picture, self.quality), answer


class PlainView(MeasurementView):
    """The measurement restored with the key: the scene, for key holders who turned ``plain_view`` on. A sealed
    measurement (readout spec version 4) is opened first, as the device's model stage opens it (``edge.seal``)."""

    name = "plain"

    def __init__(self, sink) -> None:
        super().__init__(sink)
        self.transform = AdcTransform(sink.context.key, self.spec)
        self.opener = Opener(sink.context.key, self.spec) if self.spec.is_sealed else None

    def codes(self, frame) -> np.ndarray | None:
        if getattr(frame, "seal", None) is not None:
            if self.opener is None:
                return None  # sealed, and this run's spec is not: not this key's frame
            try:
                frame = self.opener.open(frame)
            except FrameError as error:  # another key, a damaged frame: not shown, said once per frame
                log.warning("[web] plain view: %s", error)
                return None
        return self.transform.inverse(frame.image, frame.epoch)
