"""The sensor: one rule that fits a frame to the model, and the one readout stage.

Frame fitting (:func:`fit_frame`) brings any picture to the model's H x W before it is digitised, by
the model's own rule (``edge.fitting``: ``crop``, keycam's, a centre crop to the target's aspect ratio
then an area-average down; ``letterbox``, ultralytics', scale to fit and pad with the model's pad
value, a constant code; ``stretch``). :func:`to_sensor` adds what a sensor of the readout spec delivers: its channel
count and order and its code depth (8-bit pictures on a deeper sensor are left-aligned,
``code << (bits - 8)``). Every path that turns a picture into a sensor frame goes through these two
functions: the capture loop, ``keycam verify``, ``keycam preview`` and the lab's evaluations.

A Bayer spec (readout spec version 2) digitises a (2H, 2W) mosaic of colour-filter photosites for a
model of H x W cells. :func:`simulate_cfa` samples a colour picture through a CFA (how a Bayer sensor
sees a scene), :func:`fit_mosaic` brings a raw mosaic of any even size to 2H x 2W with the same
fitting rule applied to each colour plane (the phase kept), and :func:`to_sensor` picks one of the
two: a 3-channel picture is fitted to 2H x 2W and sampled through the spec's CFA, a 1-channel frame
is taken to be a raw mosaic already in the spec's phase.

:class:`Readout` is the readout stage: a plain frame in, the private measurement the keycam sensor
would emit out, with the key epoch chosen by the run's :class:`~edge.epochs.EpochSchedule`. One
instance per run holds the run's only :class:`~edge.transform.AdcTransform` (and so its only table
cache); the virtual sensor and the pipeline share it. ``reference=True`` reads out with
``firmware_sim`` instead (integer-only, one address at a time: exact and slow).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge import fitting
from edge.epochs import EpochSchedule
from edge.errors import FrameError, SpecError
from edge.frame import Frame
from edge.masks import PrivacyMasks
from edge.seal import Sealer
from edge.tasks.geometry import Geometry
from edge.transform import AdcTransform
from firmware_sim.cfa import PHASES, cell_offsets
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest
from firmware_sim.readout import readout as reference_readout
from firmware_sim.spec import ReadoutSpec


def fit_frame(image: np.ndarray, height: int, width: int, fit: str = "crop", pad: int = 0) -> np.ndarray:
    """``image`` (H, W, C) brought to height x width by the fitting rule ``fit`` (``edge.fitting``); ``pad``: the
    letterbox's value in the image's own units."""
    return fitting.apply(image, height, width, fit, pad)


def _phase(cfa: str, what: str) -> tuple[tuple[int, int], ...]:
    if cfa not in PHASES:
        raise SpecError(f"{what}: CFA phase {cfa!r} is not one of {', '.join(PHASES)}")
    return cell_offsets(cfa)


def simulate_cfa(picture: np.ndarray, cfa: str, source_order: str = "bgr") -> np.ndarray:
    """A colour picture (H2, W2, 3) seen through a colour filter array of phase ``cfa``: (H2, W2, 1).

    Each photosite keeps only its own colour's value (photosite (2i + dy, 2j + dx) of the cell's R, Gr,
    Gb or B takes channel R, G, G or B of the picture there); ``source_order`` (``bgr``, OpenCV's, or
    ``rgb``) says where R and B are in the picture. The dtype is kept (uint8 or uint16).
    """
    offsets = _phase(cfa, "simulate_cfa")
    if source_order not in ("rgb", "bgr"):
        raise FrameError(f"simulate_cfa: source_order {source_order!r}; use rgb or bgr")
    if not isinstance(picture, np.ndarray) or picture.ndim != 3 or picture.shape[2] != 3 or min(picture.shape[:2]) < 1:
        shape = getattr(picture, "shape", type(picture).__name__)
        raise FrameError(f"simulate_cfa: picture has shape {shape}, expected (H, W, 3); give a colour picture")
    if picture.dtype not in (np.uint8, np.uint16):
        raise FrameError(f"simulate_cfa: picture has dtype {picture.dtype}, expected uint8 or uint16")
    red, blue = (2, 0) if source_order == "bgr" else (0, 2)
    mosaic = np.empty(picture.shape[:2], picture.dtype)
    for (dy, dx), channel in zip(offsets, (red, 1, 1, blue)):  # R, Gr, Gb, B
        mosaic[dy::2, dx::2] = picture[dy::2, dx::2, channel]
    return mosaic[:, :, np.newaxis]  # (H2, W2) -> (H2, W2, 1)


def fit_mosaic(mosaic: np.ndarray, cfa: str, height: int, width: int, fit: str = "crop", pad: int = 0) -> np.ndarray:
    """A raw mosaic of any even size brought to (2*height, 2*width, 1), its phase ``cfa`` kept.

    The mosaic is split into its four colour planes (R, Gr, Gb, B), each plane fitted to height x width
    by :func:`fit_frame` (the rule ``fit``; integer codes stay in their dtype; a letterbox pads every
    plane with ``pad``), and the planes interleaved again at their places in the cell.
    """
    offsets = _phase(cfa, "fit_mosaic")
    if isinstance(mosaic, np.ndarray) and mosaic.ndim == 3 and mosaic.shape[2] == 1:
        mosaic = mosaic[:, :, 0]  # (H2, W2, 1) -> (H2, W2)
    if not isinstance(mosaic, np.ndarray) or mosaic.ndim != 2:
        shape = getattr(mosaic, "shape", type(mosaic).__name__)
        raise FrameError(f"fit_mosaic: mosaic has shape {shape}, expected (H, W) or (H, W, 1) raw photosites")
    rows, cols = mosaic.shape
    if rows < 2 or cols < 2 or rows % 2 or cols % 2:
        raise FrameError(f"fit_mosaic: mosaic has shape {mosaic.shape}; a {cfa} mosaic has an even height and "
                         f"width of at least 2: crop it to {rows - rows % 2}x{cols - cols % 2}")
    if (rows, cols) == (2 * height, 2 * width):
        return np.ascontiguousarray(mosaic)[:, :, np.newaxis]
    out = np.empty((2 * height, 2 * width), mosaic.dtype)
    for dy, dx in offsets:
        plane = np.ascontiguousarray(mosaic[dy::2, dx::2])
        out[dy::2, dx::2] = fit_frame(plane, height, width, fit, pad).reshape(height, width)
    return out[:, :, np.newaxis]  # (2H, 2W) -> (2H, 2W, 1)


def _bayer_sensor(image: np.ndarray, spec: ReadoutSpec, height: int, width: int, source_order: str, fit: str,
                  pad: float) -> np.ndarray:
    """The (2H, 2W, 1) mosaic of a Bayer sensor: a colour picture sampled through its CFA, or a raw mosaic fitted."""
    if image.ndim == 2:
        image = image[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    if image.ndim != 3 or image.shape[2] not in (1, 3):
        raise FrameError(f"picture has shape {image.shape}; a Bayer sensor reads a colour picture (H, W, 3) or a raw "
                         f"mosaic (H, W, 1)")
    if image.shape[2] == 1:
        return fit_mosaic(image, spec.cfa, height, width, fit, pad_units(pad, image.dtype, spec))
    order = source_order if source_order in ("rgb", "bgr") else "bgr"
    fitted = fit_frame(image, 2 * height, 2 * width, fit, pad_units(pad, image.dtype, spec))
    return simulate_cfa(fitted, spec.cfa, order)


def pad_units(pad: float, dtype: np.dtype, spec: ReadoutSpec) -> int:
    """The letterbox's pad value (0..255 scale) in the units of a frame of ``dtype``: an 8-bit picture's own
    scale, or the spec's deeper codes (``pad << (bits - 8)``, as an 8-bit picture's codes are shifted)."""
    value = int(round(pad))
    if np.dtype(dtype) == np.uint8:
        return value
    return value << (spec.input_bits - 8 + spec.alignment_shift)


def to_sensor(image: np.ndarray, spec: ReadoutSpec, height: int, width: int, source_order: str = "bgr",
              sensor_order: str = "bgr", fit: str = "crop", pad: float = 0.0) -> np.ndarray:
    """A picture as a sensor of ``spec`` would deliver it: model size (by the fitting rule ``fit``, a letterbox
    padded with ``pad`` on the 0..255 scale), channel count and order, code depth.

    Bayer specs: ``height`` x ``width`` cells, so a (2H, 2W, 1) mosaic: a 3-channel picture is fitted to
    2H x 2W and sampled through the spec's CFA (:func:`simulate_cfa`), a 1-channel frame is a raw mosaic
    in the spec's phase (:func:`fit_mosaic`). MSB-aligned specs get 16-bit words with the code in the top
    bits (an 8-bit picture: ``value << 8``).
    """
    if spec.is_bayer:
        image = _bayer_sensor(image, spec, height, width, source_order, fit, pad)
        if image.dtype != spec.input_dtype:
            image = image.astype(spec.input_dtype) << (spec.input_bits - 8 + spec.alignment_shift)
        return np.ascontiguousarray(image)
    image = fit_frame(image, height, width, fit, pad_units(pad, image.dtype, spec))
    if image.ndim == 2:
        image = image[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    if spec.channels == 1 and image.shape[2] == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_BGR2GRAY)[:, :, np.newaxis]
    elif spec.channels == 3 and image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    elif spec.channels == 3 and sensor_order != source_order and source_order in ("rgb", "bgr"):
        image = image[:, :, ::-1]
    if image.dtype != spec.input_dtype:
        image = image.astype(spec.input_dtype) << (spec.input_bits - 8 + spec.alignment_shift)
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class SensorFormat:
    """What the run's sensor reads out: its readout spec, the model's H x W (cells, for a Bayer spec) and the
    channel order it delivers. A source is built for it (a camera configures its stream to match)."""

    spec: ReadoutSpec
    height: int
    width: int
    channel_order: str = "bgr"
    fit: str = "crop"  # how a camera frame is brought to H x W (edge.fitting)
    pad: float = 0.0  # the letterbox's value, 0..255 scale

    @classmethod
    def of(cls, manifest: Manifest, fit: str | None = None) -> SensorFormat:
        """The format a keyed model's input expects (its spec, size, channel order and framing; ``fit``: the
        configuration's override of the model's framing)."""
        _, height, width, _ = manifest.input.shape
        return cls(manifest.spec, height, width, manifest.input.channel_order, fit or manifest.input.fit,
                   manifest.input.pad)


class Readout:
    """The readout stage of one run: key, spec, model size, channel orders and the epoch schedule.

    It is the run's sensor, and keeps what a sensor keeps while it runs: the epoch of the last frame it read
    out, so that epochs never go back (a clock that jumps back does not reuse an old layout), and the time of
    its first frame, from which a schedule by seconds counts (``edge.epochs``)."""

    def __init__(self, key: MasterKey, spec: ReadoutSpec, height: int, width: int, *,
                 sensor_order: str = "bgr", source_order: str = "bgr", schedule: EpochSchedule | None = None,
                 reference: bool = False, keep_plain: bool = False, fit: str = "crop", pad: float = 0.0,
                 masks: PrivacyMasks | None = None) -> None:
        self.key, self.spec = key, spec
        self.height, self.width = height, width
        self.fit, self.pad = fit, pad  # the model's framing (edge.fitting)
        self.masks = masks  # privacy masks: never digitised (edge.masks)
        self.sealer = Sealer(key, spec) if spec.is_sealed else None  # the sealed readout (edge.seal): this run's
        self._masks_by_size: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self.sensor_order = sensor_order  # the channel order the (emulated) sensor delivers
        self.source_order = source_order  # the channel order of the plain frames it is given
        self.schedule = schedule or EpochSchedule()
        self.reference = reference
        self.keep_plain = keep_plain  # DEBUG ONLY: attach the plain sensor frame to each measured frame
        self.transform = AdcTransform(key, spec)
        self.transform.prepare(height, width, self.schedule.base)
        self._first_ns: int | None = None  # the time of the first frame read out (a schedule by seconds)
        self._last_epoch = self.schedule.base  # epochs never go back within a run

    @classmethod
    def for_model(cls, manifest: Manifest, key: MasterKey, fit: str | None = None, **options) -> Readout:
        """The readout a keyed model's input expects (its spec, size, channel order and framing; ``fit``: the
        configuration's override of the model's framing)."""
        sensor = SensorFormat.of(manifest, fit)
        options.setdefault("schedule", EpochSchedule(manifest.epoch))
        return cls(key, sensor.spec, sensor.height, sensor.width, sensor_order=sensor.channel_order,
                   fit=sensor.fit, pad=sensor.pad, **options)

    @property
    def format(self) -> SensorFormat:
        return SensorFormat(self.spec, self.height, self.width, self.sensor_order, self.fit, self.pad)

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    def prepare(self, image: np.ndarray, source_order: str | None = None) -> np.ndarray:
        """A plain picture as this sensor delivers it, before digitising (see :func:`to_sensor`); ``source_order``:
        the picture's channel order when it is not the run source's (a picture read by OpenCV: ``bgr``)."""
        return to_sensor(image, self.spec, self.height, self.width, source_order or self.source_order,
                         self.sensor_order, self.fit, self.pad)

    def measure(self, sensor_frame: np.ndarray, epoch: int, mask: np.ndarray | None = None) -> np.ndarray:
        """The measurement of a frame already at the sensor's size, order and depth (``mask``: the positions a
        privacy mask covers, read as code 0)."""
        if self.reference:
            return reference_readout(sensor_frame, self.key, self.spec, epoch, mask=mask)
        return self.transform(sensor_frame, epoch, mask)

    def masked(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(the camera frame with its masked pixels 0, the masked positions) for the run's privacy masks."""
        if self.masks is None:
            return image, None
        rows, cols = image.shape[:2]
        if (cols, rows) not in self._masks_by_size:
            cells = 2 if self.spec.is_bayer else 1
            camera = self.masks.camera(cols, rows, cells if image.ndim == 2 or image.shape[2] == 1 else 1)
            geometry = Geometry.of(self.width, self.height, (cols, rows), self.fit, cells)
            self._masks_by_size[(cols, rows)] = (camera, self.masks.positions(geometry, camera))
        camera, positions = self._masks_by_size[(cols, rows)]
        if camera.any():
            image = image.copy()
            image[camera] = 0
        return image, positions

    def inverse(self, measurement: np.ndarray, epoch: int) -> np.ndarray:
        """Key holders: the measurement's positions back in raster order."""
        return self.transform.inverse(measurement, epoch)

    def epoch(self, frame: Frame) -> int:
        """The key epoch ``frame`` is read out in: the schedule's, never below the last frame's."""
        if self._first_ns is None:
            self._first_ns = frame.timestamp_ns
        epoch = max(self._last_epoch, self.schedule.epoch(frame.sequence, frame.timestamp_ns - self._first_ns))
        self._last_epoch = epoch
        return epoch

    def read(self, frame: Frame) -> Frame:
        """The measured twin of a plain frame: same provenance, the epoch and key fingerprint added."""
        start = time.perf_counter()
        camera, mask = self.masked(frame.image)
        image = self.prepare(camera)
        epoch = self.epoch(frame)
        measurement = self.measure(image, epoch, mask)
        masks = self.masks.digest if self.masks is not None else ""
        sealed = None
        if self.sealer is not None:  # the sealed readout: ciphertext leaves the sensor, its seal beside it
            measurement, sealed = self.sealer.seal(measurement, frame, epoch, masks)
        height, width = frame.image.shape[:2]
        return frame.replace(image=measurement, measured=True, epoch=epoch, fingerprint=self.fingerprint,
                             plain=image if self.keep_plain else None, source_size=(width, height), masks=masks,
                             seal=sealed, readout_ms=(time.perf_counter() - start) * 1e3)
