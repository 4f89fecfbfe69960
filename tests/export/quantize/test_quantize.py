"""export.quantize on keyed models: the manifest records it, key epochs still work, splits quantise both
halves, ``fresh`` quantises (close to the plain int8 model, not equal), and what cannot be quantised is
refused in one line."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge.default import ASSET, MEAN, SPEC, STD
from edge.lab.datasets import fashion_mnist
from edge.runtime import KeyedModel
from export.errors import ModelError
from export.keyify import KeyifyOptions
from export.quantize import quantize_file
from export.zoo import resnet20
from export.zoo.networks import CIFAR_MEAN, CIFAR_STD
from tests.export.quantize.helpers import compile_model, int8_pair, run_keyed

OPTIONS = KeyifyOptions(spec=SPEC, mean=MEAN, std=STD)


@pytest.fixture(scope="module")
def pictures():
    train, _ = fashion_mnist("train")
    test, _ = fashion_mnist("t10k")
    return list(train[:100]), list(test[:500])


def _initializers(path) -> dict[str, np.ndarray]:
    return {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}


def test_the_int8_model_records_its_quantisation_and_keeps_its_sensor_tables(tmp_path, key, pictures):
    model = compile_model(tmp_path, onnx.load(ASSET), key, OPTIONS)
    frames = model.sensor_frames(pictures[0])
    out = tmp_path / "keyed.int8.onnx"
    result = quantize_file(model.keyed, model.measure(frames), out, calibration="100 Fashion-MNIST frames",
                           plain=model.plain)
    # the recipes first: a model is never on disk without the sidecar it names (a full disk stops before it)
    assert [p.name for p in result.written] == ["keyed.int8.epochs.npz", "keyed.int8.onnx", "keyed.int8.manifest.json"]
    assert result.notes == {"full": "first layer: the plain model's own; natural order by one GatherElements"}
    loaded = KeyedModel(out, key)
    q = loaded.manifest.quantization
    assert (q.format, q.weights, q.activations, q.method) == ("QDQ", "int8, per channel, symmetric",
                                                              "uint8, per tensor, asymmetric", "MinMax")
    assert q.calibration == "100 Fashion-MNIST frames" and q.tool.startswith("onnxruntime ")
    assert json.loads((tmp_path / "keyed.int8.manifest.json").read_text()) == json.loads(loaded.manifest.to_json())
    # nothing else changed but the digests of the int8 model and of its own recipes
    unstamped = {"quantization": None, "model_sha256": None, "epochs_sha256": None}
    assert loaded.manifest.model_copy(update=unstamped) == model.manifest.model_copy(update=unstamped)
    ops = {n.op_type for n in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    tables = model.manifest.sensor_tables
    int8, float32 = _initializers(out), _initializers(model.keyed)
    # the same tables, as the compiler shaped them for its GatherElements: (1, HW·C), expanded at run time
    assert tables and all(int8[t].shape == (1, 28 * 28) and np.array_equal(int8[t], float32[t]) for t in tables)
    with np.load(tmp_path / "keyed.int8.epochs.npz") as rebuilt, np.load(tmp_path / "keyed.epochs.npz") as recipes:
        assert sorted(rebuilt) == sorted(recipes) == [f"t{i}" for i in range(len(tables))]
        for i, name in enumerate(tables):
            assert rebuilt[f"t{i}"].shape == int8[name].shape
            assert np.array_equal(rebuilt[f"t{i}"], recipes[f"t{i}"])  # the recipe itself
    assert out.stat().st_size < 0.5 * model.keyed.stat().st_size  # int8 weights


def _fixed_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model as an exporter with a fixed batch of 1 writes it (YOLOv8n's export, for instance)."""
    dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_value = 1
    return model


@pytest.mark.parametrize("batch", [None, 1])
def test_an_int8_model_rebuilt_for_another_epoch_equals_one_quantised_after_compiling_for_it(tmp_path, key,
                                                                                              pictures, batch):
    calibration, test = pictures
    (tmp_path / "e0").mkdir()
    (tmp_path / "e5").mkdir()
    plain = onnx.load(ASSET) if batch is None else _fixed_batch(onnx.load(ASSET))
    at0 = compile_model(tmp_path / "e0", plain, key, OPTIONS)
    at5 = compile_model(tmp_path / "e5", plain, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, epoch=5))
    assert at0.manifest.input.shape[0] == batch
    for model in (at0, at5):
        measured = model.measure(model.sensor_frames(calibration))
        quantize_file(model.keyed, measured, model.keyed.with_suffix(".int8.onnx"), calibration="frames",
                      plain=model.plain)
    (table,) = at0.manifest.sensor_tables
    assert _initializers(tmp_path / "e0" / "keyed.int8.onnx")[table].shape == (1, 784)  # one channel
    assert at0.manifest.table_groups == {}  # one code a position: its entries are positions
    frames = at0.sensor_frames(test)
    step = batch or 50
    rotated = run_keyed(tmp_path / "e0" / "keyed.int8.onnx", at0, at0.measure(frames, 5), batch=step, epoch=5)
    compiled = run_keyed(tmp_path / "e5" / "keyed.int8.onnx", at5, at5.measure(frames, 5), batch=step)
    assert np.array_equal(rotated, compiled)
    stale = run_keyed(tmp_path / "e0" / "keyed.int8.onnx", at0, at0.measure(frames, 5), batch=step)  # epoch-0 tables
    assert np.mean(stale.argmax(1) == compiled.argmax(1)) < 0.5


def test_a_fixed_batch_colour_model_keeps_its_table_at_batch_by_codes_and_rotates(tmp_path, key):
    rng = np.random.default_rng(2)
    (tmp_path / "e0").mkdir()
    (tmp_path / "e3").mkdir()
    options = dict(mean=CIFAR_MEAN, std=CIFAR_STD)
    at0 = compile_model(tmp_path / "e0", _fixed_batch(resnet20()), key, KeyifyOptions(**options))
    at3 = compile_model(tmp_path / "e3", _fixed_batch(resnet20()), key, KeyifyOptions(**options, epoch=3))
    frames = rng.integers(0, 256, (12, 32, 32, 3), np.uint8)
    for model in (at0, at3):
        quantize_file(model.keyed, model.measure(frames[:8]), model.keyed.with_suffix(".int8.onnx"),
                      calibration="noise", plain=model.plain)
    (table,) = at0.manifest.sensor_tables
    assert _initializers(tmp_path / "e0" / "keyed.int8.onnx")[table].shape == (1, 3 * 1024)
    assert KeyedModel(tmp_path / "e0" / "keyed.int8.onnx", key).manifest.table_groups == {table: 3}
    rotated = run_keyed(tmp_path / "e0" / "keyed.int8.onnx", at0, at0.measure(frames, 3), batch=1, epoch=3)
    compiled = run_keyed(tmp_path / "e3" / "keyed.int8.onnx", at3, at3.measure(frames, 3), batch=1)
    assert np.array_equal(rotated, compiled)


def test_a_split_model_quantises_both_halves_and_they_compose_to_the_full_int8_model(tmp_path, key, pictures):
    calibration, test = pictures
    options = KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, split_after="/6/Relu")
    model = compile_model(tmp_path, onnx.load(ASSET), key, options)
    out = tmp_path / "cam.int8.onnx"
    result = quantize_file(model.keyed, model.measure(model.sensor_frames(calibration)), out, calibration="frames",
                           plain=model.plain)
    assert set(result.manifests) == {"full", "feature", "task"}
    assert {p.name for p in result.written} >= {"cam.int8.feature.onnx", "cam.int8.task.onnx",
                                                 "cam.int8.feature.epochs.npz"}
    measured = model.measure(model.sensor_frames(test))
    feature = KeyedModel(tmp_path / "cam.int8.feature.onnx", key)
    task = KeyedModel(tmp_path / "cam.int8.task.onnx", key)
    assert feature.manifest.quantization and task.manifest.quantization
    assert feature.manifest.sensor_tables == model.manifest.sensor_tables and not task.manifest.sensor_tables
    composed = task.run(feature.run(measured)[0])[0]
    assert np.array_equal(composed, run_keyed(out, model, measured))


def test_fresh_quantises_close_to_the_plain_int8_model_but_not_bit_for_bit(tmp_path, key, pictures):
    """Under fresh the convolutions are gathers and matrix products and the pools float reductions of -inf
    padded tokens (left in float: no uint8 grid holds -inf): the same function, other operators."""
    calibration, test = pictures
    model = compile_model(tmp_path, onnx.load(ASSET), key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD,
                                                                         policy="fresh"))
    plain8, keyed8 = int8_pair(model, model.sensor_frames(calibration), model.sensor_frames(test))
    assert np.all(np.isfinite(keyed8))
    assert np.mean(plain8.argmax(1) == keyed8.argmax(1)) >= 0.99
    assert np.max(np.abs(plain8 - keyed8)) < 0.05 * np.max(np.abs(plain8))


def test_fresh_residual_network_quantises_with_every_first_layer_table_kept(tmp_path, key):
    rng = np.random.default_rng(1)
    model = compile_model(tmp_path, resnet20(), key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD, policy="fresh"))
    frames = rng.integers(0, 256, (24, 32, 32, 3), np.uint8)
    plain8, keyed8 = int8_pair(model, frames[:16], frames)
    assert np.mean(plain8.argmax(1) == keyed8.argmax(1)) >= 0.9
    tables = model.manifest.sensor_tables
    assert tables and all(np.array_equal(_initializers(tmp_path / "keyed.int8.onnx")[t].ravel(),
                                         _initializers(model.keyed)[t].ravel()) for t in tables)


def test_refusals_are_one_line(tmp_path, key, pictures):
    model = compile_model(tmp_path, onnx.load(ASSET), key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD,
                                                                         split_after="/6/Relu"))
    measured = model.measure(model.sensor_frames(pictures[0][:8]))
    cases = [
        (dict(keyed=tmp_path / "keyed.task.onnx"), "is a task model"),
        (dict(measurements=measured.astype(np.uint16)), "the model reads (N, 28, 28, 1) uint8"),
        (dict(measurements=measured[:, :20]), "the model reads (N, 28, 28, 1) uint8"),
        (dict(measurements=measured[:0]), "holds no frames"),
        (dict(output=tmp_path / "keyed.int8.bin"), "should end in .onnx"),
        (dict(plain=tmp_path / "other.onnx"), "is not the one this keyed model was compiled from"),
        (dict(keyed=tmp_path / "missing.onnx"), "does not exist"),
    ]
    other = onnx.load(ASSET)
    other.doc_string = "another model"  # another digest
    onnx.save(other, tmp_path / "other.onnx")
    for change, message in cases:
        call = dict(keyed=model.keyed, measurements=measured, output=tmp_path / "o.onnx", plain=None) | change
        with pytest.raises(ModelError) as caught:
            quantize_file(call["keyed"], call["measurements"], call["output"], calibration="x", plain=call["plain"])
        assert message in str(caught.value) and "\n" not in str(caught.value), (change, str(caught.value))
    quantize_file(model.keyed, measured, tmp_path / "q.onnx", calibration="x")
    with pytest.raises(ModelError, match="is quantised already"):
        quantize_file(tmp_path / "q.onnx", measured, tmp_path / "qq.onnx", calibration="x")
    assert not (tmp_path / "o.onnx").exists() and not (tmp_path / "qq.onnx").exists()
