"""A hostile-server suite: a fake Open Inference Protocol server on 127.0.0.1 that lies in every way a broken or
hostile server can (issue 26, items 5, 6, 11 and 12), in front of a real keyed model run by onnxruntime.

- Model metadata that is HTML, a JSON list, lacks a field, has the wrong types or is too large: the device refuses
  the server at start in one line, never a traceback.
- Answers of the wrong shape, rank, datatype or row count, without an output, over their bound, compressed
  unasked, not the protocol: refused; every frame stays in the spool and the alarm is raised until the server
  answers truly, then every frame is delivered, in order, once.
- NaN and infinity in an answer: written as strict JSON.
- Statuses: 408, 425, 429 and 5xx are retried; 401, 403, 404, 405 and redirects keep every frame and raise the
  alarm; only 400, 413 and 422 from a server whose model has not changed drop a frame, counted as refused; from a
  server whose model changed (its key epoch, its datatype) nothing is dropped.
- A server that cannot open seals (Triton) is refused at start for a sealed spec's measurements.
"""

from __future__ import annotations

import copy
import gzip
import http.server
import json
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from edge.errors import AnswerError, KeycamError
from edge.frame import Frame, Result
from edge.server.repository import ModelRepository
from edge.sinks.forward import ForwardSink
from edge.sinks.results import ResultsSink
from edge.wire.client import V2Client, connect
from edge.wire.codec import HEADER_LENGTH, InferResponse, decode_request, encode_response
from edge.wire.spool import Spool


class Liar:
    """A fake v2 server on 127.0.0.1 (``http.server`` in a thread) for one real model (``ServedModel``): its
    genuine metadata, configuration and answers, except where ``metadata`` (a function of the genuine document:
    (status, content type, body bytes)) or ``answer`` (a function of the genuine outputs and the request number:
    (status, headers, body bytes or an iterator of chunks)) lie. ``triton``: the metadata carries no parameters,
    the manifest is only in the configuration, as Triton shows a `keycam export triton` repository."""

    def __init__(self, model, versions: list[str], triton: bool = False) -> None:
        self.model, self.versions, self.triton = model, versions, triton
        self.metadata = self.answer = self.config = None  # config: like metadata, for the configuration
        self.requests = 0  # inference requests received
        self.sent = 0  # bytes of answer bodies written
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.server.liar = self
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def honest(self) -> None:
        self.metadata = self.answer = self.config = None

    def genuine_metadata(self) -> dict:
        document = self.model.metadata(self.versions)
        if self.triton:
            document.pop("parameters", None)
        return document

    def __enter__(self) -> Liar:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        liar = self.server.liar
        if self.path.endswith("/config"):
            document = liar.model.config()
            if liar.config is None:
                self._send(200, {"Content-Type": "application/json"}, json.dumps(document).encode())
            else:
                status, kind, body = liar.config(copy.deepcopy(document))
                self._send(status, {"Content-Type": kind}, body)
            return
        document = liar.genuine_metadata()
        if liar.metadata is None:
            self._send(200, {"Content-Type": "application/json"}, json.dumps(document).encode())
        else:
            status, kind, body = liar.metadata(copy.deepcopy(document))
            self._send(status, {"Content-Type": kind}, body)

    def do_POST(self) -> None:
        liar = self.server.liar
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = decode_request(body, self.headers.get(HEADER_LENGTH))
        outputs = liar.model.run(request.inputs)
        liar.requests += 1
        if liar.answer is None:
            status, headers, content = _encoded(outputs, request.id)
        else:
            status, headers, content = liar.answer(outputs, liar.requests)
        self._send(status, headers, content)

    def _send(self, status: int, headers: dict, content) -> None:
        liar = self.server.liar
        self.close_connection = True
        try:
            self.send_response(status)
            for name, value in {"Connection": "close", **headers}.items():
                self.send_header(name, value)
            if isinstance(content, bytes):
                if "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)
                liar.sent += len(content)
                return
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for chunk in content:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                liar.sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the device hung up on the lie: what it should do


def _encoded(outputs: dict, request_id=None, status: int = 200) -> tuple[int, dict, bytes]:
    content, length = encode_response(InferResponse("fmnist", "1", outputs, request_id), dict.fromkeys(outputs, True))
    return status, {HEADER_LENGTH: str(length), "Content-Type": "application/octet-stream"}, content


def _lie(change):
    """An answer: the genuine outputs changed by ``change`` (outputs -> outputs), well encoded."""
    return lambda outputs, _: _encoded(change(outputs))


def _status(status: int, first: int | None = None, extra: dict | None = None):
    """An answer: ``status`` with an error document, for the first ``first`` requests (all: None), then the truth."""
    def answer(outputs, number):
        if first is not None and number > first:
            return _encoded(outputs)
        return status, {"Content-Type": "application/json", **(extra or {})}, json.dumps({"error": "no"}).encode()
    return answer


def _document(change):
    """Metadata: the genuine document changed by ``change`` (document -> JSON value), as JSON."""
    return lambda document: (200, "application/json", json.dumps(change(document)).encode())


@pytest.fixture(scope="module")
def model(repository):
    folder, _ = repository
    served = ModelRepository(folder / "repo")
    return served.get("fmnist"), served.versions("fmnist")


@pytest.fixture
def liar(model):
    with Liar(*model) as server:
        yield server


def _frame_result(sequence: int, key) -> Result:
    image = np.full((28, 28, 1), (37 * sequence) % 256, np.uint8)
    return Result(Frame(image, sequence, 1000 * sequence, f"f{sequence}", measured=True, epoch=0,
                        fingerprint=key.fingerprint))


def _wait(condition, seconds=60.0):
    deadline = time.monotonic() + seconds  # hang protection only
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _lines(path: Path) -> list[dict]:
    def strict(constant):
        raise ValueError(f"{constant} is not JSON")
    return [json.loads(line, parse_constant=strict) for line in path.read_text().splitlines()] if path.exists() else []


def _sink(liar, key, tmp_path) -> ForwardSink:
    remote = connect(V2Client(liar.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    return ForwardSink(V2Client(liar.url, timeout_s=10), remote, ResultsSink(tmp_path / "out.jsonl"),
                       Spool(tmp_path / "spool"), retry_min_s=0.02, retry_max_s=0.1, drain_s=60)


def _delivered_in_order(sink: ForwardSink, tmp_path: Path, count: int) -> None:
    _wait(lambda: sink.stats.answered == count)
    sink.close()
    results = _lines(tmp_path / "out.jsonl")
    assert [r["sequence"] for r in results] == list(range(count)) and not any("error" in r for r in results)
    assert sink.alarm == "" and sink.stats.rejected == 0 and sink.stats.dropped == 0


# -- metadata that lies: refused at start, in one line ---------------------------------------------------------------

METADATA_LIES = [
    ("HTML", lambda d: (200, "text/html", b"<html><body>It works!</body></html>"), "the answer is not JSON"),
    ("a JSON list", _document(lambda d: [d]), "the model metadata is a JSON list, not an object"),
    ("no inputs[0].name", _document(lambda d: {**d, "inputs": [{k: v for k, v in d["inputs"][0].items()
                                                                 if k != "name"}]}), "a tensor needs a non-empty 'name'"),
    ("no inputs", _document(lambda d: {k: v for k, v in d.items() if k != "inputs"}), "lists no list of inputs"),
    ("two inputs", _document(lambda d: {**d, "inputs": d["inputs"] * 2}), "lists 2 inputs; a keyed model takes one"),
    ("no outputs", _document(lambda d: {**d, "outputs": []}), "lists no outputs"),
    ("an output of strings", _document(lambda d: {**d, "outputs": [{**d["outputs"][0], "datatype": "BYTES"}]}),
     "a 'datatype' of the protocol"),
    ("a shape of words", _document(lambda d: {**d, "inputs": [{**d["inputs"][0], "shape": ["a", 28]}]}),
     "a 'shape' of integers"),
    ("another output", _document(lambda d: {**d, "outputs": [{**d["outputs"][0], "name": "other"}]}),
     "which its keycam manifest lists"),
    ("versions of objects", _document(lambda d: {**d, "versions": [{"v": 1}]}), "not names"),
    ("a damaged manifest", _document(lambda d: {**d, "parameters": {**d["parameters"], "keycam_manifest": "{"}}),
     "manifest"),
    ("nested too deeply", lambda d: (200, "application/json", b"[" * 200_000), "the answer is not JSON"),
    ("over its bound", lambda d: (200, "application/json", b" " * (17 << 20)), "over the 16777216 bytes"),
    ("a 401", lambda d: (401, "application/json", b'{"error": "who are you"}'), "HTTP 401: who are you"),
    ("a redirect", lambda d: (302, "text/html", b""), "redirects are not followed"),
]


@pytest.mark.parametrize("lie, words", [c[1:] for c in METADATA_LIES], ids=[c[0] for c in METADATA_LIES])
def test_metadata_that_lies_is_refused_at_start_in_one_line(liar, repository, tmp_path, lie, words):
    _, key = repository
    liar.metadata = lie
    with pytest.raises(KeycamError) as refused:
        connect(V2Client(liar.url), "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=0)
    message = str(refused.value)
    assert words in message and "\n" not in message and len(message) < 1000, message
    assert not (tmp_path / "spool" / "server.json").exists()  # nothing of a lying server is kept


CONFIG_LIES = [
    ("HTML", lambda d: (200, "text/html", b"<html>Triton</html>"), "carries no keycam manifest"),
    ("a JSON list", _document(lambda d: [d]), "carries no keycam manifest"),
    ("a manifest of numbers", _document(lambda d: {**d, "parameters": {"keycam_manifest": {"string_value": 7}}}),
     "carries no keycam manifest"),
    ("a damaged manifest", _document(lambda d: {**d, "parameters": {"keycam_manifest": {"string_value": "[]"}}}),
     "manifest"),
    ("a 500", lambda d: (500, "application/json", b'{"error": "\\u0000down"}'), "HTTP 500: \\x00down"),  # retried
]


@pytest.mark.parametrize("lie, words", [c[1:] for c in CONFIG_LIES], ids=[c[0] for c in CONFIG_LIES])
def test_a_triton_configuration_that_lies_is_refused_at_start_in_one_line(model, repository, tmp_path, lie, words):
    _, key = repository
    with Liar(*model, triton=True) as triton:  # the manifest only in the configuration, as Triton shows it
        triton.config = lie
        with pytest.raises(KeycamError) as refused:
            connect(V2Client(triton.url), "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=0)
        message = str(refused.value)
        assert words in message and "\n" not in message and "\x00" not in message, message
        triton.honest()  # the same server, telling the truth: the manifest from its configuration
        assert connect(V2Client(triton.url), "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=0).name == "fmnist"


def test_keycam_run_against_an_html_server_ends_in_one_line(liar, repository, tmp_path):
    from tests.inprocess import keycam

    folder, _ = repository
    liar.metadata = METADATA_LIES[0][1]
    config = tmp_path / "keycam.toml"
    config.write_text(f'[source]\nkind = "fashion-mnist"\n[model]\nkey = "{folder / "device.key"}"\n'
                      f'[results]\npath = "{tmp_path / "out.jsonl"}"\n'
                      f'[forward]\nurl = "{liar.url}"\nmodel = "fmnist"\nspool = "{tmp_path / "spool"}"\n'
                      f'connect_s = 0\n')
    done = keycam("run", "--config", str(config), timeout=120)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "the answer is not JSON" in done.stderr, done.stderr


# -- answers that lie: refused, every frame kept, the alarm raised, then delivered -----------------------------------

def _chunks(total: int, size: int = 1 << 20):
    for _ in range(total // size):
        yield b"\0" * size


ANSWER_LIES = [
    ("shape [0, 10]", _lie(lambda o: {"logits": np.zeros((0, 10), np.float32)}), "has shape [0, 10] for 1 row"),
    ("no output", _lie(lambda o: {"other": o["logits"]}), "the answer has no output 'logits'"),
    ("rank 1", _lie(lambda o: {"logits": o["logits"][0]}), "has shape [10] for 1 row"),
    ("INT64", _lie(lambda o: {"logits": o["logits"].astype(np.int64)}), "output 'logits' is INT64"),
    ("BOOL", _lie(lambda o: {"logits": o["logits"] > 0}), "output 'logits' is BOOL"),
    ("FP16", _lie(lambda o: {"logits": o["logits"].astype(np.float16)}), "output 'logits' is FP16"),
    ("two rows for one", _lie(lambda o: {"logits": np.repeat(o["logits"], 2, axis=0)}), "has shape [2, 10]"),
    ("200 MB streamed", lambda o, n: (200, {"Content-Type": "application/octet-stream"}, _chunks(200 << 20)),
     "refused unread"),
    ("200 MB declared", lambda o, n: (200, {"Content-Length": str(200 << 20)}, b"{}"), "declares 209715200 bytes"),
    ("gzip unasked", lambda o, n: (lambda s, h, b: (s, {**h, "Content-Encoding": "gzip"}, gzip.compress(b)))(
        *_encoded(o)), "the answer is encoded 'gzip'"),
    ("HTML", lambda o, n: (200, {"Content-Type": "text/html"}, b"<html>ok</html>"), "unreadable answer"),
    ("an error with 200", lambda o, n: (200, {}, b'{"error": "\\u001b[31mboom"}'), "unreadable answer"),
    ("nested too deeply", lambda o, n: (200, {}, b"[" * 200_000), "unreadable answer"),
    ("a header past the body", lambda o, n: (200, {HEADER_LENGTH: "999999"}, b"{}"), "unreadable answer"),
    ("a 401", _status(401), "HTTP 401"),
    ("a 403", _status(403), "HTTP 403"),
    ("a 404", _status(404), "HTTP 404"),
    ("a 405", _status(405), "HTTP 405"),
    ("a redirect", _status(307, extra={"Location": "http://127.0.0.1:1/"}), "redirects are not followed"),
]


@pytest.mark.parametrize("lie, words", [c[1:] for c in ANSWER_LIES], ids=[c[0] for c in ANSWER_LIES])
def test_an_answer_that_lies_keeps_every_frame_and_raises_the_alarm(liar, repository, tmp_path, lie, words):
    _, key = repository
    sink = _sink(liar, key, tmp_path)
    liar.answer = lie
    for sequence in range(3):
        sink.write(_frame_result(sequence, key))
    _wait(lambda: words in sink.alarm and sink.pending == 3)
    assert "\n" not in sink.alarm and "\x1b" not in sink.alarm
    assert sink.stats.answered == sink.stats.rejected == sink.stats.dropped == 0 and sink.stats.misconfigured >= 1
    assert _lines(tmp_path / "out.jsonl") == [] and "SERVER MISCONFIGURED" in sink.summary()
    liar.honest()
    _delivered_in_order(sink, tmp_path, 3)


def test_an_answer_over_its_bound_is_refused_before_the_device_holds_it(liar, repository, tmp_path):
    _, key = repository
    remote = connect(V2Client(liar.url), "fmnist", "", key.fingerprint, tmp_path / "spool")
    limit = remote.answer_limit(1)
    liar.answer = ANSWER_LIES[7][1]  # 200 MB, streamed without a length
    from edge.wire.codec import encode_request

    body, length = encode_request({remote.input_name: np.zeros((1, 28, 28, 1), np.uint8)})
    client = V2Client(liar.url, timeout_s=30)
    tracemalloc.start()
    try:
        with pytest.raises(AnswerError, match=f"over the {limit} bytes"):
            client.infer(remote, body, length, 1)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        client.close()
    assert limit < 2 << 20 and peak < 8 * limit  # the device held a few times the bound (3.6 MB measured), not 200 MB
    assert liar.sent < 100 << 20  # and hung up long before the end


def test_nan_and_infinity_in_an_answer_are_written_as_strict_json(liar, repository, tmp_path):
    _, key = repository
    sink = _sink(liar, key, tmp_path)
    values = [np.nan, np.inf, -np.inf]
    liar.answer = lambda outputs, number: _encoded({"logits": np.full((1, 10), values[(number - 1) % 3], np.float32)})
    for sequence in range(3):
        sink.write(_frame_result(sequence, key))
    sink.close()
    text = (tmp_path / "out.jsonl").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert [r["sequence"] for r in _lines(tmp_path / "out.jsonl")] == [0, 1, 2]  # strict JSON, every frame


# -- statuses: only what can never succeed is dropped -----------------------------------------------------------------

@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_statuses_that_may_pass_later_are_retried_and_nothing_is_dropped(liar, repository, tmp_path, status):
    _, key = repository
    sink = _sink(liar, key, tmp_path)
    liar.answer = _status(status, first=4)
    for sequence in range(3):
        sink.write(_frame_result(sequence, key))
    _delivered_in_order(sink, tmp_path, 3)
    assert sink.stats.failures >= 1 and liar.requests >= 3 + 4


@pytest.mark.parametrize("status", [400, 413, 422])
def test_only_requests_that_can_never_succeed_are_dropped_and_counted(liar, repository, tmp_path, status):
    _, key = repository
    sink = _sink(liar, key, tmp_path)
    liar.answer = _status(status, first=2)
    for sequence in range(3):
        sink.write(_frame_result(sequence, key))
    _wait(lambda: sink.stats.answered + sink.stats.rejected == 3)
    sink.close()
    results = _lines(tmp_path / "out.jsonl")
    assert [r["sequence"] for r in results] == [0, 1, 2]
    assert [f"HTTP {status}" in r.get("error", "") for r in results] == [True, True, False]
    assert sink.stats.rejected == 2 and sink.stats.answered == 1 and sink.alarm == ""
    assert "2 refused (dropped for good" in sink.summary()


def _changed_manifest(change):
    def metadata(document):
        manifest = json.loads(document["parameters"]["keycam_manifest"])
        change(manifest, document)
        document["parameters"]["keycam_manifest"] = json.dumps(manifest)
        return 200, "application/json", json.dumps(document).encode()
    return metadata


def _epoch(manifest, document) -> None:
    manifest["epoch"] = 1


def _datatype(manifest, document) -> None:
    manifest["spec"]["input_bits"] = manifest["spec"]["output_bits"] = 12  # raw12: UINT16 codes, the same shape
    document["inputs"][0]["datatype"] = "UINT16"


@pytest.mark.parametrize("change, words", [(_epoch, "key epoch 1"), (_datatype, "readout spec")],
                         ids=["epoch", "datatype"])
def test_a_400_from_a_server_whose_model_changed_keeps_every_frame(liar, repository, tmp_path, change, words):
    _, key = repository
    sink = _sink(liar, key, tmp_path)
    liar.metadata, liar.answer = _changed_manifest(change), _status(400)
    for sequence in range(3):
        sink.write(_frame_result(sequence, key))
    _wait(lambda: words in sink.alarm and sink.pending == 3)
    assert sink.stats.rejected == 0 and _lines(tmp_path / "out.jsonl") == []
    liar.honest()
    _delivered_in_order(sink, tmp_path, 3)


# -- a server that cannot open seals ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sealed(repository, tmp_path_factory):
    """The Fashion-MNIST model keyed under the sealed gray8 readout, whole and split, in a Triton repository
    (`fmnist`: the full model, `fmnist_task`: the split's task model)."""
    from edge.default import ASSET, MEAN, STD
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from export.package.triton import export_triton
    from firmware_sim.spec import PRESETS
    from tests.edge.servers import SPLIT_AFTER

    _, key = repository
    folder = tmp_path_factory.mktemp("sealed")
    spec = PRESETS["gray8-sealed"]
    save(keyify(ASSET, key, KeyifyOptions(spec=spec, mean=MEAN, std=STD)), folder / "keyed.onnx")
    save(keyify(ASSET, key, KeyifyOptions(spec=spec, mean=MEAN, std=STD, split_after=SPLIT_AFTER)),
         folder / "split.onnx")
    export_triton(folder / "keyed.onnx", folder / "repo", "fmnist")
    export_triton(folder / "split.task.onnx", folder / "repo", "fmnist_task")
    return folder / "repo"


def test_sealed_measurements_are_never_forwarded_to_a_server_that_cannot_open_them(sealed, repository, tmp_path):
    _, key = repository
    served = ModelRepository(sealed, key=key)
    with Liar(served.get("fmnist"), served.versions("fmnist"), triton=True) as triton:  # the manifest, no opener
        with pytest.raises(KeycamError) as refused:
            connect(V2Client(triton.url), "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=0)
    message = str(refused.value)
    assert "\n" not in message and "cannot open" in message and "keycam serve --key" in message, message
    assert "split" in message
    with Liar(served.get("fmnist"), served.versions("fmnist")) as keycam_serve:  # `keycam serve --key` says it opens
        remote = connect(V2Client(keycam_serve.url), "fmnist", "", key.fingerprint, tmp_path / "spool", wait_s=0)
    assert remote.manifest.spec.is_sealed


def test_the_triton_path_for_a_sealed_readout_is_a_split(sealed, repository, tmp_path):
    """The device opens the seal and runs the sealed split's feature model; the task model, served as Triton shows
    it (the manifest in the configuration, nothing that opens seals), answers as the local split does."""
    from tests.inprocess import keycam

    folder, key = repository
    served = ModelRepository(sealed, key=key)
    answers = {}
    with Liar(served.get("fmnist_task"), served.versions("fmnist_task"), triton=True) as triton:
        for name, extra in (("local", f'task = "{sealed.parent / "split.task.onnx"}"\n'),
                            ("forwarded", "")):
            config = tmp_path / f"{name}.toml"
            forward = (f'[forward]\nurl = "{triton.url}"\nmodel = "fmnist_task"\nspool = "{tmp_path / "spool"}"\n'
                       if name == "forwarded" else "")
            config.write_text(f'[source]\nkind = "fashion-mnist"\n[model]\nkey = "{folder / "device.key"}"\n'
                              f'path = "{sealed.parent / "split.feature.onnx"}"\n{extra}'
                              f'[results]\npath = "{tmp_path / name}.jsonl"\n{forward}')
            done = keycam("run", "--config", str(config), timeout=120)
            assert done.returncode == 0, done.stderr
            answers[name] = [(r["sequence"], r["outputs"]) for r in _lines(tmp_path / f"{name}.jsonl")]
    assert len(answers["local"]) == 20 and answers["forwarded"] == answers["local"]
    assert triton.requests == 20
