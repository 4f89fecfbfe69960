"""Shapes and the batch: a fixed batch is kept (never probed at a batch the model cannot run) and recorded; shape
arithmetic that does not change with the batch is folded; a model onnxruntime cannot run is one line naming the node."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge.runtime import KeyedModel
from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.prepare.graph import prepare
from firmware_sim.errors import ModelError
from tests.export.helpers import assert_keyed_equals_plain, frames, op_model, scramble, weights

POLICIES = ["fresh", "boundary"]


def _hard_coded(batch: int) -> onnx.ModelProto:
    """As ultralytics writes its head: Reshape to (B, C, -1), then to (B, 2, C/2, HW) with B hard-coded; at any other
    batch the second Reshape throws inside onnxruntime."""
    body = """  a = Conv <pads=[1,1,1,1], strides=[2,2]> (x, w0)
  r = Reshape(a, flat)
  s = Reshape(r, split)
  t = Softmax <axis=1> (s)
  y = Reshape(t, back)
"""
    inits = {"w0": weights(4, 3, 3, 3), "flat": np.array([batch, 4, -1], np.int64),
             "split": np.array([batch, 2, 2, 20], np.int64), "back": np.array([batch, 4, 20], np.int64)}
    return op_model(body, [batch, 3, 10, 8], inits)


@pytest.mark.parametrize("batch", [1, 2])
def test_a_fixed_batch_is_kept_and_only_probed_at_that_batch(batch):
    graph = prepare(_hard_coded(batch))
    assert graph.batch == batch
    assert graph.shapes["x"] == (None, 3, 10, 8) and graph.shapes["s"] == (None, 2, 2, 20)
    assert graph.model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == batch


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("batch", [1, 2])
def test_a_fixed_batch_model_compiles_to_a_keyed_model_of_that_batch(key, tmp_path, policy, batch):
    keyed = assert_keyed_equals_plain(_hard_coded(batch), key, KeyifyOptions(policy=policy))
    assert keyed.manifest.batch == batch and keyed.manifest.input.shape == [batch, 10, 8, 3]
    assert keyed.manifest.outputs[0].shape == [batch, 4, 20]
    dims = keyed.model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [batch, 10, 8, 3]
    # the device's runtime takes the manifest's shape: that batch, and one frame as a batch of one
    path = tmp_path / "keyed.onnx"
    save(keyed, path)
    model = KeyedModel(path, key)
    measured = scramble(frames(batch, 10, 8, 3), key, KeyifyOptions())
    assert model.run(measured)[0].shape == (batch, 4, 20)
    if batch == 1:
        assert model.run(measured[0])[0].shape == (1, 4, 20)
    with pytest.raises(ModelError, match=rf"takes input of shape \({batch}, 10, 8, 3\), got \({batch + 1}, 10, 8, 3\)"):
        model.run(scramble(frames(batch + 1, 10, 8, 3), key, KeyifyOptions()))


def test_a_dynamic_batch_is_still_dynamic(key):
    keyed = keyify(op_model("  y = Conv <pads=[1,1,1,1]> (x, w0)\n", ["N", 3, 6, 5], {"w0": weights(2, 3, 3, 3)}),
                   key, KeyifyOptions(policy="fresh"))
    assert keyed.manifest.batch is None and keyed.manifest.input.shape[0] is None
    assert "batch" not in keyed.manifest.to_json()  # manifests of dynamic models are written as before


@pytest.mark.parametrize("policy", POLICIES)
def test_shape_arithmetic_that_does_not_change_with_the_batch_is_folded(key, policy):
    """An anchor row computed from Shape at run time (a dynamic export's grid: Range over the width) becomes a
    constant; a value built from the batch size (a Range over the batch) stays computed."""
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0)
  s = Shape(a)
  w = Gather <axis=0> (s, three)
  f = Cast <to=1> (w)
  g = Range(zero, f, one)
  n = Gather <axis=0> (s, batch_axis)
  m = Cast <to=1> (n)
  k = Range(zero, m, one)
  v = Reshape(k, gate)
  h = Mul(a, v)
  y = Add(h, g)
"""
    inits = {"w0": weights(4, 3, 3, 3), "three": np.array(3, np.int64), "zero": np.array(0.0, np.float32),
             "one": np.array(1.0, np.float32), "batch_axis": np.array(0, np.int64),
             "gate": np.array([-1, 1, 1, 1], np.int64)}
    plain = op_model(body, ["N", 3, 6, 5], inits)
    graph = prepare(plain)
    ranges = [n for n in graph.nodes if n.op_type == "Range"]
    assert [n.output[0] for n in ranges] == ["k"]  # the grid g is a constant now; k depends on the batch
    assert graph.constants["g"].tolist() == [0, 1, 2, 3, 4]
    assert_keyed_equals_plain(plain, key, KeyifyOptions(policy=policy), count=3)


def test_a_model_onnxruntime_cannot_run_is_one_line_naming_the_node():
    """A reshape that only fails when it runs (its target computed from the batch): onnxruntime's message, one line."""
    body = """  a = Conv (x, w0)
  s = Shape(a)
  n = Gather <axis=0> (s, batch_axis)
  u = Unsqueeze(n, axes)
  t = Concat <axis=0> (u, seven)
  k = Cast <to=1> (t)
  c = Cast <to=7> (k)
  y = Reshape(a, c)
"""
    for batch, stage in (("N", "run"), (1, "load")):  # a fixed batch: onnxruntime sees it when it loads the model
        plain = op_model(body, [batch, 3, 6, 5], {"w0": weights(4, 3, 1, 1), "batch_axis": np.array(0, np.int64),
                                                  "axes": np.array([0], np.int64), "seven": np.array([7, -1], np.int64)})
        plain.graph.node[-1].name = "head/Reshape"
        with pytest.raises(UnsupportedModel) as caught:
            prepare(plain)
        message = str(caught.value)
        assert "\n" not in message
        want = "run the plain model at batch 1" if stage == "run" else "load the plain model"
        assert message.startswith(f"node 'head/Reshape' ({stage}): onnxruntime cannot {want}:"), message


def test_a_dynamic_size_names_the_size_the_metadata_gives():
    plain = op_model("  y = Relu(x)\n", ["N", 3, "H", "W"])
    onnx.helper.set_model_props(plain, {"imgsz": "[320, 320]"})
    with pytest.raises(UnsupportedModel, match=r"pass --size HxW \(its metadata says imgsz \[320, 320\]\)"):
        prepare(plain)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_fixed_batch_model_splits_with_its_batch(key, policy):
    from tests.export.helpers import session

    keyed = keyify(_hard_coded(1), key, KeyifyOptions(policy=policy, split_after="a"))
    assert keyed.feature_manifest.outputs[0].shape[0] == 1 and keyed.task_manifest.batch == 1
    measured = scramble(frames(1, 10, 8, 3), key, KeyifyOptions())
    (features,) = session(keyed.feature).run(None, {"measurement": measured})
    (chained,) = session(keyed.task).run(None, {"features": features})
    (whole,) = session(keyed.model).run(None, {"measurement": measured})
    assert np.allclose(chained, whole, atol=1e-6)
