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
a model that failed on valid input. A bad request never takes the server down, and is logged in
one line. The bounds are ``edge.server.limits``; request bodies are read by ``edge.server.body``.

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
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
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


def _decode(body: bytes, header_length: str | None):
    """The request, and the body's digest when it has an id (for the replay cache)."""
    inference = decode_request(body, header_length)
    digest = hashlib.blake2b(body, digest_size=16).digest() if inference.id is not None else None
    return inference, digest


class _Guards:
    """/metrics' view of the bounds: memory in flight, open connections, and what each guard refused."""

    def __init__(self, budget: Budget, connections: ConnectionStats) -> None:
        self.budget, self.connections = budget, connections

    def collect(self):
        yield GaugeMetricFamily("keycam_server_inflight_bytes", "bytes held by requests in flight",
                                value=self.budget.used)
        yield GaugeMetricFamily("keycam_server_connections", "open connections", value=self.connections.open)
        yield CounterMetricFamily("keycam_server_busy_refusals", "requests answered 503: in-flight memory spent",
                                  value=self.budget.refused)
        closed = CounterMetricFamily("keycam_server_closed_connections", "connections a guard closed",
                                     labels=["reason"])
        for reason, value in [("header_timeout", self.connections.head_timeouts),
                              ("evicted_idle", self.connections.evicted), ("over_cap", self.connections.refused),
                              ("unread_body", self.connections.unread_bodies)]:
            closed.add_metric([reason], value)
        yield closed


def create_app(repository: ModelRepository, *, token: str | None = None, limits: Limits | None = None,
               replay_entries: int = 1024, max_batch: int = 8) -> Starlette:
    """The ASGI application; run it with uvicorn (``keycam serve``, ``edge.server.listen.uvicorn_config``).

    ``max_batch`` > 1 batches requests that wait for a busy model (``edge.server.batching``) up to
    ``min(max_batch, limits.max_rows)`` rows; 0 or 1: never.
    """
    limits = limits or Limits()
    budget, connections = Budget(limits.max_inflight_bytes), ConnectionStats()
    registry = prom.CollectorRegistry()
    requests = prom.Counter("keycam_server_requests", "HTTP requests by endpoint and status",
                            ["endpoint", "status"], registry=registry)
    infer_seconds = prom.Histogram("keycam_server_inference_seconds", "model run time per request", ["model"],
                                   registry=registry, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5))
    replays = prom.Counter("keycam_server_replayed_requests", "requests answered from the replay cache",
                           registry=registry)
    batch_sizes = prom.Histogram("keycam_server_batch_requests", "requests per model run (dynamic batching)",
                                 registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64))
    batch_rows = prom.Histogram("keycam_server_batch_rows", "rows per model run (at most --max-rows)",
                                registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))

    def on_batch(requests: int, rows: int) -> None:
        batch_sizes.observe(requests)
        batch_rows.observe(rows)

    registry.register(_Guards(budget, connections))
    cache = ReplayCache(replay_entries)
    merge = min(max_batch, limits.max_rows)
    batchers = {(m.name, m.version): Batcher(m, merge, m.concurrency, on_batch)
                for versions in repository.models.values() for m in versions.values()
                if merge > 1 and batchable(m)}
    expected = f"Bearer {token}".encode() if token else None
    offload = Offload()

    def authorised(request: Request) -> JSONResponse | None:
        if expected is None:
            return None
        given = request.headers.get("authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return None
        return _error("missing or wrong bearer token (send 'Authorization: Bearer <token>')", 401,
                      {"WWW-Authenticate": "Bearer"})

    def refused(request: Request, status: int, message: str) -> JSONResponse:
        client = f"{request.client.host}:{request.client.port}" if request.client else "?"
        log.log(logging.INFO if status == 503 else logging.WARNING, "keycam serve: refused %s %s from %s: %d %s",
                request.method, request.url.path, client, status, message)
        return _error(message, status, {"Retry-After": "1"} if status == 503 else None)

    def endpoint(name: str, protected: bool = True):
        def wrap(handler):
            async def route(request: Request) -> Response:
                response = authorised(request) if protected else None
                if response is None:
                    try:
                        response = await handler(request)
                    except ProtocolError as error:
                        response = refused(request, error.status, str(error))
                    except RecursionError:  # nesting deeper than the interpreter follows: the request's fault
                        response = refused(request, 400, "the request nests too deeply to be read")
                    except ClientDisconnect:  # the body never arrived whole; nobody is left to answer
                        response = _error("the client disconnected before sending the whole body", 400)
                    except Exception as error:  # a model failing on valid input: answer 500 and keep serving
                        log.exception("%s failed", request.url.path)
                        response = _error(f"internal error: {type(error).__name__}: {error}", 500)
                requests.labels(name, str(response.status_code)).inc()
                return response
            return route
        return wrap

    @endpoint("health", protected=False)
    async def live(request: Request) -> Response:
        return JSONResponse({"live": True})

    @endpoint("health", protected=False)
    async def ready(request: Request) -> Response:
        return JSONResponse({"ready": True})

    @endpoint("server_metadata")
    async def server_metadata(request: Request) -> Response:
        return JSONResponse({"name": "keycam", "version": _version(), "extensions": EXTENSIONS})

    def model_of(request: Request):
        return repository.get(request.path_params["name"], request.path_params.get("version"))

    @endpoint("model_metadata")
    async def model_metadata(request: Request) -> Response:
        model = model_of(request)
        return JSONResponse(model.metadata(repository.versions(model.name)))

    @endpoint("model_ready")
    async def model_ready(request: Request) -> Response:
        model_of(request)
        return JSONResponse({"ready": True})

    @endpoint("model_config")
    async def model_config(request: Request) -> Response:
        return JSONResponse(model_of(request).config())

    @endpoint("infer")
    async def infer(request: Request) -> Response:
        model = model_of(request)
        with budget.charge() as charge:
            body = await read_body(request, limits, charge, offload)
            header_length = request.headers.get(HEADER_LENGTH.lower())
            charge.add(JSON_COST * json_length(body, header_length), "parsing the JSON header")
            inference, digest = await offload(len(body), _decode, body, header_length)
            key = None
            if inference.id is not None:
                key = (model.name, model.version, inference.id, digest, header_length)
                stored = cache.get(key)
                if stored is not None:
                    replays.inc()
                    content, headers, media_type = stored
                    return Response(content, headers=headers, media_type=media_type)
            batched = {t.name for t in model.inputs if t.shape and t.shape[0] < 0}
            check_rows(inference.inputs, batched, limits.max_rows, f"model '{model.name}' version {model.version}")
            model.check(inference.inputs, inference.parameters)
            known = {o.name for o in model.outputs}
            if inference.outputs is not None:
                missing = sorted(set(inference.outputs) - known)
                if missing:
                    raise ProtocolError(f"model '{model.name}' has no output {missing[0]!r}; its outputs are "
                                        f"{sorted(known)}")
                wanted, binary = list(inference.outputs), inference.outputs
            else:
                wanted = [o.name for o in model.outputs]
                binary = {name: inference.binary_output for name in wanted}
            start = time.perf_counter()
            batcher = batchers.get((model.name, model.version))
            if batcher is not None:
                outputs = await batcher.run(inference.inputs, wanted)
            else:
                on_batch(1, max((a.shape[0] for a in inference.inputs.values() if a.ndim), default=1))
                outputs = await run_in_threadpool(model.run, inference.inputs, wanted)
            infer_seconds.labels(model.name).observe(time.perf_counter() - start)
            request_id = inference.id
            del inference, body  # the request's memory goes with its charge
        content, length = encode_response(InferResponse(model.name, model.version, outputs, request_id), binary)
        headers = {HEADER_LENGTH: str(length)} if length is not None else {}
        media_type = "application/octet-stream" if length is not None else "application/json"
        if key is not None:
            cache.put(key, content, headers, media_type)
        return Response(content, headers=headers, media_type=media_type)

    @endpoint("metrics")
    async def metrics(request: Request) -> Response:
        return Response(prom.generate_latest(registry), media_type=prom.CONTENT_TYPE_LATEST)

    async def not_found(request: Request, exc: HTTPException) -> Response:
        return _error(f"{request.method} {request.url.path}: {exc.detail}", exc.status_code)

    model_paths = ["/v2/models/{name}", "/v2/models/{name}/versions/{version}"]
    routes = [Route("/v2/health/live", live, methods=["GET"]), Route("/v2/health/ready", ready, methods=["GET"]),
              Route("/v2", server_metadata, methods=["GET"]), Route("/metrics", metrics, methods=["GET"])]
    for base in model_paths:
        routes += [Route(base, model_metadata, methods=["GET"]), Route(base + "/ready", model_ready, methods=["GET"]),
                   Route(base + "/config", model_config, methods=["GET"]),
                   Route(base + "/infer", infer, methods=["POST"])]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.repository, app.state.limits, app.state.connections = repository, limits, connections
    return app
