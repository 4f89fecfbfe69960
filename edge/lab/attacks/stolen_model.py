"""A stolen keyed model, without the key: the model file gives the sensor's readout order away.

A keyed model computes on the measurement x' = x[L0] what the plain network computes on x, so it must hold L0 in
some form. keycam's keyed ONNX begins with a gather through an index table that depends on L0 (the model's
``sensor_tables``; the same tables are in its ``.epochs.npz``). :func:`sensor_table` reads the first one from the
graph, with nothing but the ``onnx`` package, and :func:`readout_order` turns it into the order:

- ``boundary`` (the default policy): one (1, N) table puts the measurement back in natural order inside the
  model: ``natural[a] = measurement[table[a]]``, so ``table`` *is* L0^-1 (physical position of each logical one).
- ``fresh`` (the paper's): the first spatial layer's (N, k*k) table gives, for each output token q, the physical
  positions of the k x k taps around a logical position the attacker does not know (its layer layout L1 is
  secret too), with index N for taps in the padding. But two taps side by side in one row of the window are
  horizontal neighbours in the picture, and two taps one above the other are vertical neighbours, whatever L1
  is: the table spells out the grid's right- and down-neighbour of every physical position (a window larger
  than its stride covers every adjacent pair). The position with no left and no upper neighbour is the top-left
  corner; walking right and down from it lays the whole grid out. Exact.

So a stolen keyed model unscrambles every measurement of the paper's readout (:func:`unscramble`), under either
policy, exactly. Against the sealed readout (``firmware_sim.seal``) it gives the same order and nothing else: the
measurements that leave the sensor are AEAD ciphertext, and putting ciphertext bytes in order gives ordered
noise. The sealing key comes from the master key by HKDF; no model file holds it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from edge.errors import LabError


def _input_shape(model: onnx.ModelProto) -> tuple[int, int, int]:
    initial = {i.name for i in model.graph.initializer}
    graph_input = next(i for i in model.graph.input if i.name not in initial)
    dims = [d.dim_value for d in graph_input.type.tensor_type.shape.dim]  # (N, H, W, C): the measurement
    if len(dims) != 4 or not all(dims[1:]):
        raise LabError(f"input {graph_input.name!r} has shape {dims}; a keyed model's is (N, H, W, C)")
    return dims[1], dims[2], dims[3]


def _reads_measurement(table: np.ndarray, positions: int, channels: int) -> bool:
    if table.dtype.kind not in "iu" or table.ndim != 2 or table.min() < 0:
        return False
    if table.shape == (1, positions * channels):  # boundary: one element gather over the codes
        return True
    side = int(round(np.sqrt(table.shape[1])))
    return side * side == table.shape[1] and side >= 2 and table.max() <= positions  # fresh: a window per token


def sensor_table(model: onnx.ModelProto | str | Path) -> tuple[np.ndarray, tuple[int, int, int]]:
    """(the first index table that reads the measurement, the measurement's (H, W, C)), from a keyed model's graph.

    The table is the first integer initializer, in node order, of shape (1, H*W*C) (``boundary``: an element
    gather over the codes) or (tokens, k*k) with entries up to H*W (``fresh``: the first layer's windows)."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    height, width, channels = _input_shape(model)
    initializers = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        for name in node.input:
            if name in initializers:
                table = numpy_helper.to_array(initializers[name])
                if _reads_measurement(table, height * width, channels):
                    return table.astype(np.int64), (height, width, channels)
    raise LabError("no index table over the measurement's positions in this model: not a keyed model")


def readout_order(table: np.ndarray, height: int, width: int, channels: int = 1) -> np.ndarray:
    """``inverse[a]``: the physical position holding logical position a (raster order), from :func:`sensor_table`."""
    positions = height * width
    if table.shape == (1, positions * channels):  # boundary: the codes' gather, into (C, H, W) or (H, W, C)
        flat = table[0]
        for inverse in (flat[:positions] // channels, flat[::channels] // channels):  # channel-major, -minor
            expected = (inverse[None, :] * channels + np.arange(channels)[:, None]).reshape(-1)  # (C, HW)
            if np.array_equal(flat, expected) or np.array_equal(flat, expected.reshape(channels, -1).T.reshape(-1)):
                return inverse.copy()
        raise LabError("the model's first gather does not read whole positions; not a keyed readout table")
    taps = table.shape[1]
    side = int(round(np.sqrt(taps)))
    if side * side != taps or side < 2:
        raise LabError(f"the first layer's window has {taps} taps; the neighbour walk needs a square window >= 2x2")
    return _walk(table.reshape(len(table), side, side), height, width)


def _walk(windows: np.ndarray, height: int, width: int) -> np.ndarray:
    """The grid laid out from the right- and down-neighbours the windows (tokens, k, k) spell out (H*W: padding)."""
    positions = height * width
    right = np.full(positions + 1, -1, np.int64)
    down = np.full(positions + 1, -1, np.int64)
    for target, a, b in ((right, windows[:, :, :-1], windows[:, :, 1:]), (down, windows[:, :-1, :], windows[:, 1:, :])):
        keep = (a != positions) & (b != positions)  # neither tap in the padding
        target[a[keep]] = b[keep]
    has_left = np.zeros(positions + 1, bool)
    has_left[right[right >= 0]] = True
    has_up = np.zeros(positions + 1, bool)
    has_up[down[down >= 0]] = True
    corners = np.flatnonzero(~has_left[:positions] & ~has_up[:positions])
    if len(corners) != 1:
        raise LabError(f"the first layer's table gives {len(corners)} top-left corners, not 1; its window is not "
                       "larger than its stride")
    inverse = np.empty(positions, np.int64)
    start = int(corners[0])
    for row in range(height):
        at = start
        for col in range(width):
            inverse[row * width + col] = at
            at = int(right[at])
        start = int(down[start])
    if not np.array_equal(np.sort(inverse), np.arange(positions)):
        raise LabError("the neighbour walk did not lay out every position once; the table is not a keyed conv's")
    return inverse


def unscramble(measurement: np.ndarray, inverse: np.ndarray) -> np.ndarray:
    """A (H, W, C) measurement (or a batch (N, H, W, C)) put in the order :func:`readout_order` found."""
    batch = measurement if measurement.ndim == 4 else measurement[np.newaxis]
    count, height, width, channels = batch.shape
    flat = batch.reshape(count, height * width, channels)[:, inverse]
    out = flat.reshape(count, height, width, channels)
    return out if measurement.ndim == 4 else out[0]


def stolen_order(model: onnx.ModelProto | str | Path) -> np.ndarray:
    """The sensor's readout order (``inverse``, as :func:`readout_order`) from a keyed model file alone."""
    table, (height, width, channels) = sensor_table(model)
    return readout_order(table, height, width, channels)
