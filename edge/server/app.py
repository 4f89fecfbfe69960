"""The embedded inference server: the Open Inference Protocol (KServe v2) REST API over a model repository.

Endpoints (all JSON unless a request asks for binary outputs)::

    GET  /v2/health/live                                   200 while the process serves
    GET  /v2/health/ready                                  200 once every model is loaded
    GET  /v2                                               server metadata and extensions
    GET  /v2/models/{name}[/versions/{v}]                  model metadata (+ keycam fingerprint, manifest)
    GET  /v2/models/{name}[/versions/{v}]/ready            200 when that model can run
    GET  /v2/models/{name}[/versions/{v}]/config           Triton's model-configuration extension
    POST /v2/models/{name}[/versions/{v}]/infer            inference, JSON or binary tensors
    GET  /metrics                                          Prometheus counters and latencies

Errors are ``{"error": "..."}`` with the status that names the fault: 400 malformed or mismatched
input, 401 missing or wrong bearer token, 404 unknown model or version, 413 body over the limit,
415 an unknown ``Content-Encoding``, 500 a model that failed on valid input. A bad request never
takes the server down.

Request ids make retries idempotent: a request that repeats an earlier request's ``id`` and body
(a device retrying after a lost answer) gets the stored answer again, not a second computation.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
import zlib
from collections import OrderedDict
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
from edge.server.repository import ModelRepository
from edge.wire.codec import HEADER_LENGTH, InferResponse, decode_request, encode_response

log = logging.getLogger(__name__)
EXTENSIONS = ["binary_tensor_data", "model_configuration", "keycam_fingerprint"]


def _version() -> str:
    try:
        return version("keycam")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0"


class ReplayCache:
    """The last answers, by (model, version, request id, body digest), bounded in entries and bytes."""

    def __init__(self, entries: int = 1024, max_bytes: int = 64 << 20) -> None:
        self.entries, self.max_bytes = entries, max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    def get(self, key):
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key, body: bytes, headers: dict, media_type: str) -> None:
        if self.entries <= 0 or len(body) > self.max_bytes:
            return
        if key in self._items:
            return
        self._items[key] = (body, headers, media_type)
        self._bytes += len(body)
        while len(self._items) > self.entries or self._bytes > self.max_bytes:
            _, (old, _, _) = self._items.popitem(last=False)
            self._bytes -= len(old)


def _error(message: str, status: int, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(repository: ModelRepository, *, token: str | None = None, max_body_bytes: int = 64 << 20,
               replay_entries: int = 1024, max_batch: int = 8) -> Starlette:
    """The ASGI application; run it with uvicorn (``keycam serve``) or any ASGI server.

    ``max_batch`` > 1 batches requests that wait for a busy model (``edge.server.batching``); 0 or 1: never.
    """
    registry = prom.CollectorRegistry()
    requests = prom.Counter("keycam_server_requests", "HTTP requests by endpoint and status",
                            ["endpoint", "status"], registry=registry)
    infer_seconds = prom.Histogram("keycam_server_inference_seconds", "model run time per request", ["model"],
                                   registry=registry, buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5))
    replays = prom.Counter("keycam_server_replayed_requests", "requests answered from the replay cache",
                           registry=registry)
    batch_sizes = prom.Histogram("keycam_server_batch_requests", "requests per model run (dynamic batching)",
                                 registry=registry, buckets=(1, 2, 4, 8, 16, 32, 64))
    cache = ReplayCache(replay_entries)
    batchers = {(m.name, m.version): Batcher(m, max_batch, m.concurrency, batch_sizes.observe)
                for versions in repository.models.values() for m in versions.values()
                if max_batch > 1 and batchable(m)}
    expected = f"Bearer {token}".encode() if token else None

    def authorised(request: Request) -> JSONResponse | None:
        if expected is None:
            return None
        given = request.headers.get("authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return None
        return _error("missing or wrong bearer token (send 'Authorization: Bearer <token>')", 401,
                      {"WWW-Authenticate": "Bearer"})

    def endpoint(name: str, protected: bool = True):
        def wrap(handler):
            async def route(request: Request) -> Response:
                response = authorised(request) if protected else None
                if response is None:
                    try:
                        response = await handler(request)
                    except ProtocolError as error:
                        response = _error(str(error), error.status)
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

    async def read_body(request: Request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            raise ProtocolError(f"the request body is {declared} bytes, over this server's limit of "
                                f"{max_body_bytes} (--max-body-mb)", status=413)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                raise ProtocolError(f"the request body exceeds this server's limit of {max_body_bytes} bytes "
                                    f"(--max-body-mb)", status=413)
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "deflate"):
            raise ProtocolError(f"Content-Encoding {encoding!r} is not supported; use gzip, deflate or none",
                                status=415)
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS)
        try:
            plain = inflater.decompress(body, max_body_bytes + 1)
        except zlib.error as error:
            raise ProtocolError(f"the {encoding} body cannot be decompressed: {error}") from None
        if len(plain) > max_body_bytes or inflater.unconsumed_tail:
            raise ProtocolError(f"the decompressed body exceeds this server's limit of {max_body_bytes} bytes",
                                status=413)
        if not inflater.eof:
            raise ProtocolError(f"the {encoding} body is truncated")
        return plain

    @endpoint("infer")
    async def infer(request: Request) -> Response:
        model = model_of(request)
        body = await read_body(request)
        header_length = request.headers.get(HEADER_LENGTH.lower())
        inference = decode_request(body, header_length)
        key = None
        if inference.id is not None:
            key = (model.name, model.version, inference.id, hashlib.blake2b(body, digest_size=16).digest(),
                   header_length)
            stored = cache.get(key)
            if stored is not None:
                replays.inc()
                content, headers, media_type = stored
                return Response(content, headers=headers, media_type=media_type)
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
            outputs = await run_in_threadpool(model.run, inference.inputs, wanted)
        infer_seconds.labels(model.name).observe(time.perf_counter() - start)
        content, length = encode_response(InferResponse(model.name, model.version, outputs, inference.id), binary)
        headers = {HEADER_LENGTH: str(length)} if length is not None else {}
        media_type = "application/octet-stream" if length is not None else "application/json"
        if key is not None:
            cache.put(key, content, headers, media_type)
        return Response(content, headers=headers, media_type=media_type)

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
    app.state.repository = repository
    return app
