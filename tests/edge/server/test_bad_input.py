"""Bad requests get the right 4xx and a message, and the server keeps serving: malformed JSON, wrong
datatypes and shapes, oversized and truncated bodies, unknown models, random bytes (a bounded fuzz)."""

from __future__ import annotations

import gzip
import json

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.wire.codec import HEADER_LENGTH, decode_response, encode_request
from tests.edge.servers import ThreadServer

INFER = "/v2/models/fmnist/infer"


def _good(count: int = 1) -> tuple[bytes, dict]:
    frames = np.zeros((count, 28, 28, 1), np.uint8)
    body, length = encode_request({"measurement": frames})
    return body, {HEADER_LENGTH: str(length)}


def _still_serving(url: str) -> None:
    body, headers = _good()
    answer = httpx.post(url + INFER, content=body, headers=headers)
    assert answer.status_code == 200
    assert decode_response(answer.content, answer.headers.get(HEADER_LENGTH)).outputs["logits"].shape == (1, 10)


def _json(inputs, **extra) -> bytes:
    return json.dumps({"inputs": inputs, **extra}).encode()


def _tensor(shape, datatype="UINT8", data=None) -> dict:
    count = int(np.prod(shape))
    return {"name": "measurement", "shape": shape, "datatype": datatype,
            "data": [0] * count if data is None else data}


BODY = 28 * 28
CASES = [
    # (what, body, headers, status, words in the message)
    ("not JSON", b"{nope", {}, 400, "not valid JSON"),
    ("JSON but a list", b"[1, 2]", {}, 400, "must be an object"),
    ("no inputs", b"{}", {}, 400, "'inputs' must be a non-empty list"),
    ("unknown input", _json([{**_tensor([1, 28, 28, 1]), "name": "pixels"}]), {}, 400, "no input 'pixels'"),
    ("wrong datatype", _json([_tensor([1, 28, 28, 1], "FP32")]), {}, 400, "input 'measurement' is UINT8"),
    ("unknown datatype", _json([_tensor([1, 28, 28, 1], "COMPLEX")]), {}, 400, "unknown datatype 'COMPLEX'"),
    ("strings", _json([_tensor([1], "BYTES", ["a"])]), {}, 400, "BYTES is not supported"),
    ("wrong shape", _json([_tensor([1, 28, 27, 1])]), {}, 400, "has shape [-1, 28, 28, 1]"),
    ("wrong rank", _json([_tensor([28, 28, 1])]), {}, 400, "has shape [-1, 28, 28, 1]"),
    ("empty batch", _json([_tensor([0, 28, 28, 1])]), {}, 400, "empty batch"),
    ("epoch as a string", _json([_tensor([1, 28, 28, 1])], parameters={"keycam_epoch": "0"}), {}, 400,
     "parameter keycam_epoch is '0' (str); send the key epoch as a whole number"),
    ("fingerprint as a number", _json([_tensor([1, 28, 28, 1])], parameters={"keycam_fingerprint": 7}), {}, 400,
     "parameter keycam_fingerprint is 7 (int)"),
    ("negative dimension", _json([_tensor([-1, 28, 28, 1], data=[])]), {}, 400, "negative dimension"),
    ("too few elements", _json([_tensor([1, 28, 28, 1], data=[0] * 5)]), {}, 400, "has 5 elements"),
    ("out of range", _json([_tensor([1, 28, 28, 1], data=[300] * BODY)]), {}, 400, "outside UINT8's range"),
    ("floats for integers", _json([_tensor([1, 28, 28, 1], data=[0.5] * BODY)]), {}, 400, "must hold integers"),
    ("ragged", _json([_tensor([1, 28, 28, 1], data=[[1], [2, 3]])]), {}, 400, "must hold integers"),
    ("unknown output", _json([_tensor([1, 28, 28, 1])], outputs=[{"name": "probs"}]), {}, 400, "no output 'probs'"),
    ("wrong key", _json([_tensor([1, 28, 28, 1])], parameters={"keycam_fingerprint": "kc1:0000000000000000"}),
     {}, 400, "is keyed for"),
    ("header length not a number", b"{}", {HEADER_LENGTH: "many"}, 400, "is not an integer"),
    ("header length past the end", b"{}", {HEADER_LENGTH: "99"}, 400, "the body has 2 bytes"),
    ("unknown encoding", b"{}", {"Content-Encoding": "br"}, 415, "not supported"),
    ("broken gzip", b"\x1f\x8b garbage", {"Content-Encoding": "gzip"}, 400, "cannot be decompressed"),
]


@pytest.fixture(scope="module")
def server(repository):
    folder, key = repository
    with ThreadServer(folder / "repo", max_body_bytes=64 * 1024) as running:
        yield running


@pytest.mark.parametrize("what, body, headers, status, words", CASES, ids=[c[0] for c in CASES])
def test_bad_requests_get_a_clear_4xx(server, what, body, headers, status, words):
    answer = httpx.post(server.url + INFER, content=body, headers=headers)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    _still_serving(server.url)


def test_binary_payloads_that_do_not_add_up(server):
    body, headers = _good()
    header = int(headers[HEADER_LENGTH])
    truncated = httpx.post(server.url + INFER, content=body[:-10], headers=headers)
    assert truncated.status_code == 400 and "10 bytes short" in truncated.json()["error"]
    trailing = httpx.post(server.url + INFER, content=body + b"xx", headers=headers)
    assert trailing.status_code == 400 and "2 bytes after" in trailing.json()["error"]
    wrong_size = body[:header].replace(b'"binary_data_size":784', b'"binary_data_size":783')
    lied = httpx.post(server.url + INFER, content=wrong_size + body[header:],
                      headers={HEADER_LENGTH: str(len(wrong_size))})
    assert lied.status_code == 400 and "needs 784" in lied.json()["error"]
    _still_serving(server.url)


def test_bodies_over_the_limit_are_refused_unread(server):
    body, headers = _good(count=100)  # 78 KB of pixels, over the 64 KiB limit
    answer = httpx.post(server.url + INFER, content=body, headers=headers)
    assert answer.status_code == 413 and "limit of 65536" in answer.json()["error"]
    chunked = httpx.post(server.url + INFER, content=iter([body[:40_000], body[40_000:]]), headers=headers)
    assert chunked.status_code == 413  # no Content-Length: counted while reading
    bomb = gzip.compress(b"{" + b" " * 10_000_000 + b"}")  # 10 MB of JSON in 10 KB
    answer = httpx.post(server.url + INFER, content=bomb, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413 and "decompressed" in answer.json()["error"]
    _still_serving(server.url)


def test_unknown_models_versions_and_paths(server):
    body, headers = _good()
    for path, status, words in [("/v2/models/nope/infer", 404, "unknown model 'nope'"),
                                ("/v2/models/fmnist/versions/3/infer", 404, "no version '3'"),
                                ("/v2/models/fmnist/versions/x/infer", 404, "no version 'x'")]:
        answer = httpx.post(server.url + path, content=body, headers=headers)
        assert answer.status_code == status and words in answer.json()["error"]
    answer = httpx.get(server.url + "/v2/models/fmnist/infer")
    assert answer.status_code == 405
    assert httpx.get(server.url + "/v3").status_code == 404
    _still_serving(server.url)


def test_replayed_request_ids_are_answered_once(server):
    frames = np.full((1, 28, 28, 1), 7, np.uint8)
    body, length = encode_request({"measurement": frames}, request_id="device-1:run:42")
    headers = {HEADER_LENGTH: str(length)}
    first = httpx.post(server.url + INFER, content=body, headers=headers)
    second = httpx.post(server.url + INFER, content=body, headers=headers)
    assert first.status_code == second.status_code == 200 and first.content == second.content
    metrics = httpx.get(server.url + "/metrics").text
    replayed = [line for line in metrics.splitlines() if line.startswith("keycam_server_replayed_requests_total")]
    assert replayed and float(replayed[0].split()[-1]) >= 1


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=2048),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                                   lambda inner: st.lists(inner, max_size=4)
                                   | st.dictionaries(st.sampled_from(["inputs", "outputs", "name", "shape",
                                                                      "datatype", "data", "parameters", "id",
                                                                      "binary_data_size"]), inner, max_size=5),
                                   max_leaves=20).map(lambda doc: json.dumps(doc).encode())),
       length=st.one_of(st.none(), st.integers(-5, 3000).map(str)))
def test_fuzz_never_breaks_the_server(server, body, length):
    headers = {HEADER_LENGTH: length} if length is not None else {}
    answer = httpx.post(server.url + INFER, content=body, headers=headers)
    assert answer.status_code in (200, 400, 413), answer.text
    if answer.status_code != 200:
        assert answer.json()["error"]


def test_the_server_still_serves_after_the_fuzz(server):
    _still_serving(server.url)
