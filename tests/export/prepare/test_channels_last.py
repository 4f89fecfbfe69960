"""Channels-last (N, H, W, C) inputs, as TensorFlow's exporters write them (export/prepare/channels_last.py): the input
becomes NCHW, a Transpose to NCHW becomes an Identity, an element-wise prefix (Keras Rescaling, Normalization)
moves behind it with its constants transposed, other readers get the channels-last tensor back."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from export.prepare.channels_last import to_channels_first
from firmware_sim.spec import PRESETS
from firmware_sim.words import PREFIX_BINARY, PREFIX_UNARY
from tests.export.helpers import TOLERANCE, frames, op_model, relative_error, restore, scramble, session, weights

POLICIES = ["fresh", "boundary"]
NHWC = ["N", 8, 6, 3]
HEAD = """  c = Conv <pads=[1,1,1,1], strides=[2,2]> (t, w0, b0)
  r = Relu(c)
  f = Flatten(r)
  y = Gemm(f, fc, fb)
"""


def _inits(**more) -> dict:
    inits = {"w0": weights(4, 3, 3, 3, seed=1, scale=0.2), "b0": weights(4, seed=2, scale=0.1),
             "fc": weights(4 * 4 * 3, 5, seed=3, scale=0.1), "fb": weights(5, seed=4, scale=0.1)}
    inits.update(more)
    return inits


def check_nhwc(plain: onnx.ModelProto, key, options: KeyifyOptions, count: int = 3):
    """keyed(scramble(x)) against the channels-last plain model on x itself."""
    keyed = keyify(plain, key, options)
    assert keyed.stats["plain_input_layout"] == "nhwc"
    dims = [d.dim_value for d in plain.graph.input[0].type.tensor_type.shape.dim]
    batch = frames(count, dims[1], dims[2], dims[3])
    x = batch.astype(np.float32)
    if options.mean is not None:
        x = (x - np.asarray(options.mean, np.float32)) / np.asarray(options.std, np.float32)
    want = session(plain, optimise=False).run(None, {plain.graph.input[0].name: x})
    got = session(keyed.model).run(None, {"measurement": scramble(batch, key, options)})
    for spec, w, g in zip(keyed.manifest.outputs, want, got):
        g = restore(g, spec, key)
        assert g.shape == w.shape
        assert relative_error(g, w) <= TOLERANCE, (spec.name, relative_error(g, w))
    return keyed


@pytest.mark.parametrize("policy", POLICIES)
def test_channels_last_input_then_transpose(key, policy):
    body = "  t = Transpose <perm=[0,3,1,2]> (x)\n" + HEAD
    options = KeyifyOptions(policy=policy, mean=(120.0, 110.0, 100.0), std=(60.0, 50.0, 70.0))
    keyed = check_nhwc(op_model(body, NHWC, _inits()), key, options)
    if policy == "fresh":
        assert not {"Conv", "Transpose"} & {n.op_type for n in keyed.model.graph.node}  # folded, keyed, no transposes


PREFIXES = {
    "rescaling": ("  m = Mul(x, s)\n  p = Add(m, o)\n", dict(s=np.array(1 / 127.5, np.float32),
                                                          o=np.array(-1.0, np.float32))),
    "normalization": ("  d = Sub(x, mean)\n  p = Mul(d, inv)\n",
                      dict(mean=np.array([[[[120.0, 110.0, 100.0]]]], np.float32),  # (1, 1, 1, 3)
                           inv=np.array([1 / 60, 1 / 55, 1 / 58], np.float32))),  # (3,)
    "constant-first": ("  d = Sub(off, x)\n  p = Div(d, scale)\n",
                       dict(off=np.array([128.0, 127.0, 126.0], np.float32),
                            scale=np.array([[[[64.0, 65.0, 66.0]]]], np.float32))),
    "per-position": ("  p = Mul(x, gain)\n", dict(gain=np.random.default_rng(5).uniform(0.5, 1.5, (8, 6, 3))
                                                    .astype(np.float32) / 100)),  # (H, W, C): varies over positions
    "clip": ("  m = Mul(x, s)\n  p = Clip(m, lo, hi)\n", dict(s=np.array(0.01, np.float32),
                                                           lo=np.array(0.2, np.float32), hi=np.array(2.0, np.float32))),
}


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("prefix", sorted(PREFIXES))
def test_element_wise_prefix_moves_behind_the_transpose(key, policy, prefix):
    text, constants = PREFIXES[prefix]
    body = text + "  t = Transpose <perm=[0,3,1,2]> (p)\n" + HEAD
    plain = op_model(body, NHWC, _inits(**constants))
    check_nhwc(plain, key, KeyifyOptions(policy=policy))
    moved = onnx.ModelProto()
    moved.CopyFrom(plain)
    to_channels_first(moved)
    ops = [n.op_type for n in moved.graph.node]
    assert "Transpose" not in ops and ops.count("Identity") == 1  # the prefix runs on NCHW tensors


@pytest.mark.parametrize("policy", POLICIES)
def test_channels_last_tensor_read_as_such(key, policy):
    """A Keras Flatten straight on the (rescaled) image, next to a conv branch: the reshape reads T(x')."""
    body = """  m = Mul(x, s)
  t = Transpose <perm=[0,3,1,2]> (m)
  c = Conv <pads=[1,1,1,1], strides=[2,2]> (t, w0, b0)
  f = Flatten(c)
  y = Gemm(f, fc, fb)
  g = Reshape(m, shape)
  z = Gemm(g, fc2, fb)
"""
    inits = _inits(s=np.array(0.01, np.float32), shape=np.array([-1, 8 * 6 * 3], np.int64),
                   fc2=weights(8 * 6 * 3, 5, seed=6, scale=0.1))
    plain = op_model(body, NHWC, inits, outputs="y,z")
    check_nhwc(plain, key, KeyifyOptions(policy=policy))
    moved = onnx.ModelProto()
    moved.CopyFrom(plain)
    to_channels_first(moved)
    back = [n for n in moved.graph.node if n.op_type == "Transpose"]
    assert len(back) == 1 and back[0].output[0] == "m"  # put back once, for the Reshape


@pytest.mark.parametrize("policy", POLICIES)
def test_channels_last_output(key, policy):
    """The input itself, rescaled, is an output: it leaves channels-last, scrambled under fresh."""
    body = "  y = Mul(x, s)\n"
    keyed = check_nhwc(op_model(body, NHWC, {"s": np.array(0.5, np.float32)}), key, KeyifyOptions(policy=policy))
    if policy == "fresh":
        assert keyed.manifest.outputs[0].form == "channels-last"


@pytest.mark.parametrize("policy", POLICIES)
def test_grey_channels_last_input(key, policy):
    """A Keras MNIST-style (N, 28, 28, 1) input with Rescaling in front of the Transpose."""
    body = "  m = Mul(x, s)\n  t = Transpose <perm=[0,3,1,2]> (m)\n  c = Conv <strides=[2,2]> (t, w)\n" \
           "  g = GlobalAveragePool(c)\n  y = Flatten(g)\n"
    plain = op_model(body, ["N", 28, 28, 1], {"s": np.array(1 / 255, np.float32), "w": weights(4, 1, 3, 3, seed=1)})
    check_nhwc(plain, key, KeyifyOptions(policy=policy, spec=PRESETS["gray8"]))


def test_ambiguous_3xWx3_input(key):
    """(N, 3, 8, 3) is NHWC when every reader is a Transpose to NCHW, NCHW otherwise."""
    nhwc = op_model("  t = Transpose <perm=[0,3,1,2]> (x)\n  y = Conv <pads=[1,1,1,1]> (t, w)\n", ["N", 3, 8, 3],
                    {"w": weights(2, 3, 3, 3, seed=1)})
    check_nhwc(nhwc, key, KeyifyOptions())
    nchw = op_model("  y = Conv <pads=[1,1,1,1]> (x, w)\n", ["N", 3, 8, 3], {"w": weights(2, 3, 3, 3, seed=1)})
    assert keyify(nchw, key, KeyifyOptions()).stats["plain_input_layout"] == "nchw"


@pytest.mark.parametrize("policy", POLICIES)
def test_channel_reduction_of_the_channels_last_image(key, policy):
    """ReduceMax over the channels before the Transpose (onnxruntime's folding moves the Transpose above it)."""
    body = "  r = ReduceMax <axes=[3], keepdims=1> (x)\n  t = Transpose <perm=[0,3,1,2]> (r)\n" \
           "  y = Conv <pads=[1,1,1,1]> (t, w)\n"
    check_nhwc(op_model(body, NHWC, {"w": weights(2, 1, 3, 3, seed=1)}, opset=13), key, KeyifyOptions(policy=policy))


def test_channels_last_reader_that_is_not_supported_is_refused(key):
    """A reshape that mixes rows with columns and channels: boundary runs it, fresh names the node and the op."""
    body = "  r = Reshape(x, shape)\n  y = Softmax <axis=-1> (r)\n"
    plain = op_model(body, NHWC, {"shape": np.array([-1, 8, 18], np.int64)})
    check_nhwc(plain, key, KeyifyOptions(policy="boundary"))
    with pytest.raises(UnsupportedModel, match=r"node 'r' \(Reshape\): reshape of a channels-last 8x6x3 map"):
        keyify(plain, key, KeyifyOptions(policy="fresh"))


def test_channels_last_map_meeting_a_constant_is_refused(key):
    """Under fresh a channels-last Transpose of a map is an output form, not an operand: refused, not a crash."""
    body = "  c = Conv <pads=[1,1,1,1]> (x, w)\n  t = Transpose <perm=[0,2,3,1]> (c)\n  y = Mul(t, s)\n"
    plain = op_model(body, ["N", 3, 8, 6], {"w": weights(2, 3, 3, 3, seed=1), "s": np.ones(2, np.float32)})
    with pytest.raises(UnsupportedModel, match=r"node 'y' \(Mul\): operands 't' \(ChannelsLast\)"):
        keyify(plain, key, KeyifyOptions(policy="fresh"))


def _moved_and_same(body: str, constants: dict, positive: bool = False) -> None:
    """``body`` (reading x, writing p) in front of the Transpose to NCHW: after the rewrite it runs on NCHW tensors
    (no Transpose is put back) and computes what it computed before, bit for bit."""
    plain = op_model(body + "  y = Transpose <perm=[0,3,1,2]> (p)\n", [2, 4, 5, 3], constants)
    moved = onnx.ModelProto()
    moved.CopyFrom(plain)
    name = to_channels_first(moved)
    assert [n.op_type for n in moved.graph.node].count("Transpose") == 0, [n.op_type for n in moved.graph.node]
    x = np.random.default_rng(7).uniform(-3, 3, (2, 4, 5, 3)).astype(np.float32)
    x = np.abs(x) + np.float32(0.5) if positive else x
    (want,) = session(plain, optimise=False).run(None, {"x": x})
    (got,) = session(moved, optimise=False).run(None, {name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))})
    assert got.dtype == want.dtype and np.array_equal(got, want)


@pytest.mark.parametrize("op", PREFIX_UNARY)
def test_every_unary_operator_of_the_prefix_family_moves_exactly(op):
    """firmware_sim.words.PREFIX_UNARY: each one moves behind the Transpose and computes the same values."""
    if op == "Clip":
        _moved_and_same("  p = Clip(x, lo, hi)\n", {"lo": np.array(-1.0, np.float32), "hi": np.array(2.0, np.float32)})
    else:
        _moved_and_same(f"  p = {op}(x)\n", {}, positive=op in ("Sqrt", "Log"))


@pytest.mark.parametrize("op", PREFIX_BINARY)
@pytest.mark.parametrize("constant", ["channel", "position", "first"])
def test_every_binary_operator_of_the_prefix_family_moves_exactly(op, constant):
    """firmware_sim.words.PREFIX_BINARY, with a per-channel or a per-position constant, on either side."""
    shape = {"channel": (3,), "position": (4, 5, 3), "first": (1, 1, 1, 3)}[constant]
    c = np.random.default_rng(8).uniform(0.5, 2.0, shape).astype(np.float32)
    body = f"  p = {op}(c, x)\n" if constant == "first" else f"  p = {op}(x, c)\n"
    _moved_and_same(body, {"c": c})
