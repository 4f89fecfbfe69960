"""What a hostile client leaves in the server's log: every refused request in one line (401s and unmatched
404/405 paths included), control characters from the request escaped, and a model that fails on valid input
logged in one line (no traceback) while the client gets a generic message, never onnxruntime's words."""

from __future__ import annotations

import logging
import shutil
import socket
import time

import httpx
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from edge.wire.codec import HEADER_LENGTH, encode_request
from tests.edge.servers import ThreadServer

INFER = "/v2/models/fmnist/infer"


def _records(caplog, count: int) -> list[logging.LogRecord]:
    """The server's log records, once there are ``count`` of them (the server thread logs after answering)."""
    deadline = time.monotonic() + 60  # hang protection only
    while len(mine := [r for r in caplog.records if r.name.startswith("edge.server")]) < count:
        assert time.monotonic() < deadline, f"logged {[r.getMessage() for r in mine]}, expected {count} lines"
        time.sleep(0.01)
    return mine


def _raw(port: int, request: bytes) -> bytes:
    """One request sent byte for byte (httpx would quote the control characters of a path)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    return answer


@pytest.fixture(scope="module")
def guarded(repository):
    folder, _ = repository
    with ThreadServer(folder / "repo", token="s3cret-token") as server:
        yield server


def test_401s_and_unmatched_paths_are_logged_in_one_line_each(guarded, caplog):
    caplog.set_level(logging.INFO)
    bearer = {"Authorization": "Bearer s3cret-token"}
    assert httpx.get(guarded.url + "/v2/models/fmnist").status_code == 401
    assert httpx.get(guarded.url + "/v2/models/fmnist", headers={"Authorization": "Bearer guess"}).status_code == 401
    assert httpx.get(guarded.url + "/v3/nothing/here", headers=bearer).status_code == 404
    assert httpx.get(guarded.url + INFER, headers=bearer).status_code == 405
    lines = [r.getMessage() for r in _records(caplog, 4)]
    assert len(lines) == 4 and all("\n" not in line for line in lines), lines
    assert "GET /v2/models/fmnist" in lines[0] and ": 401 missing or wrong bearer token" in lines[0]
    assert ": 401 " in lines[1] and "guess" not in lines[1]  # a wrong token is never written down
    assert "GET /v3/nothing/here" in lines[2] and ": 404 " in lines[2]
    assert f"GET {INFER}" in lines[3] and ": 405 " in lines[3]
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in _records(caplog, 4))
    assert not any("s3cret-token" in r.getMessage() for r in caplog.records)


def test_control_characters_from_a_request_reach_the_log_escaped(guarded, caplog):
    caplog.set_level(logging.INFO)
    for path in (b"/v2/models/%1b[2J%1b]0;pwned%07%00x", b"/v3/%1b[2J%1b]0;pwned%07%00x"):  # a model, no route
        answer = _raw(guarded.port, b"GET " + path + b" HTTP/1.1\r\nHost: h\r\n"
                                    b"Authorization: Bearer s3cret-token\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 404 "), answer[:100]
    lines = [r.getMessage() for r in _records(caplog, 2)]
    for line in lines:
        assert not any(ord(c) < 32 or ord(c) == 127 for c in line), repr(line)
        assert "\\x1b[2J\\x1b]0;pwned\\x07\\x00x" in line  # shown, escaped: readable, never acted on


def _failing_model(path) -> None:
    """A model that takes any batch of 4 numbers, then reshapes to exactly one row: valid input of 2 rows fails
    inside onnxruntime (its message names the Reshape node and both shapes)."""
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [1, 4])
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"], name="the_reshape")], "failing",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True)
    onnx.save(model, str(path))


def test_a_model_failing_on_valid_input_logs_one_line_and_answers_a_generic_500(repository, tmp_path, caplog):
    folder, _ = repository
    repo = shutil.copytree(folder / "repo", tmp_path / "repo")
    _failing_model(repo / "failing" / "1" / "model.onnx")
    caplog.set_level(logging.INFO)
    with ThreadServer(repo) as server:
        body, length = encode_request({"x": np.ones((2, 4), np.float32)})
        answer = httpx.post(server.url + "/v2/models/failing/infer", content=body, headers={HEADER_LENGTH: str(length)})
        assert answer.status_code == 500
        error = answer.json()["error"]
        assert "internal error" in error and "log" in error
        assert "Reshape" not in answer.text and "onnxruntime" not in answer.text.lower()
        assert "the_reshape" not in answer.text
        (record,) = _records(caplog, 1)
        message = record.getMessage()
        assert record.levelno == logging.ERROR and not record.exc_info and "\n" not in message
        assert "POST /v2/models/failing/infer failed" in message and "the_reshape" in message
        one, length = encode_request({"x": np.ones((1, 4), np.float32)})  # it still serves what the model can run
        assert httpx.post(server.url + "/v2/models/failing/infer", content=one,
                          headers={HEADER_LENGTH: str(length)}).status_code == 200
    assert "Traceback" not in caplog.text
