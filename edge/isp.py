"""The mini-ISP of a Bayer model, in numpy: cells (R, Gr, Gb, B) to the RGB frame the plain model sees.

A keyed model for a Bayer readout spec (``export/compiler/isp.py``) begins with a pointwise mini-ISP:
per cell, black level, white balance (G: the mean of Gr and Gb), an optional 3x3 colour matrix, clip
to [0, white], an optional gamma, on the 0..255 scale; then the plain RGB model at half the mosaic's
resolution. Every step reads one cell, so it commutes with any layout of the cells. The manifest
records the steps (:class:`~firmware_sim.manifest.IspSpec`), and :func:`isp_rgb` computes them here,
without the compiler, so that ``keycam verify`` and the lab can run the plain model on exactly the
frame the keyed model's ISP produces ("plain-from-mini-ISP").
"""

from __future__ import annotations

import numpy as np

from firmware_sim.errors import FrameError
from firmware_sim.manifest import IspSpec
from firmware_sim.spec import ReadoutSpec


def isp_rgb(cells: np.ndarray, isp: IspSpec) -> np.ndarray:
    """(..., 4) cells of output codes (R, Gr, Gb, B) -> (..., 3) float32 R, G, B on the 0..255 scale."""
    cells = np.asarray(cells)
    if cells.shape[-1:] != (4,):
        raise FrameError(f"isp_rgb: cells have shape {cells.shape}, expected (..., 4) codes (R, Gr, Gb, B) of a Bayer "
                         f"spec")
    v = cells.astype(np.float64) - isp.black_level
    rgb = np.stack([v[..., 0], (v[..., 1] + v[..., 2]) / 2, v[..., 3]], axis=-1)  # (..., 4) -> (..., 3)
    rgb = rgb * np.asarray(isp.wb_gains, np.float64)
    if isp.ccm is not None:
        rgb = rgb @ np.asarray(isp.ccm, np.float64).reshape(3, 3).T  # rgb_out = ccm @ rgb_in, per cell
    rgb = np.clip(rgb, 0.0, isp.white) / isp.white
    if isp.gamma is not None:
        rgb = rgb ** (1.0 / isp.gamma)
    return (rgb * 255.0).astype(np.float32)


def sensor_rgb(frames: np.ndarray, spec: ReadoutSpec, isp: IspSpec) -> np.ndarray:
    """Sensor frames of a Bayer spec, (N, 2H, 2W[, 1]) mosaics, as the RGB frames (N, H, W, 3) float32 on the
    0..255 scale that the keyed model's mini-ISP computes from their measurements: the cells in raster order,
    through the spec's transfer, through :func:`isp_rgb`. The plain-side reference of a Bayer model."""
    table = spec.transfer_table()
    cells = np.stack([table[spec.cells(frame)] for frame in frames])  # (N, H, W, 4) output codes
    return isp_rgb(cells, isp)
