"""The letterbox as the sensor's frame holds it: a picture inside a field of one constant code.

A model that wants its frames letterboxed (``InputSpec.fit = "letterbox"``, ultralytics' rule) sees
the camera picture scaled into a window of its input, and the rest filled with its pad value. On the
sensor side that is a frame whose photosites outside the window all carry one code (the pad value on
the 0..255 scale, shifted to the spec's depth as an 8-bit picture's codes are), read out like any
other frame: the keyed readout neither knows nor cares, so the measurement stays byte-exact. The
golden vectors pin it (``vectors.py``: the ``letterbox`` cases), and ``edge.fitting`` must build the
same frame.

Integer only, one photosite at a time, like the rest of this package.
"""

from __future__ import annotations

import numpy as np

from firmware_sim.errors import FrameError
from firmware_sim.spec import ReadoutSpec


def pad_code(pad: int, spec: ReadoutSpec) -> int:
    """The input code of a pad value on the 0..255 scale: itself on an 8-bit sensor, else shifted left as an 8-bit
    picture's codes are (``pad << (input_bits - 8)``, and into the top bits of an MSB-aligned word)."""
    if not 0 <= pad <= 255:
        raise FrameError(f"letterbox pad {pad} is outside 0..255; give the pad value on the 0..255 scale")
    if spec.input_bits == 8 and not spec.is_msb:
        return pad
    return pad << (spec.input_bits - 8 + spec.alignment_shift)


def letterboxed(inner: np.ndarray, rows: int, cols: int, top: int, left: int, code: int) -> np.ndarray:
    """The (rows, cols, C) frame holding ``inner`` (h, w, C) with its top-left photosite at (top, left), every other
    photosite ``code``. For a Bayer mosaic, rows, cols, top and left are even: whole cells."""
    height, width, channels = inner.shape
    if top < 0 or left < 0 or top + height > rows or left + width > cols:
        raise FrameError(f"a {height}x{width} picture at ({top}, {left}) does not fit a {rows}x{cols} frame")
    frame = [[[code] * channels for _ in range(cols)] for _ in range(rows)]
    values = inner.tolist()
    for y in range(height):
        for x in range(width):
            frame[top + y][left + x] = list(values[y][x])
    return np.asarray(frame, dtype=inner.dtype).reshape(rows, cols, channels)
