"""The streaming readout model: what the sensor emits, one address at a time.

For a frame x of H x W positions with C channels, a spec S, a master key and a
key epoch E, the readout is::

    K = HKDF(master, "keycam/1/sensor/{H}x{W}/epoch/{E}")      # keys.sensor_info
    for q in 0 .. H*W - 1:                                     # readout step
        a = P_K(q)                                             # permutation.KeyedPermutation
        row, col = a // W, a mod W                             # raster address of the position
        for c in 0 .. C-1:                                     # channels travel together
            emit S.transfer(x[row][col][c])                    # spec.ReadoutSpec.transfer

The measurement is the emitted stream, H*W*C codes, step-major and
channel-minor. Laid out as an array it is (H, W, C) with step q at
(q // W, q mod W): ``measurement[q // W, q % W, c] = T(x[P(q) // W, P(q) % W, c])``.

Everything here works on Python integers. It is slow (tens of microseconds per
position) and meant to be read, not deployed; ``edge.transform`` is the fast twin.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import NamedTuple

import numpy as np

from firmware_sim.errors import FrameError
from firmware_sim.keys import MasterKey
from firmware_sim.permutation import KeyedPermutation
from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec


class Pixel(NamedTuple):
    """One readout step: the step index, the position it read, and the C output codes."""

    step: int
    address: int
    codes: tuple[int, ...]


def stream(
    frame: np.ndarray, key: MasterKey, spec: ReadoutSpec = DEFAULT_SPEC, epoch: int = 0
) -> Iterator[Pixel]:
    """Yield the readout of one frame, step by step, in readout order."""
    frame = spec.check_frame(frame)
    height, width, channels = frame.shape
    rows = frame.tolist()  # nested Python ints: no numpy arithmetic past this point
    permutation = KeyedPermutation(key.sensor_key(height, width, epoch), height * width)
    for step in range(height * width):
        address = permutation.forward(step)
        row, col = divmod(address, width)
        codes = []
        for c in range(channels):
            code = rows[row][col][c]
            if not 0 <= code <= spec.input_max:  # checked per sample, as hardware would flag it
                raise FrameError(f"code {code} at ({row}, {col}, {c}) is outside 0..{spec.input_max}")
            codes.append(spec.transfer(code))
        yield Pixel(step, address, tuple(codes))


def readout(
    frame: np.ndarray, key: MasterKey, spec: ReadoutSpec = DEFAULT_SPEC, epoch: int = 0,
    progress: Callable[[int], object] | None = None,
) -> np.ndarray:
    """The measurement of one frame as an (H, W, C) array of the spec's output dtype.

    ``progress``, if given, is called with the number of steps done after each row of positions.
    """
    frame = spec.check_frame(frame)
    height, width, channels = frame.shape
    codes: list[int] = []
    for pixel in stream(frame, key, spec, epoch):
        codes.extend(pixel.codes)
        if progress is not None and (pixel.step + 1) % width == 0:
            progress(width)
    # step-major, channel-minor stream -> (H, W, C) with step q at (q // W, q % W)
    return np.array(codes, dtype=spec.output_dtype).reshape(height, width, channels)
