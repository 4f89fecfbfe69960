"""An SSD-style anchor head with random weights (BlazeFace's shape), and the anchors its decoder generates.

:func:`ssd_head` is a small backbone with two heads, as BlazeFace's short-range face detector is laid out: a
128 x 128 input, 2 anchors per cell at stride 8 (16 x 16 cells) and 6 at stride 16 (8 x 8), 896 anchors; each
head's Conv output goes channels-last (Transpose 0, 2, 3, 1) and is reshaped to (N, cells * anchors, K), the
scales concatenated along the anchors: ``regressors`` (N, 896, 16) (box offsets and six keypoints, in input
pixels) and ``classificators`` (N, 896, 1) (a logit). With ``batch`` the input and the reshapes are fixed,
``(1, -1, 16)`` as TFLite-converted models write them; without, dynamic, each head's anchor count written out.

:func:`ssd_anchors` generates the anchor centres the way MediaPipe's SSD anchor calculator does for BlazeFace
(offset 0.5, one fixed-size anchor per aspect ratio), in [0, 1] coordinates: ``(896, 2)``. A decoder adds
``regressors[..., :2] / size`` to them. Under ``fresh`` the anchor axis is scrambled (a dense output whose
manifest entry names each head's segment); ``edge.restore`` puts it back, and then the anchors line up.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from export.zoo.networks import Net

SIZE = 128
STRIDES = (8, 16)
PER_CELL = (2, 6)
VALUES = 16  # 4 box numbers + 6 keypoints x 2


def ssd_head(batch: int | None = None, seed: int = 0) -> onnx.ModelProto:
    """The random-weight SSD-style detector (see the module docstring); ``batch``: a fixed batch, else dynamic."""
    n = Net(3, SIZE, SIZE, seed)
    x = n.cbr("input", 16, 3, 2)  # 64 x 64
    x = n.cbr(x, 24, 3, 2)  # 32 x 32
    f8 = n.cbr(n.cbr(x, 32, 3, 2), 32)  # 16 x 16: stride 8
    f16 = n.cbr(n.cbr(f8, 48, 3, 2), 48)  # 8 x 8: stride 16
    regress, classify = [], []
    for feature, stride, anchors in ((f8, 8, PER_CELL[0]), (f16, 16, PER_CELL[1])):
        cells = (SIZE // stride) ** 2
        for width, out in ((VALUES, regress), (1, classify)):
            head = n.conv(feature, anchors * width, 3, bias=True)
            moved = n._node("Transpose", [head], anchors * width, perm=[0, 2, 3, 1])  # (N, H, W, A*K)
            shape = [batch, -1, width] if batch else [-1, cells * anchors, width]
            out.append(n._node("Reshape", [moved, n._init(np.array(shape, np.int64), "shape")], width))
    regressors = n._node("Concat", regress, VALUES, axis=1)
    classificators = n._node("Concat", classify, 1, axis=1)
    dims = [batch or "batch", 3, SIZE, SIZE]
    for name, old in (("regressors", regressors), ("classificators", classificators)):
        for node in n.nodes:
            node.output[:] = [name if o == old else o for o in node.output]
    graph = helper.make_graph(
        n.nodes, "ssd_head", [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("regressors", onnx.TensorProto.FLOAT, None),
         helper.make_tensor_value_info("classificators", onnx.TensorProto.FLOAT, None)], n.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", n.opset)])
    model.ir_version = 8
    helper.set_model_props(model, {"task": "detect", "names": "{0: 'face'}"})
    return model


def ssd_anchors() -> np.ndarray:
    """Anchor centres (896, 2) as x, y in [0, 1], in the heads' order (row by row, the cell's anchors together)."""
    centres = []
    for stride, anchors in zip(STRIDES, PER_CELL):
        cells = SIZE // stride
        ys, xs = np.meshgrid((np.arange(cells) + 0.5) / cells, (np.arange(cells) + 0.5) / cells, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)  # (cells^2, 2) raster order
        centres.append(np.repeat(grid, anchors, axis=0))
    return np.concatenate(centres).astype(np.float32)
