"""The keyed model's input: from the sensor's codes to what the plain model's first layer reads.

The measurement is (N, H, W, C) codes of the readout spec's dtype, positions in the sensor
layout L0. Before the plain network, the keyed model does what the plain model's user did:
codes to the 0..255 scale, the channel order (RGB or BGR), then (x - mean) / std. Under
``fresh`` the result stays tokens in L0 (:func:`tokens_input`); under ``boundary`` one gather
first puts the positions in natural order and the channels in the model's (:func:`natural_input`).
When the input feeds a single Conv, the scale, the division by std and (under ``fresh``, or for a Bayer
spec) the channel order fold into that Conv's weights (:func:`fold_into_first_conv`).

A Bayer spec's measurement is (N, H, W, 4) cells (R, Gr, Gb, B): the mini-ISP (``isp.py``) first
turns each cell into R, G, B on the 0..255 scale, and what follows is the same as for an RGB
measurement in that order (code scale 1).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import onnx

from export.compiler.compilation import MEASUREMENT, Compilation
from export.compiler.context import attrs
from export.compiler.isp import emit_isp
from export.compiler.values import Tokens
from export.errors import UnsupportedModel
from export.prepare.graph import PlainGraph
from firmware_sim.manifest import FITS, InputSpec

if TYPE_CHECKING:
    from export.compiler.options import KeyifyOptions


def check_options(graph: PlainGraph, options: KeyifyOptions) -> None:
    """Refuse options that do not fit the model (naming the option), before any work."""
    o, g = options, graph
    if o.policy not in ("fresh", "boundary"):
        raise UnsupportedModel("(options)", "policy", f"--layouts {o.policy!r}; use fresh or boundary")
    if o.spec.is_bayer:
        _check_bayer(g, o)
    elif o.isp is not None:
        raise UnsupportedModel("(options)", "isp", f"the mini-ISP reads Bayer cells; the readout spec "
                                                   f"({o.spec.describe()}) reads pixels: use a Bayer spec or drop --isp-*")
    elif o.spec.channels != g.channels:
        raise UnsupportedModel(
            g.input_name, "input",
            f"the model takes {g.channels} channels, the readout spec delivers {o.spec.channels}; use a "
            f"{g.channels}-channel spec",
        )
    for what, values in (("mean", o.mean), ("std", o.std)):
        if values is not None and len(values) not in (1, g.channels):
            raise UnsupportedModel("(options)", what, f"--{what} has {len(values)} values; the model has "
                                                      f"{g.channels} channels")
    if o.std is not None and any(v == 0 for v in o.std):
        raise UnsupportedModel("(options)", "std", "--std contains 0")
    for what, order in (("channel-order", o.channel_order), ("model-order", o.model_order)):
        if order is not None and order not in ("rgb", "bgr"):
            raise UnsupportedModel("(options)", what, f"--{what} {order!r}; use rgb or bgr")
    if o.fit is not None and o.fit not in FITS:
        raise UnsupportedModel("(options)", "fit", f"--fit {o.fit!r}; use one of {', '.join(FITS)}")
    if o.pad is not None and not (isinstance(o.pad, (int, float)) and 0 <= o.pad <= 255):
        raise UnsupportedModel("(options)", "pad", f"--pad {o.pad!r}; give the letterbox's value on the 0..255 scale")
    if o.normalize not in (None, "metadata", "none"):
        raise UnsupportedModel("(options)", "normalize", f"--normalize {o.normalize!r}; use none (or give --mean and "
                                                         f"--std)")
    if o.normalize == "none" and (o.mean is not None or o.std is not None):
        raise UnsupportedModel("(options)", "normalize", "--normalize none and --mean/--std both given; choose one")


def _check_bayer(g: PlainGraph, o: KeyifyOptions) -> None:
    if g.channels != 3:
        raise UnsupportedModel(g.input_name, "input", f"a Bayer spec's mini-ISP gives RGB, the model takes "
                                                      f"{g.channels} channel(s); use a 3-channel model or a pixel spec")
    if o.channel_order != "rgb":
        raise UnsupportedModel("(options)", "channel-order", f"--channel-order {o.channel_order}: a Bayer spec's cells "
                                                             f"are (R, Gr, Gb, B) and its mini-ISP gives R, G, B; "
                                                             f"drop the flag (--model-order sets the model's)")
    o.isp_spec  # noqa: B018 - resolves the ISP for the spec: refuses a black level at or above the top code


def measured_channels(job: Compilation) -> int:
    """Codes per position of the measurement: the model's channels, or a Bayer cell's 4."""
    return job.options.spec.channels if job.options.spec.is_bayer else job.graph.channels


def _norm(job: Compilation) -> tuple[np.ndarray, np.ndarray, float]:
    """(mean, std) per model channel, and the factor that takes codes to the 0..255 scale."""
    c = job.graph.channels
    mean = np.broadcast_to(np.asarray(job.options.mean or (0.0,), np.float32), (c,)).copy()
    std = np.broadcast_to(np.asarray(job.options.std or (1.0,), np.float32), (c,)).copy()
    spec = job.options.spec
    scale = 1.0 if spec.output_bits == 8 or spec.is_bayer else 255.0 / spec.output_max  # the ISP gives 0..255
    return mean, std, scale


def _channel_map(job: Compilation) -> np.ndarray:
    """model channel c reads measurement channel map[c]."""
    c = job.graph.channels
    if c == 3 and job.options.channel_order != job.options.model_order:
        return np.array([2, 1, 0])
    return np.arange(c)


def input_spec(job: Compilation) -> InputSpec:
    """The manifest's description of the measurement and of what the model does to it first."""
    g, o = job.graph, job.options
    mean, std, scale = _norm(job)
    return InputSpec(
        name=MEASUREMENT, shape=[g.batch, g.height, g.width, measured_channels(job)], dtype=o.spec.output_dtype.name,
        channel_order=o.channel_order, model_channel_order=o.model_order or "rgb",
        mean=[float(v) for v in mean], std=[float(v) for v in std], code_scale=scale,
        plain_layout=g.input_layout, isp=o.isp_spec, fit=o.fit or "crop", pad=float(o.pad or 0.0),
        sources=job.sources,
    )


def _normalise(job: Compilation, x: str, broadcast: list[int]) -> str:
    b = job.builder
    mean, std, scale = _norm(job)
    if scale != 1.0:
        x = b.node("Mul", [x, b.const(np.array(scale, np.float32), "code-scale")], "to-255")
    if np.any(mean != 0):
        x = b.node("Sub", [x, b.const(mean.reshape(broadcast), "mean")], "mean")
    if np.any(std != 1):
        x = b.node("Div", [x, b.const(std.reshape(broadcast), "std")], "std")
    return x


def fold_into_first_conv(job: Compilation, order: np.ndarray | None = None) -> np.ndarray | None:
    """Fold the division by std, the code scale and the channel order into the first Conv.

    normalised[c] = (raw[m] * scale - mean[c]) / std[c] = (raw[m] - p[m]) * scale / std[c] with m the
    measurement channel that model channel c reads and p[m] = mean[c] / scale. So the Conv gets
    W'[:, m] = W[:, c] * scale / std[c], its bias unchanged, and reads raw - p: one subtraction
    instead of three passes, and its zero padding still means a normalised 0. The result differs
    from the plain model by float rounding only. ``order``: the map m (None: the channel map of the options;
    the identity where a gather before the Conv has put the channels in the model's order already). Returns p
    (per measurement channel), or None when the input does not feed a single plain Conv (then nothing changes).
    """
    g = job.graph
    consumers = g.consumers.get(g.input_name, [])
    if len(consumers) != 1 or consumers[0].op_type != "Conv" or g.input_name in g.outputs:
        return None
    node = consumers[0]
    weight = g.constants.get(node.input[1]) if len(node.input) > 1 else None
    if node.input[0] != g.input_name or weight is None or weight.ndim != 4 or attrs(node).get("group", 1) != 1:
        return None
    mean, std, scale = (np.asarray(v, np.float64) for v in _norm(job))
    order = _channel_map(job) if order is None else order
    folded = np.empty(weight.shape, np.float64)
    folded[:, order] = weight.astype(np.float64) * (scale / std)[None, :, None, None]
    offset = np.empty(len(order))
    offset[order] = mean / scale
    name = job.builder.const(folded.astype(np.float32), "folded-weight")
    g.constants[name] = folded.astype(np.float32)
    new = onnx.NodeProto()
    new.CopyFrom(node)
    new.input[1] = name
    g.replace_node(node, new)
    return offset.astype(np.float32)


def _offset(job: Compilation, x: str, offset: np.ndarray, broadcast: list[int]) -> str:
    if not np.any(offset):
        return x
    return job.builder.node("Sub", [x, job.builder.const(offset.reshape(broadcast), "code-offset")], "offset")


def tokens_input(job: Compilation) -> Tokens:
    """``fresh``: the measurement as (N, HW, C) float tokens in the sensor layout, normalised."""
    g, b = job.graph, job.builder
    n, c = g.height * g.width, g.channels
    x = b.reshape(MEASUREMENT, [-1, n, measured_channels(job)], "tokens")  # (N, H, W, C) -> (N, HW, C), sensor layout
    x = b.node("Cast", [x], "float", to=onnx.TensorProto.FLOAT)
    if job.options.spec.is_bayer:
        x = emit_isp(job, x)  # (N, HW, 4) cells -> (N, HW, 3) RGB on the 0..255 scale, still in the sensor layout
    offset = fold_into_first_conv(job)
    if offset is not None:
        return Tokens(_offset(job, x, offset, [c]), c, g.height, g.width, job.sensor)
    order = _channel_map(job)
    if not np.array_equal(order, np.arange(c)):
        x = b.gather(x, order, axis=2, hint="channels")
    x = _normalise(job, x, [c])
    return Tokens(x, c, g.height, g.width, job.sensor)


def _natural_planes(job: Compilation, codes: str, n: int, c: int, order: np.ndarray) -> str:
    """(N, HW·C) float codes in the sensor layout, each position's C codes together -> (N, C·HW) planes in natural
    order and in the model's channel order, by one GatherElements along the codes::

        planes = GatherElements(codes, index, axis=1)   planes[n, k·HW + a] = codes[n, inv[a]·C + order[k]]

    so ``index[k·HW + a] = inv[a]·C + order[k]``: the sensor table ``inv`` and the channel order in one table of
    flat code indices. It is stored at (1, C·HW), expanded to the codes' batch at run time, or at (B, C·HW) for
    a fixed batch B (there an Expand would be of constants only, which an optimised copy of the graph, such as
    the int8 quantiser's pre-processing saves, folds into a new constant, losing the table's name that key
    epochs override). Its epoch recipe, ``r = a·C + order[k]`` in the same shape, counts C codes to a position
    (``Manifest.table_groups``): epoch E's table is ``inv_E[r // C]·C + r % C``.

    One pass over the codes, from the cast codes on: onnxruntime's GatherElements runs one tight loop over the
    output's elements, where its Gather copies one row per index (8 ns a row here), and a Transpose to
    channels-first before the gather (the earlier form) costs another pass. In int8 MobileNetV2, YOLOv8n and
    BlazeFace this form was as fast as transpose-then-gather or faster in every round measured, by up to 5 % of
    the whole model (``benchmarks/bench_input_forms.py``, docs/benchmarks.md)."""
    b, batch = job.builder, job.graph.batch
    positions = job.sensor.inv.astype(np.int64)  # natural a <- physical inv[a]
    flat = (positions[None, :] * c + order[:, None]).reshape(1, c * n).astype(np.int32)  # (C, HW) -> (1, C·HW)
    recipe = (np.arange(n)[None, :] * c + order[:, None]).reshape(1, c * n).astype(np.int32)  # inv_E[r // C]·C + r % C
    if batch is not None:
        flat = np.ascontiguousarray(np.broadcast_to(flat, (batch, c * n)))  # (1, C·HW) -> (B, C·HW)
        recipe = np.ascontiguousarray(np.broadcast_to(recipe, (batch, c * n)))
    table = b.const(flat, "sensor-index")
    job.sensor_tables.append(table)
    job.epoch_recipes[table] = recipe
    if c > 1:
        job.table_groups[table] = c
    index = table if batch is not None else b.node("Expand", [table, b.node("Shape", [codes], "codes-shape")],
                                                     "sensor-index-expanded")
    return b.node("GatherElements", [codes, index], "natural", axis=1)  # (N, C·HW), natural order


def natural_input(job: Compilation) -> None:
    """``boundary``: positions back in natural order (one GatherElements over the cast codes, which also puts the
    channels in the model's order; for a Bayer spec one row gather of cells, then the mini-ISP), then NCHW,
    normalised, under the plain input's name."""
    g, b = job.graph, job.builder
    n, c = g.height * g.width, g.channels
    bayer = job.options.spec.is_bayer
    offset = fold_into_first_conv(job, None if bayer else np.arange(c))  # the gather puts the channels in order
    if bayer:  # the mini-ISP reads whole cells: one row gather, then (N, HW, 4) cells -> (N, HW, 3) RGB
        rows = b.reshape(MEASUREMENT, [-1, n, measured_channels(job)], "rows")  # (N, H, W, 4) -> (N, HW, 4)
        table = b.const(job.sensor.inv.astype(np.int32), "sensor-index")  # natural a <- physical inv[a]
        job.sensor_tables.append(table)
        job.epoch_recipes[table] = np.arange(n, dtype=np.int32)  # any epoch's table is inv_E[a]
        x = b.node("Gather", [rows, table], "natural", axis=1)  # (N, HW, 4), natural order
        x = emit_isp(job, b.node("Cast", [x], "float", to=onnx.TensorProto.FLOAT))
        x = b.transpose(x, [0, 2, 1])  # -> (N, 3, HW)
        order = np.arange(c) if offset is not None else _channel_map(job)
        if not np.array_equal(order, np.arange(c)):
            x = b.gather(x, order, axis=1, hint="channels")  # whole planes: cheap
    else:
        x = b.reshape(MEASUREMENT, [-1, n * c], "codes")  # (N, H, W, C) -> (N, HW·C), sensor layout
        x = b.node("Cast", [x], "float", to=onnx.TensorProto.FLOAT)
        x = _natural_planes(job, x, n, c, _channel_map(job))  # (N, C·HW), natural order, the model's channels
    x = b.reshape(x, [-1, c, g.height, g.width])  # (N, C, HW) or (N, C·HW) -> (N, C, H, W)
    if offset is not None:
        x = _offset(job, x, offset, [1, c, 1, 1])
    else:
        x = _normalise(job, x, [1, c, 1, 1])
    b.node("Identity", [x], outputs=[g.input_name])
