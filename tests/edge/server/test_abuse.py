"""Server abuse, part one: what a request may cost. Row counts, the in-flight memory budget, deep JSON,
compressed bodies, the token on /metrics, and the server's peak memory under all of it at once
(a `keycam serve` process, its VmHWM read from /proc). Connections and time: test_connections.py."""

from __future__ import annotations

import functools
import gzip
import json
import logging
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from edge.wire.codec import HEADER_LENGTH, MAX_DEPTH, decode_response, encode_request
from tests.edge.servers import ProcessServer, ThreadServer, health

INFER = "/v2/models/fmnist/infer"
MIB = 1 << 20


def _binary(rows: int, value: int = 0) -> tuple[bytes, dict]:
    body, length = encode_request({"measurement": np.full((rows, 28, 28, 1), value, np.uint8)})
    return body, {HEADER_LENGTH: str(length)}


def _tensor(rows: int = 1, data=None) -> dict:
    return {"name": "measurement", "shape": [rows, 28, 28, 1], "datatype": "UINT8",
            "data": [0] * (rows * 784) if data is None else data}


def _metric(text: str, name: str) -> float:
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def _still_serving(url: str) -> None:
    body, headers = _binary(1)
    answer = httpx.post(url + INFER, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert decode_response(answer.content, answer.headers.get(HEADER_LENGTH)).outputs["logits"].shape == (1, 10)


# -- rows ---------------------------------------------------------------------------------------


def test_rows_over_the_limit_are_refused_with_413_naming_both(repository):
    folder, _ = repository
    with ThreadServer(folder / "repo", max_rows=64) as server:
        body, headers = _binary(64)
        assert httpx.post(server.url + INFER, content=body, headers=headers).status_code == 200
        body, headers = _binary(65)
        answer = httpx.post(server.url + INFER, content=body, headers=headers)
        assert answer.status_code == 413
        assert "carries 65 rows" in answer.json()["error"] and "limit of 64 rows per request (--max-rows)" in \
            answer.json()["error"]
        body, headers = _binary(10_000)  # 7.5 MiB: the request that drove the server to 5.1 GiB
        runs = _metric(httpx.get(server.url + "/metrics").text, "keycam_server_batch_rows_count")
        answer = httpx.post(server.url + INFER, content=body, headers=headers, timeout=30)
        assert answer.status_code == 413 and "carries 10000 rows" in answer.json()["error"]
        metrics = httpx.get(server.url + "/metrics").text
        assert _metric(metrics, "keycam_server_batch_rows_count") == runs  # refused, not run: no model run
        json_rows = json.dumps({"inputs": [_tensor(rows=100)]}).encode()
        assert httpx.post(server.url + INFER, content=json_rows).status_code == 413
        _still_serving(server.url)


def test_merged_model_runs_never_hold_more_than_max_rows(repository):
    folder, _ = repository
    body, headers = _binary(2)
    with ThreadServer(folder / "repo", max_rows=4, max_batch=8) as server, ThreadPoolExecutor(12) as pool:
        def ask(_):
            return httpx.post(server.url + INFER, content=body, headers=headers, timeout=30).status_code

        assert set(pool.map(ask, range(60))) == {200}
        metrics = httpx.get(server.url + "/metrics").text
    runs = _metric(metrics, "keycam_server_batch_rows_count")
    assert _metric(metrics, 'keycam_server_batch_rows_bucket{le="4.0"}') == runs  # every run: at most 4 rows
    assert _metric(metrics, "keycam_server_batch_rows_sum") == 120 and runs < 60  # ... and some were merged


# -- the in-flight budget --------------------------------------------------------------------------


def test_past_the_inflight_budget_requests_get_503_with_retry_after_then_pass_again(repository):
    folder, _ = repository
    first, headers = _binary(1)
    slow_body = first + bytes(700 * 1024)  # 700 KiB after the tensor: held while it arrives, then refused
    with ThreadServer(folder / "repo", max_inflight_bytes=MIB, max_body_bytes=4 * MIB) as server:
        asked = threading.Event()  # the last bytes wait for the busy request's answer, not for a clock

        def slow():
            yield slow_body[:len(slow_body) - 10]
            asked.wait(timeout=60)  # hang protection only
            yield slow_body[len(slow_body) - 10:]

        holder = {}
        thread = threading.Thread(target=lambda: holder.update(answer=httpx.post(
            server.url + INFER, content=slow(), headers=headers, timeout=60)))
        thread.start()
        try:
            deadline = time.monotonic() + 60  # hang protection: the first 700 KiB are held, however slowly
            while _metric(httpx.get(server.url + "/metrics").text, "keycam_server_inflight_bytes") < 700 * 1024:
                assert time.monotonic() < deadline and thread.is_alive(), holder
                time.sleep(0.02)
            busy = httpx.post(server.url + INFER, content=bytes(600 * 1024), headers=headers)
        finally:
            asked.set()
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert "the server is busy" in busy.json()["error"] and "--max-inflight-mb" in busy.json()["error"]
        thread.join()
        assert holder["answer"].status_code == 400 and "bytes after the last tensor" in holder["answer"].text
        _still_serving(server.url)  # the budget came back
        too_big = httpx.post(server.url + INFER, content=bytes(2 * MIB), headers=headers)
        assert too_big.status_code == 413 and "more than this server holds for all requests" in too_big.text
        json_header = json.dumps({"inputs": [_tensor()], "parameters": {"pad": "x" * 40_000}}).encode()
        costly = httpx.post(server.url + INFER, content=json_header)  # 40 KB of JSON is charged 32 times over
        assert costly.status_code == 413 and "parsing the JSON header" in costly.json()["error"]
        metrics = httpx.get(server.url + "/metrics").text
    assert _metric(metrics, "keycam_server_busy_refusals_total") >= 1
    assert _metric(metrics, "keycam_server_inflight_bytes") == 0


# -- deep JSON --------------------------------------------------------------------------------------


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


DEEP = 100_000
DEEP_CASES = [
    ("inputs", '{"inputs": ' + _deep(DEEP) + "}", {}),
    ("data", '{"inputs": [' + json.dumps(_tensor(data=[]))[:-3] + _deep(DEEP) + "}]}", {}),
    ("parameters", '{"inputs": [' + json.dumps(_tensor()) + '], "parameters": {"x": ' + _deep(DEEP) + "}}", {}),
    ("outputs", '{"inputs": [' + json.dumps(_tensor()) + '], "outputs": ' + _deep(DEEP) + "}", {}),
    ("id", '{"id": ' + _deep(DEEP) + ', "inputs": [' + json.dumps(_tensor()) + "]}", {}),
    ("just over the limit", '{"inputs": [' + json.dumps(_tensor(data=[]))[:-3] + _deep(MAX_DEPTH) + "}]}", {}),
]


@pytest.mark.parametrize("where, text, headers", DEEP_CASES, ids=[c[0] for c in DEEP_CASES])
def test_deeply_nested_json_gets_400_and_one_log_line(served, caplog, where, text, headers):
    caplog.set_level(logging.INFO)
    answer = httpx.post(served.url + INFER, content=text.encode(), headers=headers)
    assert answer.status_code == 400, answer.text
    assert f"levels deep, over the limit of {MAX_DEPTH}" in answer.json()["error"]
    deadline = time.monotonic() + 60  # the server thread logs after answering: wait for it (hang protection only)
    while not (mine := [r for r in caplog.records if r.name.startswith("edge.server")]):
        assert time.monotonic() < deadline, "nothing was logged"
        time.sleep(0.01)
    assert len(mine) == 1 and mine[0].levelno == logging.WARNING and not mine[0].exc_info
    assert "\n" not in mine[0].getMessage() and "400" in mine[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    _still_serving(served.url)


def test_json_nested_by_its_shape_and_binary_headers_still_pass(served):
    frames = np.arange(784, dtype=np.uint8).reshape(1, 28, 28, 1) % 200
    nested = httpx.post(served.url + INFER, content=json.dumps({"inputs": [_tensor(data=frames.tolist())]}))
    flat = httpx.post(served.url + INFER, content=json.dumps({"inputs": [_tensor(data=frames.ravel().tolist())]}))
    assert nested.status_code == flat.status_code == 200 and nested.json()["outputs"] == flat.json()["outputs"]
    body, length = encode_request({"measurement": frames}, parameters={"x": "@"})
    for depth, status in [(MAX_DEPTH - 2, 200), (MAX_DEPTH - 1, 400), (DEEP, 400)]:  # the document adds 2 levels
        header = body[:length].replace(b'"@"', _deep(depth).encode())
        answer = httpx.post(served.url + INFER, content=header + body[length:], headers={HEADER_LENGTH: str(len(header))})
        assert answer.status_code == status, (depth, answer.text)


# -- compressed bodies ----------------------------------------------------------------------------


@functools.lru_cache
def _bomb(mib: int, encoding: str = "gzip") -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
    zeros = bytes(MIB)
    return b"".join([packer.compress(zeros) for _ in range(mib)] + [packer.flush()])


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
def test_compressed_bodies_with_trailing_bytes_are_refused(served, encoding):
    body, headers = _binary(1)
    packed = gzip.compress(body) if encoding == "gzip" else zlib.compress(body)
    headers = {**headers, "Content-Encoding": encoding}
    assert httpx.post(served.url + INFER, content=packed, headers=headers).status_code == 200
    for junk in (b"junk", b"\x00", packed):  # the last: a second gzip member / zlib stream
        answer = httpx.post(served.url + INFER, content=packed + junk, headers=headers)
        assert answer.status_code == 400, answer.text
        assert f"has {len(junk)} bytes after its end" in answer.json()["error"]
    _still_serving(served.url)


def test_a_gzip_bomb_gets_413_before_it_inflates(repository):
    folder, _ = repository
    with ThreadServer(folder / "repo", max_body_bytes=MIB) as server:
        for encoding in ("gzip", "deflate"):
            bomb = _bomb(64, encoding)  # 64 MiB of zeros in 64 KiB
            assert len(bomb) < MIB // 8
            answer = httpx.post(server.url + INFER, content=bomb, headers={"Content-Encoding": encoding})
            assert answer.status_code == 413 and "decompressed body exceeds" in answer.json()["error"]
        _still_serving(server.url)


# -- what the token protects ----------------------------------------------------------------------


def test_metrics_need_the_token_when_the_server_has_one(repository):
    folder, _ = repository
    with ThreadServer(folder / "repo", token="s3cret") as server:
        assert httpx.get(server.url + "/v2/health/live").status_code == 200
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200
        for path in ("/metrics", "/v2", "/v2/models/fmnist"):
            refused = httpx.get(server.url + path)
            assert refused.status_code == 401 and "bearer token" in refused.json()["error"], path
            assert httpx.get(server.url + path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        scraped = httpx.get(server.url + "/metrics", headers={"Authorization": "Bearer s3cret"})
        assert scraped.status_code == 200 and "keycam_server_requests_total" in scraped.text


# -- memory under all of it -------------------------------------------------------------------------


def _memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(field)


# Peak RSS over idle for --max-inflight-mb 48 --max-body-mb 16 --max-rows 64 (docs/server.md): the budget, two
# bodies outside it (one being inflated or joined), the model's activations at 64 rows (21 MiB) and 60 of slack.
MEMORY_BOUND_MIB = 48 + 2 * 16 + 21 + 60


def test_peak_memory_stays_bounded_and_health_answers_under_abuse(repository):
    folder, _ = repository
    options = ("--max-inflight-mb", "48", "--max-body-mb", "16", "--max-rows", "64")
    with ProcessServer(folder / "repo", None, *options) as server:
        pid = server.process.pid
        _still_serving(server.url)
        idle = _memory_mib(pid, "VmRSS")
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS: the peak from here on
        attacks = ([_binary(10_000)] * 4  # 7.5 MiB, 10,000 rows: 413
                   + [_binary(16_000)] * 16  # 12 MiB bodies, 16 at once: the budget holds 4, the rest get 503
                   + [_binary(64)] * 4  # the most rows a model run may hold
                   + [(json.dumps({"inputs": [_tensor()], "parameters": {"x": [[]] * 350_000}}).encode(), {})] * 8
                   + [(json.dumps({"inputs": [_tensor()], "parameters": {"pad": "x" * 2 * MIB}}).encode(), {})] * 4
                   + [(_bomb(256), {"Content-Encoding": "gzip"})] * 8)
        latencies, during, stop, lock = [], [], threading.Event(), threading.Lock()
        in_flight = [0]  # attacks sent and not yet answered

        def probe():
            while not stop.is_set():
                before = in_flight[0]
                latencies.append(health(server.port))
                during.append(before > 0 and in_flight[0] > 0)  # the whole probe inside the attack
                time.sleep(0.05)

        def attack(item):
            body, headers = item
            with lock:
                in_flight[0] += 1
            try:
                return httpx.post(server.url + INFER, content=body, headers=headers, timeout=60).status_code
            finally:
                with lock:
                    in_flight[0] -= 1

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            with ThreadPoolExecutor(16) as pool:
                statuses = list(pool.map(attack, attacks * 2))
        finally:
            stop.set()
            prober.join()
        peak = _memory_mib(pid, "VmHWM")
        _still_serving(server.url)
        log = server.stderr()
    assert set(statuses) <= {200, 413, 503} and statuses.count(413) >= 8 and 503 in statuses, statuses
    assert "Traceback" not in log
    assert any(during), (len(latencies), during)  # health answered (200) while the attacks were in flight
    print(f"idle {idle:.0f} MiB, peak {peak:.0f} MiB (+{peak - idle:.0f}), {len(attacks) * 2} attacks, "
          f"health p100 {max(latencies) * 1e3:.0f} ms over {len(latencies)} probes ({sum(during)} during them)")
    assert peak - idle < MEMORY_BOUND_MIB, (idle, peak)
