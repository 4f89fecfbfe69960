"""The mini-ISP a keyed model for a Bayer spec begins with: cells (R, Gr, Gb, B) to an RGB frame.

The measurement of a Bayer spec is (N, H, W, 4) cells of output codes in the sensor layout. Per cell
(``firmware_sim.manifest.IspSpec``; ``edge.isp.isp_rgb`` is the numpy twin)::

    v   = cell - black                                   # (R, Gr, Gb, B)
    rgb = (v_R, (v_Gr + v_Gb) / 2, v_B) * wb             # white balance
    rgb = ccm @ rgb                                      # optional colour matrix
    rgb = clip(rgb, 0, white) / white                    # [0, 1]
    rgb = rgb ** (1 / gamma)                             # optional gamma
    out = 255 * rgb                                      # the scale --mean / --std are given in

The first three steps are one affine map of the cell, ``v @ A + b`` with ``A = M (diag wb) ccm^T``
(4 x 3; M takes R, the mean of the greens and B) and ``b = -black * (1 A)``; the scale ``1 / white``
(and 255 when there is no gamma) folds into A and b. So the ISP is a MatMul, an Add, a Clip, and with
a gamma a Pow and a Mul: every node reads one cell, so it commutes with any layout and runs on the
scrambled tokens under ``fresh`` and after the natural-order gather under ``boundary`` alike. Its
output is the half-resolution RGB frame (one pixel per cell) that the plain model then reads, with its
own normalisation and channel order (``inputs.py``).
"""

from __future__ import annotations

import numpy as np

from export.compiler.compilation import Compilation
from firmware_sim.manifest import IspSpec

GREENS = np.array([[1.0, 0.0, 0.0],  # R
                   [0.0, 0.5, 0.0],  # Gr: half of G
                   [0.0, 0.5, 0.0],  # Gb: the other half
                   [0.0, 0.0, 1.0]])  # B
"""(R, Gr, Gb, B) -> (R, G, B), G the mean of the two greens: rgb = cell @ GREENS."""


def affine(isp: IspSpec) -> tuple[np.ndarray, np.ndarray, float]:
    """(A (4, 3), b (3,), top): ``clip(cell @ A + b, 0, top)`` is the ISP before the gamma."""
    matrix = GREENS * np.asarray(isp.wb_gains, np.float64)[np.newaxis, :]
    if isp.ccm is not None:
        matrix = matrix @ np.asarray(isp.ccm, np.float64).reshape(3, 3).T
    scale, top = (1.0 / isp.white, 1.0) if isp.gamma is not None else (255.0 / isp.white, 255.0)
    matrix = matrix * scale
    return matrix, -isp.black_level * matrix.sum(axis=0), top


def emit_isp(job: Compilation, x: str) -> str:
    """(N, P, 4) float cells, channels last -> (N, P, 3) float R, G, B on the 0..255 scale."""
    b, isp = job.builder, job.options.isp_spec
    matrix, bias, top = affine(isp)
    x = b.node("MatMul", [x, b.const(matrix.astype(np.float32), "isp-matrix")], "isp-rgb")
    if np.any(bias):
        x = b.node("Add", [x, b.const(bias.astype(np.float32), "isp-black")], "isp-black")
    low, high = b.const(np.array(0.0, np.float32), "isp-low"), b.const(np.array(top, np.float32), "isp-white")
    x = b.node("Clip", [x, low, high], "isp-clip")
    if isp.gamma is not None:
        x = b.node("Pow", [x, b.const(np.array(1.0 / isp.gamma, np.float32), "isp-gamma")], "isp-gamma")
        x = b.node("Mul", [x, b.const(np.array(255.0, np.float32), "isp-255")], "isp-255")
    return x
