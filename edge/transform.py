"""The device's ADC transform: the readout of ``firmware_sim.readout``, vectorised.

For an (H, W, C) frame x, the measurement is::

    measurement[q // W, q % W, :] = T(x[P(q) // W, P(q) % W, :])     for q in 0 .. H*W-1

where P is the keyed permutation (``firmware_sim.permutation``) and T the
spec's transfer. Two passes do it:

1. the transfer as a lookup table over all input codes (skipped when it is the
   identity; ``cv2.LUT`` for 8-bit codes, ``np.take`` otherwise);
2. one gather of whole positions (all C channels at once) through the index
   table P, built once per (frame size, epoch) and cached. The gather uses
   ``cv2.remap`` with integer nearest-neighbour maps (an exact copy, several
   times faster than ``np.take``) when H and W fit its 16-bit coordinates,
   and ``np.take`` otherwise.

In the Bayer mode (readout spec version 2) the frame is a (2H, 2W) mosaic and a position is a 2x2
cell: the four colour planes are sliced out (``mosaic[dy::2, dx::2]`` at each colour's offset in
the cell, ``firmware_sim.cfa``), put in the canonical order (R, Gr, Gb, B) and stacked into
(H, W, 4) cells; then the same two passes run over the cells. MSB-aligned input (16-bit words with
the code in the top bits) is shifted right by ``16 - input_bits`` first, or, with a non-identity
transfer, read through one table over all 65,536 words that drops the low bits and applies the
transfer at once.

Both passes are exact integer copies, so the result equals firmware_sim byte
for byte (``tests/conformance``). :meth:`AdcTransform.inverse` puts a
measurement's positions back in raster order for key holders; it undoes the
transfer only when that is the identity. For a Bayer spec it returns the cells in raster order,
(H, W, 4) in canonical order (R, Gr, Gb, B): ``spec.mosaic`` turns them back into a mosaic.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import cv2
import numpy as np

from firmware_sim.errors import FrameError
from firmware_sim.keys import MasterKey
from firmware_sim.permutation import inverse_table, permutation_table
from firmware_sim.readout import check_mask
from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec

_REMAP_LIMIT = 32767  # cv2.remap's CV_16SC2 maps hold signed 16-bit coordinates


class _Tables:
    """The index table of one (H, W, epoch), in the forms the gathers need.

    The inverse forms are built on first use: a device that only scrambles never pays for them.
    """

    __slots__ = ("forward", "forward_map", "height", "width", "_inverse")

    def __init__(self, forward: np.ndarray, height: int, width: int) -> None:
        self.forward = forward
        self.forward_map = _remap_map(forward, height, width)
        self.height, self.width = height, width
        self._inverse: tuple[np.ndarray, np.ndarray | None] | None = None

    def inverse(self) -> tuple[np.ndarray, np.ndarray | None]:
        if self._inverse is None:  # a benign race: two threads compute equal tables
            table = inverse_table(self.forward)
            self._inverse = (table, _remap_map(table, self.height, self.width))
        return self._inverse


def _remap_map(table: np.ndarray, height: int, width: int) -> np.ndarray | None:
    """(H, W, 2) int16 (x, y) source coordinates for cv2.remap, or None past its limits."""
    if height > _REMAP_LIMIT or width > _REMAP_LIMIT:
        return None
    rows, cols = np.divmod(table, width)
    return np.stack([cols, rows], axis=-1).astype(np.int16).reshape(height, width, 2)  # (N, 2) -> (H, W, 2)


def _gather(frame: np.ndarray, table: np.ndarray, remap: np.ndarray | None) -> np.ndarray:
    """out[q] = frame[table[q]] over positions, all channels together. frame: (H, W, C)."""
    height, width, channels = frame.shape
    if remap is not None:
        source = frame[:, :, 0] if channels == 1 else frame  # cv2 wants (H, W) for one channel
        out = cv2.remap(source, remap, None, interpolation=cv2.INTER_NEAREST)
        return out.reshape(height, width, channels)  # (H, W[, C]) -> (H, W, C)
    rows = frame.reshape(height * width, channels)  # (H, W, C) -> (N, C)
    return np.take(rows, table, axis=0).reshape(height, width, channels)  # (N, C) -> (H, W, C)


class AdcTransform:
    """The keyed readout of one spec and key, fast, with cached index tables.

    ``transform(frame, epoch)`` returns the measurement; ``transform.inverse(m, epoch)``
    puts positions back in raster order. Thread-safe.
    """

    def __init__(self, key: MasterKey, spec: ReadoutSpec = DEFAULT_SPEC, *, cache_size: int = 8) -> None:
        if not isinstance(key, MasterKey):
            raise TypeError(f"key must be a MasterKey, got {type(key).__name__}")
        if cache_size < 1:
            raise ValueError(f"cache_size must be at least 1, got {cache_size}")
        self.key = key
        self.spec = spec
        self._lut = None if spec.is_identity else spec.transfer_table()
        self._shift = spec.alignment_shift  # MSB-aligned words: code = word >> shift
        if self._shift and self._lut is not None:  # one table over all words: drop the low bits and transfer
            self._lut = self._lut[np.arange(1 << 16) >> self._shift]
            self._shift = 0
        self._cache: OrderedDict[tuple[int, int, int], _Tables] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AdcTransform(key={self.key.fingerprint!r}, spec={self.spec.describe()!r})"

    @property
    def fingerprint(self) -> str:
        return self.key.fingerprint

    def _tables(self, height: int, width: int, epoch: int) -> _Tables:
        index = (height, width, epoch)
        with self._lock:
            tables = self._cache.get(index)
            if tables is not None:
                self._cache.move_to_end(index)
                return tables
        # built outside the lock: two threads may both build, and both results are equal
        forward = permutation_table(self.key.sensor_key(height, width, epoch), height * width)
        tables = _Tables(forward, height, width)
        with self._lock:
            self._cache[index] = tables
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return tables

    def table(self, height: int, width: int, epoch: int = 0) -> np.ndarray:
        """The index table P for an H x W frame: ``table[q]`` is the position read at step q."""
        return self._tables(height, width, epoch).forward

    def prepare(self, height: int, width: int, epoch: int = 0) -> None:
        """Build and cache the tables for a frame size ahead of the first frame."""
        self._tables(height, width, epoch)

    def _apply_transfer(self, frame: np.ndarray) -> np.ndarray:
        if self._shift:  # MSB-aligned words, identity transfer: the codes themselves
            return (frame >> self._shift).astype(self.spec.output_dtype, copy=False)  # 8-bit codes: uint8
        if self._lut is None:
            return frame
        if frame.dtype == np.uint8:
            height, width, channels = frame.shape
            return cv2.LUT(frame.reshape(height, width * channels), self._lut).reshape(frame.shape)
        return np.take(self._lut, frame)

    def _positions(self, frame: np.ndarray) -> np.ndarray:
        """A frame (validated against the spec) as (H, W, C) positions: itself, or a mosaic's (H, W, 4) cells."""
        frame = self.spec.check_frame(frame)
        if not self.spec.is_bayer:
            return frame
        plane = frame[:, :, 0]  # (2H, 2W, 1) -> (2H, 2W)
        return np.stack([plane[dy::2, dx::2] for dy, dx in self.spec.cell_offsets], axis=-1)  # -> (H, W, 4)

    def __call__(self, frame: np.ndarray, epoch: int = 0, mask: np.ndarray | None = None) -> np.ndarray:
        """The measurement of ``frame`` (validated against the spec) as (H, W, C) output codes; ``mask``: the privacy
        mask, (H, W) bool over the positions, whose photosites read input code 0 (firmware_sim.readout).

        Bayer specs: ``frame`` is the (2H, 2W[, 1]) mosaic, the measurement (H, W, 4) cells (R, Gr, Gb, B)."""
        positions = self._positions(frame)
        height, width, _ = positions.shape
        if mask is not None:
            if not isinstance(mask, np.ndarray) or mask.shape != (height, width) or mask.dtype != np.bool_:
                check_mask(mask, height, width)  # raises the reference model's one-line FrameError
            if np.may_share_memory(positions, frame):
                positions = positions.copy()  # never the caller's frame
            positions[mask] = 0  # the masked positions' photosites: input code 0, before the transfer
        tables = self._tables(height, width, epoch)
        return _gather(self._apply_transfer(positions), tables.forward, tables.forward_map)

    def inverse(self, measurement: np.ndarray, epoch: int = 0) -> np.ndarray:
        """Positions back in raster order: ``inverse(transform(x)) == T(x)``, so ``x`` for the identity.

        Bayer specs: the (H, W, 4) cells in raster order, codes (R, Gr, Gb, B) (``T(spec.cells(mosaic))``)."""
        measurement = self._check_measurement(measurement)
        height, width, _ = measurement.shape
        table, remap = self._tables(height, width, epoch).inverse()
        return _gather(measurement, table, remap)

    def _check_measurement(self, measurement: np.ndarray) -> np.ndarray:
        spec = self.spec
        if not isinstance(measurement, np.ndarray):
            raise FrameError(f"measurement is a {type(measurement).__name__}, expected a numpy array")
        if measurement.ndim == 2 and spec.channels == 1:
            measurement = measurement[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
        if measurement.ndim != 3 or measurement.shape[2] != spec.channels or min(measurement.shape[:2]) < 1:
            raise FrameError(f"measurement has shape {measurement.shape}, expected (H, W, {spec.channels})")
        if measurement.dtype != spec.output_dtype:
            raise FrameError(
                f"measurement has dtype {measurement.dtype}, the spec's {spec.output_bits}-bit output is "
                f"{spec.output_dtype}"
            )
        return np.ascontiguousarray(measurement)
