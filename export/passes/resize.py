"""Resize (nearest, linear, cubic) and ConvTranspose: decoders' upsampling as gathers.

Resize is linear in its input and separable over H and W. The plain
operator's own weights are read off onnxruntime by resizing identity bases,
one axis at a time, so every attribute (coordinate_transformation_mode,
nearest_mode, cubic_coeff_a, exclude_outside, antialias) means exactly what
it means in the plain model. Output position o then reads taps i with weights
``w[o, i] = w_h[o_h, i_h] * w_w[o_w, i_w]``::

    nearest:  Gather(X, index[q], axis=1)                               # one tap
    others:   ReduceSum(Gather(X, index, axis=1) * weight[..., None], axis=2)

ConvTranspose is a convolution read backwards: output o and tap t read input
``i = (o + p - d*t) / s`` when that is an integer inside the input, so it is
the same gather-and-Gemm as Conv (``conv.py``), with the taps that read no
input pointing at a zero row.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from export.compiler.context import Context, attrs
from export.compiler.values import Tokens
from export.layout import natural
from export.passes.base import Pass, new_class
from export.prepare.probe import run_node


def _axis_weights(node: onnx.NodeProto, opset: int, axis: int, length: int, scales, sizes) -> np.ndarray:
    """(length_out, length) weights of the plain Resize along one axis (2 = H, 3 = W)."""
    a = attrs(node)
    a.pop("axes", None)
    a.pop("keep_aspect_ratio_policy", None)
    shape = [length, 1, 1, 1]
    shape[axis] = length
    basis = np.zeros(shape, np.float32)
    basis.reshape(length, length)[np.arange(length), np.arange(length)] = 1.0  # (L, L) identity in the axis
    inputs = ["x", "", "", ""]
    tensors = []
    if sizes is not None:
        target = [length, 1, 1, 1]
        target[axis] = int(sizes[axis])
        tensors.append(helper.make_tensor("sizes", onnx.TensorProto.INT64, [4], target))
        inputs[3] = "sizes"
    else:
        factor = [1.0, 1.0, 1.0, 1.0]
        factor[axis] = float(scales[axis])
        tensors.append(helper.make_tensor("scales", onnx.TensorProto.FLOAT, [4], factor))
        inputs[2] = "scales"
    while inputs and not inputs[-1]:
        inputs.pop()
    probe = helper.make_node("Resize", inputs, ["y"], **a)
    out = run_node(probe, basis, max(opset, 13), tensors)
    return out.reshape(length, -1).T  # (L_in, L_out) -> (L_out, L_in)


def _taps(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nonzero taps of each output row: (L_out, T) indices and weights, zero-weight padded."""
    width = max(1, int((weights != 0).sum(axis=1).max()))
    index = np.zeros((weights.shape[0], width), np.int64)
    value = np.zeros((weights.shape[0], width), np.float64)
    for row in range(weights.shape[0]):
        nonzero = np.flatnonzero(weights[row])
        index[row, : nonzero.size] = nonzero
        value[row, : nonzero.size] = weights[row, nonzero]
    return index, value


class ResizePass(Pass):
    ops = ("Resize", "Upsample")

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        new_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        a = attrs(node)
        mode = a.get("coordinate_transformation_mode", b"half_pixel")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode == "tf_crop_and_resize":
            raise ctx.refuse(node, "coordinate_transformation_mode tf_crop_and_resize (roi) is not supported")
        policy = a.get("keep_aspect_ratio_policy", b"stretch")
        if (policy.decode() if isinstance(policy, bytes) else policy) != "stretch":
            raise ctx.refuse(node, "keep_aspect_ratio_policy other than stretch")
        if node.op_type == "Upsample" or ctx.graph.opset < 11:
            raise ctx.refuse(node, "Upsample / opset-10 Resize; re-export at opset 11 or newer")
        scales = sizes = None
        if len(node.input) > 3 and node.input[3]:
            sizes = [int(v) for v in ctx.constant(node, 3, "sizes")]
        else:
            scales = [float(v) for v in ctx.constant(node, 2, "scales")]
        axes = a.get("axes")
        if axes is not None:
            full = [1.0, 1.0, 1.0, 1.0] if scales is not None else list(ctx.graph.shape(node.input[0]))
            given = scales if scales is not None else sizes
            for i, axis in enumerate(axes):
                full[axis % 4] = given[i]
            scales, sizes = (full, None) if scales is not None else (None, full)
        given = scales if scales is not None else sizes
        if scales is not None and (given[0] != 1 or given[1] != 1):
            raise ctx.refuse(node, f"resize of the batch or channel axis (scales {given})")
        if sizes is not None and sizes[1] != x.channels:
            raise ctx.refuse(node, f"resize of the channel axis (sizes {sizes})")
        out_h, out_w = ctx.hw(node.output[0])
        if ctx.graph.shape(node.output[0])[0] is not None:
            raise ctx.refuse(node, "the resize fixes the batch axis (sizes or scales given for axis 0)")
        w_h = _axis_weights(node, ctx.graph.opset, 2, x.height, scales, sizes)  # (Ho, H)
        w_w = _axis_weights(node, ctx.graph.opset, 3, x.width, scales, sizes)  # (Wo, W)
        if w_h.shape[0] != out_h or w_w.shape[0] != out_w:
            raise ctx.refuse(node, "the probed resize size differs from the inferred output shape")
        ih, vh = _taps(w_h)
        iw, vw = _taps(w_w)
        # 2-D taps of output (oh, ow): (th, tw) -> logical ih*W + iw, weight vh*vw
        logical = (ih[:, None, :, None] * x.width + iw[None, :, None, :]).reshape(out_h * out_w, -1)
        weight = (vh[:, None, :, None] * vw[None, :, None, :]).reshape(out_h * out_w, -1)
        out_layout = ctx.layout_of(node.output[0]) if out_h * out_w > 1 else natural(1, 1)
        index = x.layout.inv[logical][out_layout.perm]  # (HWo, T), physical
        weight = weight[out_layout.perm]
        b = ctx.b
        if index.shape[1] == 1 and np.all(weight == 1.0):
            out = ctx.gather(ctx.as3d(x), index[:, 0], x.layout, out_layout, hint="resize")  # (N, HWo, C)
        else:
            gathered = ctx.gather(ctx.as3d(x), index, x.layout, out_layout, hint="resize")  # (N, HWo, T, C)
            scaled = b.node("Mul", [gathered, ctx.table(weight.astype(np.float32)[:, :, None], "resize-weight", out_layout)])
            out = b.reduce("ReduceSum", scaled, [2], keepdims=0, hint="resize")  # (N, HWo, C)
        ctx.set(node.output[0], Tokens(out, x.channels, out_h, out_w, out_layout))


class ConvTransposePass(Pass):
    ops = ("ConvTranspose",)

    def constrain(self, ctx: Context, node: onnx.NodeProto) -> None:
        new_class(ctx, node)

    def emit(self, ctx: Context, node: onnx.NodeProto) -> None:
        x = ctx.tokens(node)
        weight = ctx.constant(node, 1, "the weight").astype(np.float32)
        bias = ctx.constant(node, 2, "the bias").astype(np.float32) if len(node.input) > 2 and node.input[2] else None
        a = attrs(node)
        if weight.ndim != 4:
            raise ctx.refuse(node, "only 2-D transposed convolutions are supported")
        c_in, c_out_g, kh, kw = weight.shape
        groups = a.get("group", 1)
        if groups != 1:
            raise ctx.refuse(node, f"grouped ConvTranspose (group={groups}) is not supported")
        strides = tuple(a.get("strides", [1, 1]))
        dilations = tuple(a.get("dilations", [1, 1]))
        out_h, out_w = ctx.hw(node.output[0])
        pads_begin = _transpose_pads(a, (x.height, x.width), (out_h, out_w), (kh, kw), strides, dilations)
        taps = []
        for axis, (length, out_len, k) in enumerate(((x.height, out_h, kh), (x.width, out_w, kw))):
            offset = np.arange(out_len)[:, None] + pads_begin[axis] - np.arange(k)[None, :] * dilations[axis]
            hit = (offset % strides[axis] == 0) & (offset >= 0) & (offset // strides[axis] < length)
            taps.append((np.where(hit, offset // strides[axis], 0), hit))  # (out, k) input coordinate, valid
        (rows, row_ok), (cols, col_ok) = taps
        logical = rows[:, None, :, None] * x.width + cols[None, :, None, :]  # (oh, ow, kh, kw)
        valid = row_ok[:, None, :, None] & col_ok[None, :, None, :]
        logical = logical.reshape(out_h * out_w, kh * kw)
        valid = valid.reshape(out_h * out_w, kh * kw)
        out_layout = ctx.layout_of(node.output[0]) if out_h * out_w > 1 else natural(1, 1)
        source, _ = ctx.padded(x, ((-1, 0.0),))
        index = np.where(valid, x.layout.inv[logical], x.size)[out_layout.perm]  # (HWo, KK) physical
        b = ctx.b
        gathered = ctx.gather(source, index, x.layout, out_layout, hint="convT")  # (N, HWo, KK, Cin)
        flat = b.reshape(gathered, [-1, kh * kw * c_in])  # -> (N*HWo, KK*Cin)
        w_m = weight.transpose(2, 3, 0, 1).reshape(kh * kw * c_in, c_out_g)  # (kh, kw, Cin, Cout) -> (KK*Cin, Cout)
        inputs = [flat, b.const(np.ascontiguousarray(w_m), "weight")]
        if bias is not None:
            inputs.append(b.const(bias, "bias"))
        y = b.node("Gemm", inputs, "convT")
        out = b.reshape(y, [-1, out_h * out_w, c_out_g])  # -> (N, HWo, Cout)
        ctx.set(node.output[0], Tokens(out, c_out_g, out_h, out_w, out_layout))


def _transpose_pads(a: dict, in_hw, out_hw, kernel, strides, dilations) -> tuple[int, int]:
    """Begin pads of a ConvTranspose (explicit, or from auto_pad / output_shape as onnxruntime does)."""
    auto_pad = a.get("auto_pad", b"NOTSET")
    auto_pad = auto_pad.decode() if isinstance(auto_pad, bytes) else auto_pad
    output_padding = list(a.get("output_padding", [0, 0]))
    if "output_shape" in a or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins = []
        for axis in range(2):
            total = strides[axis] * (in_hw[axis] - 1) + output_padding[axis] + \
                ((kernel[axis] - 1) * dilations[axis] + 1) - out_hw[axis]
            total = max(total, 0)
            if auto_pad == "SAME_UPPER":
                begins.append(total // 2)
            else:  # SAME_LOWER, and onnxruntime's rule for an explicit output_shape
                begins.append(total - total // 2)
        return begins[0], begins[1]
    if auto_pad == "VALID":
        return 0, 0
    pads = list(a.get("pads", [0, 0, 0, 0]))
    return pads[0], pads[1]
