"""Conv: every attribute combination, both policies, keyed(scramble(x)) == plain(x); DeformConv as an oracle."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import helper

from edge.restore import layout_perm
from export.keyify import KeyifyOptions
from firmware_sim.manifest import LayoutRef
from tests.export.helpers import assert_keyed_equals_plain, frames, op_model, scramble, session, weights

POLICIES = ["fresh", "boundary"]

CASES = {
    # name: (attributes, kernel (kh, kw), groups, bias)
    "3x3-pad1": ("pads=[1,1,1,1]", (3, 3), 1, True),
    "3x3-nopad": ("", (3, 3), 1, False),
    "3x3-stride2-pad1": ("strides=[2,2], pads=[1,1,1,1]", (3, 3), 1, True),
    "5x3-asym-pads": ("pads=[2,0,1,2]", (5, 3), 1, True),
    "2x2-stride2": ("strides=[2,2]", (2, 2), 1, True),
    "stride-2x1": ("strides=[2,1], pads=[1,1,1,1]", (3, 3), 1, True),
    "dilation2": ("dilations=[2,2], pads=[2,2,2,2]", (3, 3), 1, True),
    "dilation-2x1-stride2": ("dilations=[2,1], strides=[2,2], pads=[1,0,2,1]", (3, 3), 1, False),
    "same-upper-stride2": ('auto_pad="SAME_UPPER", strides=[2,2]', (4, 4), 1, True),
    "same-lower-stride2": ('auto_pad="SAME_LOWER", strides=[2,2]', (4, 4), 1, True),
    "same-upper": ('auto_pad="SAME_UPPER"', (3, 3), 1, True),
    "valid": ('auto_pad="VALID", strides=[2,2]', (3, 3), 1, True),
    "1x1": ("", (1, 1), 1, True),
    "1x1-stride2": ("strides=[2,2]", (1, 1), 1, False),
    "7x7-stride2-pad3": ("strides=[2,2], pads=[3,3,3,3]", (7, 7), 1, True),
    "depthwise": ("pads=[1,1,1,1], group=6", (3, 3), 6, True),
    "depthwise-stride2": ("strides=[2,2], pads=[1,1,1,1], group=6", (3, 3), 6, False),
    "depthwise-multiplier2": ("pads=[1,1,1,1], group=6", (3, 3), 6, True),
    "grouped-2": ("pads=[1,1,1,1], group=2", (3, 3), 2, True),
    "grouped-3-stride2": ("strides=[2,2], group=3", (3, 3), 3, True),
    "grouped-1x1": ("group=2", (1, 1), 2, True),
}


def conv_model(name: str, height: int = 9, width: int = 11) -> onnx.ModelProto:
    """x (3 ch) -> Conv 3->6 3x3 (a first layer) -> ReLU -> the Conv under test on 6 channels."""
    attributes, (kh, kw), groups, bias = CASES[name]
    c_in = 6
    c_out = 12 if name == "depthwise-multiplier2" else (6 if groups == 6 else 8 if groups != 3 else 9)
    inits = {"w0": weights(6, 3, 3, 3, seed=1), "b0": weights(6, seed=2),
             "w1": weights(c_out, c_in // groups, kh, kw, seed=3)}
    inputs = "h, w1, b1" if bias else "h, w1"
    if bias:
        inits["b1"] = weights(c_out, seed=4)
    body = f"""
  c0 = Conv <pads=[1,1,1,1]> (x, w0, b0)
  h = Relu(c0)
  y = Conv <{attributes}> ({inputs})
""" if attributes else f"""
  c0 = Conv <pads=[1,1,1,1]> (x, w0, b0)
  h = Relu(c0)
  y = Conv ({inputs})
"""
    return op_model(body, ["N", 3, height, width], inits)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_conv(key, case, policy):
    keyed = assert_keyed_equals_plain(conv_model(case), key, KeyifyOptions(policy=policy))
    ops = [n.op_type for n in keyed.model.graph.node]
    if policy == "fresh":
        assert "Conv" not in ops  # every spatial layer became a gather and a dense reduction
        assert ops.count("Gather") == (1 if case == "1x1" else 2)  # a 1x1 stride-1 conv is pointwise
    else:
        # one gather, at the input: GatherElements along the codes (no row Gather, no transpose)
        assert ops.count("Conv") == 2 and ops.count("GatherElements") == 1 and ops.count("Gather") == 0


def test_conv_on_the_first_layer_with_normalisation_and_bgr(key):
    model = op_model("y = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w, b)", ["N", 3, 16, 12],
                     {"w": weights(5, 3, 3, 3), "b": weights(5)})
    for policy in POLICIES:
        options = KeyifyOptions(policy=policy, mean=(123.7, 116.3, 103.5), std=(58.4, 57.1, 57.4),
                                channel_order="bgr")
        batch = frames(3, 16, 12, 3, seed=5)
        # the plain model wants RGB; the measurement (and so the test frames) are BGR
        from tests.export.helpers import plain_input, relative_error, run_both

        _, got, keyed = run_both(model, key, options, batch)
        want = session(model, optimise=False).run(None, {"x": plain_input(batch[..., ::-1], options.mean, options.std)})
        from tests.export.helpers import restore

        out = restore(got[0], keyed.manifest.outputs[0], key) if policy == "fresh" else got[0]
        assert relative_error(out, want[0]) <= 1e-4
        if policy == "boundary":  # BGR to RGB is in the natural-order gather's table: no other gather, no transpose
            ops = [n.op_type for n in keyed.model.graph.node]
            assert ops.count("GatherElements") == 1 and "Gather" not in ops and "Transpose" not in ops


def test_high_bit_depth_measurements_are_scaled_to_255(key):
    from firmware_sim.spec import PRESETS
    from tests.export.helpers import plain_input, relative_error, restore, run_both

    model = op_model("y = Conv <pads=[1,1,1,1]> (x, w)", ["N", 3, 8, 8], {"w": weights(4, 3, 3, 3)})
    options = KeyifyOptions(spec=PRESETS["rgb12"], mean=(100.0,), std=(50.0,))
    batch = frames(2, 8, 8, 3, dtype=np.uint16, top=4095)
    _, got, keyed = run_both(model, key, options, batch)
    assert keyed.manifest.input.dtype == "uint16"
    want = session(model, optimise=False).run(None, {"x": plain_input(batch, (100.0,), (50.0,), 255.0 / 4095)})
    assert relative_error(restore(got[0], keyed.manifest.outputs[0], key), want[0]) <= 1e-4


def _deformconv_offsets(in_perm, out_perm, in_hw, out_hw, kernel, strides, pads, dilations):
    """DeformConv offsets that make it read what the keyed conv reads: integer, no interpolation."""
    (h, w), (ho, wo), (kh, kw) = in_hw, out_hw, kernel
    inv = np.empty_like(in_perm)
    inv[in_perm] = np.arange(in_perm.size)
    offsets = np.zeros((kh * kw, 2, ho, wo), np.float32)
    for q in range(ho * wo):
        qr, qc = divmod(q, wo)
        lr, lc = divmod(int(out_perm[q]), wo)  # logical output position held at physical q
        for i in range(kh):
            for j in range(kw):
                r = lr * strides[0] - pads[0] + i * dilations[0]
                c = lc * strides[1] - pads[1] + j * dilations[1]
                if 0 <= r < h and 0 <= c < w:
                    pr, pc = divmod(int(inv[r * w + c]), w)  # where that logical input sits physically
                else:
                    pr, pc = -1000, -1000  # far outside: bilinear sampling gives 0, like zero padding
                base_r = qr * strides[0] - pads[0] + i * dilations[0]
                base_c = qc * strides[1] - pads[1] + j * dilations[1]
                offsets[i * kw + j, 0, qr, qc] = pr - base_r
                offsets[i * kw + j, 1, qr, qc] = pc - base_c
    return offsets.reshape(1, kh * kw * 2, ho, wo)  # (KK, 2, Ho, Wo) -> (1, 2*KK, Ho, Wo)


def test_deformconv_oracle_agrees_with_the_keyed_conv(key):
    """onnxruntime's own DeformConv, fed integer offsets from the same layouts, gives the keyed conv's output."""
    h, w, kernel, strides, pads, dilations = 10, 7, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)
    weight, bias = weights(4, 3, 3, 3, seed=9), weights(4, seed=10)
    model = op_model("y = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w, b)", ["N", 3, h, w], {"w": weight, "b": bias})
    options = KeyifyOptions(policy="fresh")
    batch = frames(2, h, w, 3, seed=11)
    measurement = scramble(batch, key, options)
    from export.keyify import keyify

    keyed = keyify(model, key, options)
    got = session(keyed.model).run(None, {"measurement": measurement})[0]  # (N, 4, Ho, Wo), scrambled in L_out
    out_ref = keyed.manifest.outputs[0].layout
    ho, wo = out_ref.height, out_ref.width
    in_perm = layout_perm(LayoutRef(kind="sensor", height=h, width=w, epoch=0), key)
    offsets = _deformconv_offsets(in_perm, layout_perm(out_ref, key), (h, w), (ho, wo), kernel, strides, pads,
                                  dilations)
    node = helper.make_node("DeformConv", ["x", "w", "offset", "b"], ["y"], pads=list(pads), strides=list(strides),
                            kernel_shape=list(kernel))
    graph = helper.make_graph(
        [node], "oracle",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3, h, w]),
         helper.make_tensor_value_info("offset", onnx.TensorProto.FLOAT, [2, 18, ho, wo])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        [onnx.numpy_helper.from_array(weight, "w"), onnx.numpy_helper.from_array(bias, "b")],
    )
    oracle = session(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)]), optimise=False)
    physical = measurement.astype(np.float32).transpose(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W), still scrambled
    want = oracle.run(None, {"x": physical, "offset": np.repeat(offsets, 2, axis=0)})[0]
    assert np.max(np.abs(got - want)) <= 1e-4 * np.max(np.abs(want))


def test_a_wrong_key_gives_wrong_answers(key, other_key):
    from export.keyify import keyify

    model = conv_model("3x3-stride2-pad1")
    batch = frames(2, 9, 11, 3, seed=3)
    for policy in POLICIES:
        options = KeyifyOptions(policy=policy)
        keyed = keyify(model, key, options)
        right = session(keyed.model).run(None, {"measurement": scramble(batch, key, options)})[0]
        wrong = session(keyed.model).run(None, {"measurement": scramble(batch, other_key, options)})[0]
        assert np.max(np.abs(right - wrong)) > 0.1 * np.max(np.abs(right))
