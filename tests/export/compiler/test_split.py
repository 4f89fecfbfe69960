"""Split: a feature model on the device and a task model anywhere; task(feature(x)) == keyed(x) == plain(x)."""

from __future__ import annotations

import onnx
import pytest

from edge.restore import restore_output
from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20, unet
from tests.export.helpers import frames, plain_input, relative_error, scramble, session


def _relu_outputs(model: onnx.ModelProto) -> list[str]:
    return [n.output[0] for n in model.graph.node if n.op_type == "Relu"]


def _with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.append(onnx.ValueInfoProto(name=name))
    return copy


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
@pytest.mark.parametrize("which", [2, 8, 14])  # block outputs: nothing before them is needed later
def test_split_resnet20(key, policy, which):
    plain = resnet20()
    tensor = _relu_outputs(plain)[which]
    options = KeyifyOptions(policy=policy, mean=CIFAR_MEAN, std=CIFAR_STD, split_after=tensor)
    keyed = keyify(plain, key, options)
    batch = frames(3, 32, 32, 3, seed=which)
    measured = scramble(batch, key, options)
    full = session(keyed.model).run(None, {"measurement": measured})[0]
    features = session(keyed.feature).run(None, {"measurement": measured})[0]
    task = session(keyed.task).run(None, {"features": features})[0]
    assert relative_error(task, full) <= 1e-5
    want, middle = session(_with_output(plain, tensor), optimise=False).run(
        None, {"input": plain_input(batch, CIFAR_MEAN, CIFAR_STD)})
    assert relative_error(full, want) <= 1e-4
    # the features leave the device scrambled: only a key holder puts them back in order
    spec = keyed.feature_manifest.outputs[0]
    assert spec.kind == "dense" and spec.layout.kind == "layer"
    n, c, h, w = middle.shape
    natural = middle.reshape(n, c, h * w).transpose(0, 2, 1)  # (N, C, H, W) -> (N, HW, C)
    assert features.shape == natural.shape
    assert relative_error(restore_output(features, spec, key), natural) <= 1e-4
    assert relative_error(features, natural) > 0.1
    # the layers that reveal the sensor layout stay in the feature model
    task_inits = {i.name for i in keyed.task.graph.initializer}
    assert keyed.manifest.sensor_tables and not task_inits & set(keyed.manifest.sensor_tables)
    assert keyed.task_manifest.role == "task" and keyed.feature_manifest.role == "feature"


def test_split_across_a_skip_connection_is_refused(key):
    plain = unet()
    bottleneck = _relu_outputs(plain)[5]  # U-Net skips from the encoder cross this point
    with pytest.raises(UnsupportedModel, match="choose a later split"):
        keyify(plain, key, KeyifyOptions(split_after=bottleneck))


def test_split_after_a_node_name_and_after_pooling(key):
    plain = resnet20()
    node = next(n for n in plain.graph.node if n.op_type == "GlobalAveragePool")
    keyed = keyify(plain, key, KeyifyOptions(policy="fresh", split_after=node.name))
    assert keyed.feature_manifest.outputs[0].kind == "plain"  # a pooled vector has no positions to hide
    batch = frames(2, 32, 32, 3)
    measured = scramble(batch, key, KeyifyOptions())
    full = session(keyed.model).run(None, {"measurement": measured})[0]
    task = session(keyed.task).run(None, {"features": session(keyed.feature).run(None, {"measurement": measured})[0]})
    assert relative_error(task[0], full) <= 1e-5


def test_unknown_split_point(key):
    with pytest.raises(UnsupportedModel, match="no node or tensor"):
        keyify(resnet20(), key, KeyifyOptions(split_after="nope"))


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_every_model_of_a_split_is_valid_onnx(key, policy):
    """Nodes in topological order (ONNX requires it; onnxruntime alone would not notice), one model each."""
    plain = resnet20()
    keyed = keyify(plain, key, KeyifyOptions(policy=policy, split_after=_relu_outputs(plain)[8]))
    for model in (keyed.model, keyed.feature, keyed.task):
        onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in keyed.feature.graph.input] == ["measurement"]
    assert [o.name for o in keyed.feature.graph.output] == [i.name for i in keyed.task.graph.input] == ["features"]
