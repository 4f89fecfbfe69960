"""The embedded inference server: the Open Inference Protocol (KServe v2) REST API over a model repository.

Endpoints (all JSON unless a request asks for binary outputs)::

    GET  /v2/health/live                                   200 while the process serves (never behind the token)
    GET  /v2/health/ready                                  200 once every model is loaded (never behind the token)
    GET  /v2                                               server metadata and extensions
    GET  /v2/models/{name}[/versions/{v}]                  model metadata (+ keycam fingerprint, manifest)
    GET  /v2/models/{name}[/versions/{v}]/ready            200 when that model can run
    GET  /v2/models/{name}[/versions/{v}]/config           Triton's model-configuration extension
    POST /v2/models/{name}[/versions/{v}]/infer            inference, JSON or binary tensors
    GET  /metrics                                          Prometheus counters and latencies (behind the token)

Errors are ``{"error": "..."}`` with the status that names the fault: 400 malformed or mismatched
input, 401 missing or wrong bearer token, 404 unknown model or version, 408 a body slower than
``--body-timeout-s``, 413 a body, a row count or a memory need over its limit, 415 an unknown
``Content-Encoding``, 503 (with ``Retry-After``) the in-flight memory budget is spent for now, 500
a model that failed on valid input (the client gets a generic message; the log gets one line with the
model's error, never a traceback). A bad request never takes the server down, and every refused
request, 401s and unmatched paths (404, 405) included, is logged in one line, its path and message
with control characters escaped (``\x1b``), so a request cannot write into the log's terminal. The bounds are ``edge.server.limits``; request bodies are read by ``edge.server.body``; the
counters of ``/metrics`` are ``edge.server.metrics``.

Request ids make retries idempotent: a request that repeats an earlier request's ``id`` and body
(a device retrying after a lost answer) gets the stored answer again (``edge.server.cache``).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from importlib.metadata import PackageNotFoundError, version

import prometheus_client as prom
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from edge.errors import ProtocolError
from edge.server.batching import Batcher, batchable
from edge.server.body import Offload, read_body
from edge.server.cache import ReplayCache
from edge.server.connections import ConnectionStats
from edge.server.limits import JSON_COST, Budget, Limits, check_rows, json_length
from edge.server.metrics import ServerMetrics
from edge.server.repository import ModelRepository
from edge.wire.codec import HEADER_LENGTH, InferResponse, decode_request, encode_response

log = logging.getLogger(__name__)
EXTENSIONS = ["binary_tensor_data", "model_configuration", "keycam_fingerprint"]


def _version() -> str:
    try:
        return version("keycam")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0"


def _error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def printable(text: str, limit: int = 300) -> str:
    """``text`` for a log line: control characters (ESC, NUL, newlines, ...) escaped, at most ``limit`` characters."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])


def _refused(request: Request, status: int, message: str, headers: dict | None = None) -> JSONResponse:
    """A bad request's answer, logged in one line (a 503 at INFO: the client did nothing wrong)."""
    client = f"{request.client.host}:{request.client.port}" if request.client else "?"
    log.log(logging.INFO if status == 503 else logging.WARNING, "keycam serve: refused %s %s from %s: %d %s",
            printable(request.method, 20), printable(request.url.path), client, status, printable(message))
    if status == 503:
        headers = {**(headers or {}), "Retry-After": "1"}
    return _error(message, status, headers)


async def _not_found(request: Request, exc: HTTPException) -> Response:
    return _refused(request, exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                    dict(exc.headers or {}))


def _failed(request: Request, error: Exception) -> JSONResponse:
    """A model that failed on a valid request: one log line with its error (no traceback), and a 500 that tells
    the client nothing of the model's internals."""
    first = (str(error).strip().splitlines() or [""])[0]
    log.error("keycam serve: %s %s failed: %s: %s", printable(request.method, 20), printable(request.url.path),
              type(error).__name__, printable(first))
    return _error("internal error: the model failed on this request (the server's log has the reason)", 500)


def _decode(body: bytes, header_length: str | None):
    """The request, and the body's digest when it has an id (for the replay cache)."""
    inference = decode_request(body, header_length)
    digest = hashlib.blake2b(body, digest_size=16).digest() if inference.id is not None else None
    return inference, digest


def _outputs(model, inference, max_rows: int) -> tuple[list[str], dict]:
    """Check the request against ``model``; the outputs to compute, and which of them to answer in binary."""
    batched = {t.name for t in model.inputs if t.shape and t.shape[0] < 0}
    check_rows(inference.inputs, batched, max_rows, f"model '{model.name}' version {model.version}")
    model.check(inference.inputs, inference.parameters)
    inference.inputs = model.open_inputs(inference.inputs, inference.parameters)  # a sealed frame: opened here
    known = {o.name for o in model.outputs}
    if inference.outputs is not None:
        missing = sorted(set(inference.outputs) - known)
        if missing:
            raise ProtocolError(f"model '{model.name}' has no output {missing[0]!r}; its outputs are "
                                f"{sorted(known)}")
        return list(inference.outputs), inference.outputs
    wanted = [o.name for o in model.outputs]
    return wanted, {name: inference.binary_output for name in wanted}


class _Server:
    """One application's state (models, bounds, replay cache, batchers, metrics) and its endpoints."""

    def __init__(self, repository: ModelRepository, token: str | None, limits: Limits, replay_entries: int,
                 max_batch: int) -> None:
        self.repository, self.limits = repository, limits
        self.budget, self.connections = Budget(limits.max_inflight_bytes), ConnectionStats()
        self.metrics = ServerMetrics(self.budget, self.connections)
        self.cache = ReplayCache(replay_entries)
        merge = min(max_batch, limits.max_rows)
        self.batchers = {(m.name, m.version): Batcher(m, merge, m.concurrency, self.metrics.on_batch)
                         for versions in repository.models.values() for m in versions.values()
                         if merge > 1 and batchable(m)}
        self.expected = f"Bearer {token}".encode() if token else None
        self.offload = Offload()

    def authorised(self, request: Request) -> JSONResponse | None:
        if self.expected is None:
            return None
        given = request.headers.get("authorization", "").encode()
        if hmac.compare_digest(given, self.expected):
            return None
        return _refused(request, 401, "missing or wrong bearer token (send 'Authorization: Bearer <token>')",
                        {"WWW-Authenticate": "Bearer"})

    def endpoint(self, name: str, handler, protected: bool = True):
        """``handler`` behind the token (when ``protected``), its faults answered, its answers counted."""
        async def route(request: Request) -> Response:
            response = self.authorised(request) if protected else None
            if response is None:
                try:
                    response = await handler(request)
                except ProtocolError as error:
                    response = _refused(request, error.status, str(error))
                except RecursionError:  # nesting deeper than the interpreter follows: the request's fault
                    response = _refused(request, 400, "the request nests too deeply to be read")
                except ClientDisconnect:  # the body never arrived whole; nobody is left to answer
                    response = _error("the client disconnected before sending the whole body", 400)
                except Exception as error:  # a model failing on valid input: answer 500 and keep serving
                    response = _failed(request, error)
            self.metrics.requests.labels(name, str(response.status_code)).inc()
            return response
        return route

    async def live(self, request: Request) -> Response:
        return JSONResponse({"live": True})

    async def ready(self, request: Request) -> Response:
        return JSONResponse({"ready": True})

    async def server_metadata(self, request: Request) -> Response:
        return JSONResponse({"name": "keycam", "version": _version(), "extensions": EXTENSIONS})

    async def metrics_text(self, request: Request) -> Response:
        return Response(self.metrics.exposition(), media_type=prom.CONTENT_TYPE_LATEST)

    def model_of(self, request: Request):
        return self.repository.get(request.path_params["name"], request.path_params.get("version"))

    async def model_metadata(self, request: Request) -> Response:
        model = self.model_of(request)
        return JSONResponse(model.metadata(self.repository.versions(model.name)))

    async def model_ready(self, request: Request) -> Response:
        self.model_of(request)
        return JSONResponse({"ready": True})

    async def model_config(self, request: Request) -> Response:
        return JSONResponse(self.model_of(request).config())

    async def infer(self, request: Request) -> Response:
        model = self.model_of(request)
        with self.budget.charge() as charge:
            body = await read_body(request, self.limits, charge, self.offload)
            header_length = request.headers.get(HEADER_LENGTH.lower())
            charge.add(JSON_COST * json_length(body, header_length), "parsing the JSON header")
            inference, digest = await self.offload(len(body), _decode, body, header_length)
            key = None
            if inference.id is not None:
                key = (model.name, model.version, inference.id, digest, header_length)
                stored = self.cache.get(key)
                if stored is not None:
                    self.metrics.replays.inc()
                    content, headers, media_type = stored
                    return Response(content, headers=headers, media_type=media_type)
            wanted, binary = _outputs(model, inference, self.limits.max_rows)
            outputs = await self.run_model(model, inference.inputs, wanted)
            request_id = inference.id
            del inference, body  # the request's memory goes with its charge
        content, length = encode_response(InferResponse(model.name, model.version, outputs, request_id), binary)
        headers = {HEADER_LENGTH: str(length)} if length is not None else {}
        media_type = "application/octet-stream" if length is not None else "application/json"
        if key is not None:
            self.cache.put(key, content, headers, media_type)
        return Response(content, headers=headers, media_type=media_type)

    async def run_model(self, model, inputs: dict, wanted: list[str]) -> dict:
        """The outputs ``wanted``: through the model's batcher, or alone in a worker thread; timed."""
        start = time.perf_counter()
        batcher = self.batchers.get((model.name, model.version))
        if batcher is not None:
            outputs = await batcher.run(inputs, wanted)
        else:
            self.metrics.on_batch(1, max((a.shape[0] for a in inputs.values() if a.ndim), default=1))
            outputs = await run_in_threadpool(model.run, inputs, wanted)
        self.metrics.infer_seconds.labels(model.name).observe(time.perf_counter() - start)
        return outputs

    def routes(self) -> list[Route]:
        get = ["GET"]
        routes = [Route("/v2/health/live", self.endpoint("health", self.live, protected=False), methods=get),
                  Route("/v2/health/ready", self.endpoint("health", self.ready, protected=False), methods=get),
                  Route("/v2", self.endpoint("server_metadata", self.server_metadata), methods=get),
                  Route("/metrics", self.endpoint("metrics", self.metrics_text), methods=get)]
        model_metadata = self.endpoint("model_metadata", self.model_metadata)
        model_ready = self.endpoint("model_ready", self.model_ready)
        model_config = self.endpoint("model_config", self.model_config)
        infer = self.endpoint("infer", self.infer)
        for base in ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]:
            routes += [Route(base, model_metadata, methods=get), Route(base + "/ready", model_ready, methods=get),
                       Route(base + "/config", model_config, methods=get),
                       Route(base + "/infer", infer, methods=["POST"])]
        return routes


def create_app(repository: ModelRepository, *, token: str | None = None, limits: Limits | None = None,
               replay_entries: int = 1024, max_batch: int = 8) -> Starlette:
    """The ASGI application; run it with uvicorn (``keycam serve``, ``edge.server.listen.uvicorn_config``).

    ``max_batch`` > 1 batches requests that wait for a busy model (``edge.server.batching``) up to
    ``min(max_batch, limits.max_rows)`` rows; 0 or 1: never.
    """
    server = _Server(repository, token, limits or Limits(), replay_entries, max_batch)
    app = Starlette(routes=server.routes(), exception_handlers={HTTPException: _not_found})
    app.state.repository, app.state.limits, app.state.connections = repository, server.limits, server.connections
    return app
