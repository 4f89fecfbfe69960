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

In the Bayer mode (spec version 2) the frame is a (2H, 2W) mosaic and a position is the 2x2
cell (row, col); its C = 4 codes are the cell's photosites in the canonical order (R, Gr, Gb, B),
each at ``(2*row + dy, 2*col + dx)`` with (dy, dx) from the spec's phase (``firmware_sim.cfa``)::

    for c, (dy, dx) in enumerate(cell_offsets(cfa)):           # R, Gr, Gb, B
        word = x[2*row + dy][2*col + dx]
        emit S.transfer(word >> shift)                         # shift = 16 - input_bits for MSB input, else 0

The shift applies to pixel specs with MSB-aligned input too.

Privacy masks (readout spec version 3, section 10) are an input of the readout, not a field of the
spec: an (H, W) bitmap over the positions. A masked position's photosites are read as input code 0,
whatever they held, before the transfer::

    emit S.transfer(0 if mask[row][col] else word >> shift)

so nothing of what was under the mask leaves the sensor, in any form, for anyone (key holders
included). For a Bayer spec a position is a whole 2x2 cell: a mask covers whole cells.

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


def positions(frame: np.ndarray, spec: ReadoutSpec) -> tuple[int, int]:
    """(H, W) positions of a frame already checked by ``spec.check_frame``: pixels, or 2x2 cells of a mosaic."""
    if spec.is_bayer:
        return frame.shape[0] // 2, frame.shape[1] // 2
    return frame.shape[0], frame.shape[1]


def check_mask(mask: np.ndarray | None, height: int, width: int) -> list[list[bool]] | None:
    """A privacy mask as nested Python booleans, refused (FrameError) unless it is (H, W) over the positions."""
    if mask is None:
        return None
    if not isinstance(mask, np.ndarray) or mask.shape != (height, width) or mask.dtype != np.bool_:
        shape = getattr(mask, "shape", type(mask).__name__)
        dtype = getattr(mask, "dtype", "")
        raise FrameError(f"privacy mask has shape {shape} {dtype}, expected ({height}, {width}) bool: one flag per "
                         f"position (a Bayer cell counts once)")
    return mask.tolist()


def stream(
    frame: np.ndarray, key: MasterKey, spec: ReadoutSpec = DEFAULT_SPEC, epoch: int = 0,
    mask: np.ndarray | None = None,
) -> Iterator[Pixel]:
    """Yield the readout of one frame, step by step, in readout order (``mask``: the privacy mask, an (H, W) bool
    array over the positions; a masked position reads input code 0)."""
    frame = spec.check_frame(frame)
    height, width = positions(frame, spec)
    masked = check_mask(mask, height, width)
    rows = frame.tolist()  # nested Python ints: no numpy arithmetic past this point
    shift = spec.alignment_shift  # MSB-aligned words: the code is the top input_bits bits
    if spec.is_bayer:  # photosite (2*row + dy, 2*col + dx) holds the cell's c-th code
        sites = list(spec.cell_offsets)
    else:  # channel c of the pixel itself
        sites = [(0, 0)] * spec.channels
    span = 2 if spec.is_bayer else 1
    permutation = KeyedPermutation(key.sensor_key(height, width, epoch), height * width)
    for step in range(height * width):
        address = permutation.forward(step)
        row, col = divmod(address, width)
        codes = []
        for c, (dy, dx) in enumerate(sites):
            y, x = span * row + dy, span * col + dx
            word = rows[y][x][0 if spec.is_bayer else c]
            code = word >> shift
            if not 0 <= code <= spec.input_max:  # checked per sample, as hardware would flag it
                raise FrameError(f"code {code} at ({y}, {x}, {c}) is outside 0..{spec.input_max}")
            if masked is not None and masked[row][col]:
                code = 0  # a masked photosite: never digitised
            codes.append(spec.transfer(code))
        yield Pixel(step, address, tuple(codes))


def readout(
    frame: np.ndarray, key: MasterKey, spec: ReadoutSpec = DEFAULT_SPEC, epoch: int = 0,
    progress: Callable[[int], object] | None = None, mask: np.ndarray | None = None,
) -> np.ndarray:
    """The measurement of one frame as an (H, W, C) array of the spec's output dtype.

    In the Bayer mode ``frame`` is the (2H, 2W[, 1]) mosaic and the measurement (H, W, 4) cells.
    ``progress``, if given, is called with the number of steps done after each row of positions.
    ``mask``: the privacy mask, (H, W) bool over the positions (see :func:`stream`).
    """
    frame = spec.check_frame(frame)
    height, width = positions(frame, spec)
    channels = spec.channels
    codes: list[int] = []
    for pixel in stream(frame, key, spec, epoch, mask):
        codes.extend(pixel.codes)
        if progress is not None and (pixel.step + 1) % width == 0:
            progress(width)
    # step-major, channel-minor stream -> (H, W, C) with step q at (q // W, q % W)
    return np.array(codes, dtype=spec.output_dtype).reshape(height, width, channels)
