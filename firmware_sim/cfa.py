"""Colour filter arrays: where each colour of a 2x2 Bayer cell sits, and cells to and from a mosaic.

A Bayer sensor's photosites form a mosaic (2H, 2W): every 2x2 cell holds one red, two green and one
blue photosite. The *phase* names the colours at (0, 0), (0, 1), (1, 0) and (1, 1) of every cell:
``RGGB``, ``GRBG``, ``GBRG`` or ``BGGR``. The readout spec's Bayer mode (spec version 2) reads a
cell as one position whose four codes travel together in the canonical order **(R, Gr, Gb, B)**,
whatever the phase: Gr is the green on the red photosite's row, Gb the green on the blue one's.

==========  =========  =========  =========  =========
phase       R          Gr         Gb         B
==========  =========  =========  =========  =========
RGGB        (0, 0)     (0, 1)     (1, 0)     (1, 1)
GRBG        (0, 1)     (0, 0)     (1, 1)     (1, 0)
GBRG        (1, 0)     (1, 1)     (0, 0)     (0, 1)
BGGR        (1, 1)     (1, 0)     (0, 1)     (0, 0)
==========  =========  =========  =========  =========

(row, column) inside the cell: cell (i, j), colour c is photosite ``(2i + dy_c, 2j + dx_c)``.
"""

from __future__ import annotations

import numpy as np

PHASES = ("RGGB", "GRBG", "GBRG", "BGGR")
"""The four Bayer phases, named by the colours at (0, 0), (0, 1), (1, 0), (1, 1) of a cell."""

CANONICAL = ("R", "Gr", "Gb", "B")
"""The order of a cell's four codes in a measurement, whatever the sensor's phase."""


def cell_offsets(cfa: str) -> tuple[tuple[int, int], ...]:
    """(dy, dx) inside the 2x2 cell of R, Gr, Gb and B for phase ``cfa``."""
    if cfa not in PHASES:
        raise ValueError(f"CFA phase {cfa!r} is not one of {', '.join(PHASES)}")
    where = {(i // 2, i % 2): colour for i, colour in enumerate(cfa)}
    (red,) = [at for at, colour in where.items() if colour == "R"]
    (blue,) = [at for at, colour in where.items() if colour == "B"]
    green_on_red = (red[0], 1 - red[1])  # the other photosite of the red row is green
    green_on_blue = (blue[0], 1 - blue[1])
    return red, green_on_red, green_on_blue, blue


def to_cells(mosaic: np.ndarray, cfa: str, shift: int = 0) -> np.ndarray:
    """A (2H, 2W) or (2H, 2W, 1) mosaic as (H, W, 4) cells in canonical order, each word ``>> shift``."""
    plane = mosaic[:, :, 0] if mosaic.ndim == 3 else mosaic
    cells = np.stack([plane[dy::2, dx::2] for dy, dx in cell_offsets(cfa)], axis=-1)  # 4 x (H, W) -> (H, W, 4)
    if shift:
        cells >>= shift
    return cells


def to_mosaic(cells: np.ndarray, cfa: str, shift: int = 0) -> np.ndarray:
    """(H, W, 4) canonical cells as the (2H, 2W, 1) mosaic of phase ``cfa``, each code ``<< shift``."""
    height, width, _ = cells.shape
    mosaic = np.empty((2 * height, 2 * width), cells.dtype)
    for c, (dy, dx) in enumerate(cell_offsets(cfa)):
        mosaic[dy::2, dx::2] = cells[:, :, c]
    if shift:
        mosaic <<= shift
    return mosaic[:, :, np.newaxis]  # (2H, 2W) -> (2H, 2W, 1)
