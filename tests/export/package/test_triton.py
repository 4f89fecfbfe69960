"""`keycam export triton`: a repository Triton reads (its own ModelConfig protobuf parses the configuration),
with batching, instances and the keycam parameters, that `keycam serve` serves too."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from google.protobuf import text_format
from onnx import helper
from tritonclient.grpc import model_config_pb2

from edge.server.repository import ModelRepository
from export.errors import ModelError
from export.package.triton import TritonOptions, _quote, export_triton
from firmware_sim.manifest import Manifest
from tests.inprocess import keycam


def _parse(path: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(path.read_text(encoding="ascii"), model_config_pb2.ModelConfig())


def test_keyed_model_config_parses_with_tritons_protobuf(repository, tmp_path):
    folder, key = repository
    result = keycam("export", "triton", str(folder / "keyed.onnx"), "--name", "cam-1",
                    "--repository", str(tmp_path / "repo"), "--max-batch-size", "16", "--instances", "2",
                    "--max-queue-delay-us", "500")
    assert result.returncode == 0, result.stderr
    config = _parse(tmp_path / "repo" / "cam-1" / "config.pbtxt")
    assert config.name == "cam-1" and config.platform == "onnxruntime_onnx" and config.backend == "onnxruntime"
    assert config.max_batch_size == 16
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("measurement", model_config_pb2.TYPE_UINT8, [28, 28, 1])]  # the batch dimension is Triton's
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("logits", model_config_pb2.TYPE_FP32, [10])]
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.parameters["keycam_fingerprint"].string_value == key.fingerprint
    manifest = Manifest.from_json(config.parameters["keycam_manifest"].string_value)
    assert manifest.key_fingerprint == key.fingerprint and manifest.input.shape[1:] == [28, 28, 1]
    copied = onnx.load(str(tmp_path / "repo" / "cam-1" / "1" / "model.onnx"))
    assert copied.SerializeToString() == onnx.load(str(folder / "keyed.onnx")).SerializeToString()


def test_versions_are_added_and_never_overwritten_silently(repository, tmp_path):
    folder, _ = repository
    repo = tmp_path / "repo"
    assert export_triton(folder / "keyed.onnx", repo, "m") == repo / "m" / "1"
    assert export_triton(folder / "keyed.onnx", repo, "m") == repo / "m" / "2"
    with pytest.raises(ModelError, match="exists; choose another --version or pass --force"):
        export_triton(folder / "keyed.onnx", repo, "m", TritonOptions(version=2))
    assert export_triton(folder / "split.task.onnx", repo, "m", TritonOptions(version=2, force=True)).name == "2"
    served = ModelRepository(repo)
    assert served.versions("m") == ["1", "2"] and served.get("m").manifest.role == "task"


def test_fixed_batch_models_get_max_batch_size_zero(tmp_path):
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [2, "n"])])
    onnx.save(helper.make_model(graph), tmp_path / "plain.onnx")
    export_triton(tmp_path / "plain.onnx", tmp_path / "repo", "plain")
    config = _parse(tmp_path / "repo" / "plain" / "config.pbtxt")
    assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
    assert list(config.input[0].dims) == [2, 3] and list(config.output[0].dims) == [2, -1]
    assert "keycam_fingerprint" not in config.parameters


def test_string_literals_survive_the_protobuf_parser():
    text = 'quote " backslash \\ newline \n tab \t unicode é 漢'
    config = text_format.Parse(f"name: {_quote(text)}", model_config_pb2.ModelConfig())
    assert config.name == text


@pytest.mark.parametrize("name, words", [("../up", "not valid"), ("", "not valid"), ("a/b", "not valid")])
def test_bad_names_and_files(repository, tmp_path, name, words):
    folder, _ = repository
    with pytest.raises(ModelError, match=words):
        export_triton(folder / "keyed.onnx", tmp_path / "repo", name)


def test_missing_and_broken_models(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        export_triton(tmp_path / "none.onnx", tmp_path / "repo", "m")
    (tmp_path / "bad.onnx").write_bytes(np.arange(100, dtype=np.uint8).tobytes())
    with pytest.raises(ModelError, match="is not an ONNX model"):
        export_triton(tmp_path / "bad.onnx", tmp_path / "repo", "m")
    result = keycam("export", "triton", str(tmp_path / "none.onnx"), "--name", "m",
                    "--repository", str(tmp_path / "repo"))
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and "does not exist" in result.stderr


def _fixed_batch(path: Path, batch: int = 1) -> Path:
    graph = helper.make_graph([helper.make_node("Relu", ["images"], ["y"])], "g",
                              [helper.make_tensor_value_info("images", onnx.TensorProto.FLOAT, [batch, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [batch, 3, 4, 4])])
    onnx.save(helper.make_model(graph), path)
    return path


def test_a_batch_size_a_fixed_batch_model_cannot_take_is_refused(tmp_path):
    plain = _fixed_batch(tmp_path / "fixed.onnx")
    done = keycam("export", "triton", str(plain), "--name", "m", "--repository", str(tmp_path / "repo"),
                  "--max-batch-size", "8")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "a fixed batch of 1 ('images' is (1, 3, 4, 4))" in done.stderr and "--max-batch-size 0" in done.stderr
    assert not (tmp_path / "repo").exists()
    with pytest.raises(ModelError, match="fixed batch of 4"):
        export_triton(_fixed_batch(tmp_path / "four.onnx", 4), tmp_path / "repo", "m", TritonOptions(max_batch_size=4))
    for asked in ([], ["--max-batch-size", "0"]):  # left out: 0 for this model, and 0 asked for
        done = keycam("export", "triton", str(plain), "--name", "m", "--repository", str(tmp_path / "repo"), *asked)
        assert done.returncode == 0, done.stderr
    config = _parse(tmp_path / "repo" / "m" / "config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [1, 3, 4, 4]


def test_a_dynamic_batch_gets_eight_by_default_and_what_is_asked(repository, tmp_path):
    folder, _ = repository
    export_triton(folder / "keyed.onnx", tmp_path / "repo", "a")
    assert _parse(tmp_path / "repo" / "a" / "config.pbtxt").max_batch_size == 8
    export_triton(folder / "keyed.onnx", tmp_path / "repo", "b", TritonOptions(max_batch_size=0))
    config = _parse(tmp_path / "repo" / "b" / "config.pbtxt")
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [-1, 28, 28, 1]


@pytest.mark.parametrize("flag, value", [("--max-batch-size", 2**31), ("--instances", 2**31),
                                         ("--max-queue-delay-us", 2**64), ("--version", 2**63)])
def test_numbers_past_what_tritons_configuration_holds_are_refused(repository, tmp_path, flag, value):
    folder, _ = repository
    done = keycam("export", "triton", str(folder / "keyed.onnx"), "--name", "m", "--repository",
                  str(tmp_path / "repo"), flag, str(value))
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{flag} {value} is out of range" in done.stderr and not (tmp_path / "repo").exists()
    highest = {"--max-queue-delay-us": 2**64 - 1, "--version": 2**63 - 1}.get(flag, 2**31 - 1)
    if flag != "--instances":  # a config with 2**31-1 instances parses; it is not worth starting
        done = keycam("export", "triton", str(folder / "keyed.onnx"), "--name", "m", "--repository",
                      str(tmp_path / "repo"), flag, str(highest))
        assert done.returncode == 0, done.stderr
        _parse(tmp_path / "repo" / "m" / "config.pbtxt")  # Triton's own parser takes it
