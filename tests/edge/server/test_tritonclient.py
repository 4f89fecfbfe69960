"""The official Triton HTTP client against `keycam serve`: health, metadata, configuration and inference
(binary tensors, its default, and JSON), whose answers equal running the same model locally."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from edge.runtime import KeyedModel
from tests.edge.servers import ThreadServer


def _client(server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.url.removeprefix("http://"))


def _frames(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, 28, 28, 1), dtype=np.uint8)


def test_health_and_metadata(served, repository):
    folder, key = repository
    client = _client(served)
    assert client.is_server_live() and client.is_server_ready()
    server = client.get_server_metadata()
    assert server["name"] == "keycam" and "binary_tensor_data" in server["extensions"]
    assert client.is_model_ready("fmnist") and client.is_model_ready("fmnist", "1")
    assert not client.is_model_ready("missing")
    metadata = client.get_model_metadata("fmnist")
    assert metadata["versions"] == ["1"] and metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [{"name": "measurement", "datatype": "UINT8", "shape": [-1, 28, 28, 1]}]
    assert metadata["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]
    assert metadata["parameters"]["keycam_fingerprint"] == key.fingerprint
    assert metadata["parameters"]["keycam_role"] == "full"
    task = client.get_model_metadata("fmnist_task")
    assert task["parameters"]["keycam_role"] == "task" and task["inputs"][0]["datatype"] == "FP32"
    config = client.get_model_config("fmnist")
    assert config["parameters"]["keycam_fingerprint"]["string_value"] == key.fingerprint
    with pytest.raises(InferenceServerException, match="unknown model 'missing'"):
        client.get_model_metadata("missing")
    with pytest.raises(InferenceServerException, match="no version '7'"):
        client.get_model_metadata("fmnist", "7")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_inference_equals_the_local_model(served, repository, binary):
    folder, key = repository
    local = KeyedModel(folder / "keyed.onnx", key)
    client = _client(served)
    frames = _frames(5, seed=int(binary))
    tensor = triton.InferInput("measurement", list(frames.shape), "UINT8")
    tensor.set_data_from_numpy(frames, binary_data=binary)
    wanted = [triton.InferRequestedOutput("logits", binary_data=binary)]
    result = client.infer("fmnist", [tensor], outputs=wanted, request_id=f"frame-{binary}")
    answer = result.as_numpy("logits")
    expected = local.run(frames)[0]
    np.testing.assert_array_equal(answer, expected)  # same model, same runtime: the same bits
    assert result.get_response()["id"] == f"frame-{binary}"
    assert result.get_response()["model_version"] == "1"
    # no outputs named: the client asks for every output in binary
    answer = client.infer("fmnist", [tensor], model_version="1").as_numpy("logits")
    np.testing.assert_array_equal(answer, expected)


def test_split_task_model_on_the_server_equals_the_local_split(served, repository):
    folder, key = repository
    feature, task = KeyedModel(folder / "split.feature.onnx", key), KeyedModel(folder / "split.task.onnx", key)
    frames = _frames(3, seed=4)
    features = feature.run(frames)[0]
    tensor = triton.InferInput(task.input.name, list(features.shape), "FP32")
    tensor.set_data_from_numpy(features)
    answer = _client(served).infer("fmnist_task", [tensor]).as_numpy(task.output_names[0])
    np.testing.assert_array_equal(answer, task.run(features)[0])
    np.testing.assert_allclose(answer, KeyedModel(folder / "keyed.onnx", key).run(frames)[0], rtol=1e-4, atol=1e-4)


def test_compressed_requests_and_bearer_tokens(repository):
    folder, key = repository
    frames = _frames(2, seed=9)
    expected = KeyedModel(folder / "keyed.onnx", key).run(frames)[0]
    with ThreadServer(folder / "repo", token="s3cret-token") as server:
        tensor = triton.InferInput("measurement", list(frames.shape), "UINT8")
        tensor.set_data_from_numpy(frames)
        anonymous = _client(server)
        assert anonymous.is_server_live()  # health stays open for probes
        with pytest.raises(InferenceServerException, match="bearer token") as caught:
            anonymous.infer("fmnist", [tensor])
        assert caught.value.status() == "401"
        headers = {"Authorization": "Bearer wrong"}
        with pytest.raises(InferenceServerException, match="bearer token"):
            anonymous.get_model_metadata("fmnist", headers=headers)
        headers = {"Authorization": "Bearer s3cret-token"}
        for algorithm in ("gzip", "deflate"):
            result = anonymous.infer("fmnist", [tensor], headers=headers, request_compression_algorithm=algorithm)
            np.testing.assert_array_equal(result.as_numpy("logits"), expected)


def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(repository):
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from edge.wire.codec import HEADER_LENGTH, decode_response, encode_request

    folder, key = repository
    local = KeyedModel(folder / "keyed.onnx", key)
    frames = _frames(96, seed=11)
    expected = local.run(frames)[0]

    def ask(index: int) -> np.ndarray:
        batch = frames[index:index + 1] if index % 3 else frames[index:index + 2]  # some requests carry two frames
        body, length = encode_request({"measurement": batch}, request_id=f"r{index}")
        answer = httpx.post(server.url + "/v2/models/fmnist/infer", content=body, headers={HEADER_LENGTH: str(length)})
        assert answer.status_code == 200, answer.text
        return decode_response(answer.content, answer.headers[HEADER_LENGTH]).outputs["logits"]

    with ThreadServer(folder / "repo", max_batch=8) as server, ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(ask, range(94)))
        metrics = httpx.get(server.url + "/metrics").text
    for index, answer in enumerate(answers):
        rows = 1 if index % 3 else 2
        np.testing.assert_allclose(answer, expected[index:index + rows], rtol=1e-5, atol=1e-5)
        assert (answer.argmax(axis=1) == expected[index:index + rows].argmax(axis=1)).all()
    count = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith("keycam_server_batch_requests_count")))
    total = float(next(line.split()[-1] for line in metrics.splitlines()
                       if line.startswith("keycam_server_batch_requests_sum")))
    assert total == 94 and count < total  # fewer model runs than requests: some ran together
