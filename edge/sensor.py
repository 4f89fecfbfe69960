"""The sensor: one rule that fits a frame to the model, and the one readout stage.

Frame fitting (:func:`fit_frame`) brings any picture to the model's H x W the way a sensor bins
before it digitises: centre-crop to the target's aspect ratio, then area-average down (or
interpolate up). :func:`to_sensor` adds what a sensor of the readout spec delivers: its channel
count and order and its code depth (8-bit pictures on a deeper sensor are left-aligned,
``code << (bits - 8)``). Every path that turns a picture into a sensor frame goes through these two
functions: the capture loop, ``keycam verify``, ``keycam preview`` and the lab's evaluations.

:class:`Readout` is the readout stage: a plain frame in, the private measurement the keycam sensor
would emit out, with the key epoch chosen by the run's :class:`~edge.epochs.EpochSchedule`. One
instance per run holds the run's only :class:`~edge.transform.AdcTransform` (and so its only table
cache); the virtual sensor and the pipeline share it. ``reference=True`` reads out with
``firmware_sim`` instead (integer-only, one address at a time: exact and slow).
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from edge.epochs import EpochSchedule
from edge.frame import Frame
from edge.transform import AdcTransform
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest
from firmware_sim.readout import readout as reference_readout
from firmware_sim.spec import ReadoutSpec


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


def to_sensor(image: np.ndarray, spec: ReadoutSpec, height: int, width: int, source_order: str = "bgr",
              sensor_order: str = "bgr") -> np.ndarray:
    """A picture as a sensor of ``spec`` would deliver it: model size, channel count and order, code depth."""
    image = fit_frame(image, height, width)
    if image.ndim == 2:
        image = image[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    if spec.channels == 1 and image.shape[2] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    elif spec.channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    elif spec.channels == 3 and sensor_order != source_order and source_order in ("rgb", "bgr"):
        image = image[:, :, ::-1]
    if image.dtype != spec.input_dtype:
        image = image.astype(spec.input_dtype) << (spec.input_bits - 8)
    return np.ascontiguousarray(image)


class Readout:
    """The readout stage of one run: key, spec, model size, channel orders and the epoch schedule."""

    def __init__(self, key: MasterKey, spec: ReadoutSpec, height: int, width: int, *,
                 sensor_order: str = "bgr", source_order: str = "bgr", schedule: EpochSchedule | None = None,
                 reference: bool = False, keep_plain: bool = False) -> None:
        self.key, self.spec = key, spec
        self.height, self.width = height, width
        self.sensor_order = sensor_order  # the channel order the (emulated) sensor delivers
        self.source_order = source_order  # the channel order of the plain frames it is given
        self.schedule = schedule or EpochSchedule()
        self.reference = reference
        self.keep_plain = keep_plain  # DEBUG ONLY: attach the plain sensor frame to each measured frame
        self.transform = AdcTransform(key, spec)
        self.transform.prepare(height, width, self.schedule.base)

    @classmethod
    def for_model(cls, manifest: Manifest, key: MasterKey, **options) -> Readout:
        """The readout a keyed model's input expects (its spec, size and channel order)."""
        _, height, width, _ = manifest.input.shape
        options.setdefault("schedule", EpochSchedule(manifest.epoch))
        return cls(key, manifest.spec, height, width, sensor_order=manifest.input.channel_order, **options)

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    def prepare(self, image: np.ndarray, source_order: str | None = None) -> np.ndarray:
        """A plain picture as this sensor delivers it, before digitising (see :func:`to_sensor`)."""
        return to_sensor(image, self.spec, self.height, self.width, source_order or self.source_order,
                         self.sensor_order)

    def measure(self, sensor_frame: np.ndarray, epoch: int) -> np.ndarray:
        """The measurement of a frame already at the sensor's size, order and depth."""
        if self.reference:
            return reference_readout(sensor_frame, self.key, self.spec, epoch)
        return self.transform(sensor_frame, epoch)

    def inverse(self, measurement: np.ndarray, epoch: int) -> np.ndarray:
        """Key holders: the measurement's positions back in raster order."""
        return self.transform.inverse(measurement, epoch)

    def read(self, frame: Frame, source_order: str | None = None) -> Frame:
        """The measured twin of a plain frame: same provenance, the epoch and key fingerprint added."""
        start = time.perf_counter()
        image = self.prepare(frame.image, source_order)
        epoch = self.schedule.epoch(frame.sequence, frame.timestamp_ns)
        measurement = self.measure(image, epoch)
        return frame.replace(image=measurement, measured=True, epoch=epoch, fingerprint=self.fingerprint,
                             plain=image if self.keep_plain else None,
                             readout_ms=(time.perf_counter() - start) * 1e3)
