"""A device's client for an Open Inference Protocol (KServe v2) server: ``keycam serve``, Triton or KServe.

Before forwarding anything the device learns what the server's model is keyed for: the embedded
server puts the keycam manifest in the model metadata's ``parameters``; Triton shows the same
entries (written by ``keycam export triton``) through its model-configuration endpoint. A server
whose model is keyed for another fingerprint is refused, so measurements never go to a server that
could not use them anyway, and the key itself never leaves the device.

:func:`connect` is the device's first step: the server's model, checked against the device's key, or
(when the server is down at a restart) the description cached from the last successful start.

Every answer is sorted by its status, for the caller (the forwarding sink) to act on:

=====================================  ==================================  =====================================
status                                 raised                              the forwarding sink
=====================================  ==================================  =====================================
2xx, the answer fits the model         (the answer)                        writes the result, forgets the frame
no connection, a timeout, 408, 425,    :class:`ServerUnavailable`          spools, retries with backoff
429, every 5xx
400, 413, 422                          :class:`ServerRejected`, ``final``  drops the frame for good, counted as
                                                                           refused, unless the server's model
                                                                           changed (then as below)
every other 4xx (401, 403, 404, 405,   :class:`ServerRejected`, not final  keeps every frame, raises the alarm,
415, ...), a 3xx (not followed)                                            retries with backoff
an answer over its bound, not the      :class:`AnswerError`                keeps every frame, raises the alarm,
protocol, or not what the model's                                          retries with backoff
metadata says (``edge.wire.remote``)
=====================================  ==================================  =====================================

Only a request that can never succeed is dropped: one the server found malformed or mismatched (400,
422) or too large (413), and only after the server's model is found unchanged. An answer is read as a
stream and refused past the most bytes the model's outputs can take (``RemoteModel.answer_limit``), so
a server cannot make the device hold more than that. A user name or password in the server's URL is
never printed: ``url`` and every message show ``***`` instead; the server's own words reach messages with
control characters escaped.

A sealed spec's measurements open only where the key is: a full model under a sealed spec is refused
(:class:`KeyMismatch`, at start, or as the alarm later) unless its model metadata says the server opens
seals (``parameters.keycam_opens_seals: true``, which ``keycam serve --key`` sets). Triton cannot open
seals, and a Triton configuration's parameters are not believed for it: serve a split there (the device
opens the seal and runs the feature model; Triton serves the task model), or use ``keycam serve --key``.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from edge.errors import (AnswerError, ConfigError, KeycamError, KeyMismatch, ProtocolError, ServerRejected,
                         ServerUnavailable)
from edge.wire.codec import HEADER_LENGTH, InferResponse, decode_response
from edge.wire.remote import RemoteModel, manifest_text, parse_metadata
from edge.wire.spool import read_regular
from firmware_sim.files import write_atomic
from firmware_sim.manifest import Manifest

log = logging.getLogger(__name__)
SERVER_CACHE = "server.json"  # the last server model description seen, in the spool folder
RETRY = {408, 425, 429}  # with every 5xx: the server may take the request later
FINAL = {400, 413, 422}  # this request can never succeed
METADATA_BYTES = 16 << 20  # the most a metadata or configuration answer may take
ERROR_BYTES = 64 << 10  # of an error's body, the most read for its message
OPENS_SEALS = "keycam_opens_seals"  # a model metadata parameter: true when the server opens sealed measurements

__all__ = ["SERVER_CACHE", "RemoteModel", "V2Client", "connect"]


class V2Client:
    """Requests to one server. ``url`` is the address as it may be shown: a password in it is never printed."""

    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        self._secrets = _userinfo(url)
        self.url = self.redact(url.rstrip("/"))
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"server URL {self.url!r} must start with http:// or https://")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout_s)

    def redact(self, text: str) -> str:
        """``text`` with the URL's user name and password replaced by ``***``."""
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, limit: int = METADATA_BYTES, **kwargs) -> tuple[httpx.Response, bytes]:
        """The answer and its body (at most ``limit`` bytes), sorted by the status table (module docstring)."""
        where = f"{self.url}{path}"
        headers = {"Accept-Encoding": "identity", **kwargs.pop("headers", {})}
        try:
            with self._http.stream(method, path, headers=headers, **kwargs) as response:
                ok = 200 <= response.status_code < 300
                content = _read(response, limit if ok else ERROR_BYTES, where, strict=ok)
        except httpx.TimeoutException:
            raise ServerUnavailable(f"{where}: no answer within the timeout") from None
        except httpx.TransportError as error:
            raise ServerUnavailable(self.redact(f"{where}: {type(error).__name__}: {error}")) from None
        if not ok:
            _refusal(response.status_code, f"{where}: HTTP {response.status_code}: "
                                           f"{self.redact(_message(response, content))}")
        return response, content

    def _json(self, path: str) -> object:
        _, content = self._request("GET", path)
        try:
            return json.loads(content)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise AnswerError(f"{self.url}{path}: the answer is not JSON ({_printable(content[:40])!r}...)") from None

    @staticmethod
    def _model_path(name: str, version: str) -> str:
        path = f"/v2/models/{quote(name, safe='')}"
        return f"{path}/versions/{quote(version, safe='')}" if version else path

    def live(self) -> bool:
        return self._request("GET", "/v2/health/live")[0].status_code == 200

    def model(self, name: str, version: str = "") -> RemoteModel:
        """The server's model, with the keycam manifest from its metadata or (Triton) its configuration."""
        path = self._model_path(name, version)
        where = f"the server's model '{name}' at {self.url}"
        metadata = self._json(path)
        config = None
        if manifest_text(metadata, None) is None:
            try:
                config = self._json(path + "/config")
            except (ServerRejected, AnswerError):
                config = None
        text = manifest_text(metadata, config)
        if not text:
            raise KeyMismatch(f"{where} carries no keycam manifest (no key fingerprint); export it with "
                              f"`keycam export triton` so the device can check it")
        try:
            manifest = Manifest.from_json(text, source=f"the manifest of '{name}' at {self.url}")
        except KeycamError as error:
            raise KeyMismatch(_printable(str(error)[:500])) from None
        if manifest.spec.is_sealed and manifest.role != "task" and not _opens_seals(metadata):
            raise KeyMismatch(f"{where} reads sealed measurements ({manifest.spec.seal}), and the server does not say "
                              f"it opens seals (Triton cannot open them): serve the model with `keycam serve --key "
                              f"KEYFILE`, or use a split (the device opens the seal and runs the feature model, the "
                              f"server runs the task model)")
        return parse_metadata(metadata, name, version, manifest, where)

    def infer(self, remote: RemoteModel, body: bytes, header_length: int | None, rows: int = 1) -> InferResponse:
        """The answer to one request, read up to the model's answer bound and checked against its metadata."""
        headers = {"Content-Type": "application/octet-stream" if header_length is not None else "application/json"}
        if header_length is not None:
            headers[HEADER_LENGTH] = str(header_length)
        path = self._model_path(remote.name, remote.version) + "/infer"
        response, content = self._request("POST", path, remote.answer_limit(rows), content=body, headers=headers)
        where = f"{self.url}{path}"
        try:
            answer = decode_response(content, response.headers.get(HEADER_LENGTH))
        except ProtocolError as error:
            raise AnswerError(f"{where}: unreadable answer ({_printable(str(error)[:300])})") from None
        answer.outputs = remote.check_answer(answer.outputs, rows, where)
        return answer


def _opens_seals(metadata: object) -> bool:
    """Whether the model metadata says the server opens sealed measurements (``keycam serve --key`` does; Triton
    shows no such parameter, and a Triton configuration's parameters are not believed: Triton cannot open seals)."""
    parameters = metadata.get("parameters") if isinstance(metadata, dict) else None
    return isinstance(parameters, dict) and parameters.get(OPENS_SEALS) is True


def _userinfo(url: str) -> list[str]:
    """The secrets in ``url``'s user information (``user:password@``), longest first; [] when it has none."""
    try:
        parts = urlsplit(url)
        found = [parts.netloc.rpartition("@")[0]] if "@" in parts.netloc else []
        if parts.password:
            found.append(parts.password)
    except ValueError:  # an address urllib cannot split: hide everything before the last '@'
        found = [url.split("://", 1)[-1].rpartition("@")[0]] if "@" in url else []
    return [secret for secret in sorted(set(found), key=len, reverse=True) if secret]


def _read(response: httpx.Response, limit: int, where: str, strict: bool) -> bytes:
    """The body, at most ``limit`` bytes: past it, ``strict`` refuses the answer (AnswerError), else cuts it."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if strict and encoding not in ("", "identity"):
        raise AnswerError(f"{where}: the answer is encoded {_printable(encoding)!r}, which the device did not ask "
                          f"for (it asks for identity)")
    declared = response.headers.get("content-length", "")
    if strict and declared.isdigit() and int(declared) > limit:
        raise AnswerError(f"{where}: the answer declares {int(declared)} bytes, over the {limit} bytes the server's "
                          f"model can need; refused unread")
    content = bytearray()
    for chunk in response.iter_raw():
        content += chunk
        if len(content) > limit:
            if strict:
                raise AnswerError(f"{where}: the answer is over the {limit} bytes the server's model can need; "
                                  f"refused unread")
            break
    return bytes(content[:limit])


def _refusal(status: int, message: str) -> None:
    """Raise what ``status`` means for the request (the status table in the module docstring)."""
    if status >= 500 or status in RETRY:
        raise ServerUnavailable(message)
    if 300 <= status < 400:
        raise ServerRejected(message + " (redirects are not followed: point forward.url at the server itself)",
                             status, final=False)
    raise ServerRejected(message, status, final=status in FINAL)


def _printable(text: str | bytes) -> str:
    """``text`` with control characters escaped (a server's words go to the log)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _message(response: httpx.Response, content: bytes) -> str:
    try:
        text = str(json.loads(content)["error"])
    except (ValueError, KeyError, TypeError, RecursionError):
        text = content[:200].decode("utf-8", errors="replace") or response.reason_phrase
    return _printable(text[:300])


def connect(client: V2Client, name: str, version: str, fingerprint: str, spool_folder: str | Path,
            wait_s: float = 30.0) -> RemoteModel:
    """The server's model, checked against the device's key; from the spool's cache if the server is down.

    The first start needs the server (to learn its model) and waits up to ``wait_s`` for it; later
    starts work offline at once with what the last successful start saw, and spool until the server
    returns (the forwarding sink checks the server's model again when it answers).
    """
    cache = Path(spool_folder) / SERVER_CACHE
    cached = _cached(cache)
    if cached is not None and (cached.name != name or (version and cached.version != version)):
        cached = None  # a description of another model
    deadline = time.monotonic() + wait_s
    delay = 0.2
    while True:
        try:
            remote = client.model(name, version)
            break
        except ServerUnavailable as error:
            if cached is not None:  # a restart while the server is down: start at once and spool
                log.warning("%s; using the model description cached at %s and spooling", error, cache)
                remote = cached
                break
            if time.monotonic() + delay > deadline:
                raise ServerUnavailable(f"{error} (tried for {wait_s:.0f} s; the first start needs the server)") \
                    from None
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    if remote.manifest.key_fingerprint != fingerprint:
        raise KeyMismatch(f"the server's model '{name}' at {client.url} is keyed for {remote.manifest.key_fingerprint}, "
                          f"this device's key is {fingerprint}; point forward.url at a server keyed for this device")
    Path(spool_folder).mkdir(mode=0o700, parents=True, exist_ok=True)
    write_atomic(cache, remote.to_json().encode(), mode=0o600)  # the server's model, its manifest: private too
    return remote


def _cached(cache: Path) -> RemoteModel | None:
    """The cached server description, or None when there is none or it is damaged (with a warning)."""
    if not cache.exists() and not cache.is_symlink():
        return None
    try:
        return RemoteModel.from_json(read_regular(cache, METADATA_BYTES).decode("utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        log.warning("the cached server description %s is damaged (%s); ignoring it", cache,
                    str(error).splitlines()[0] if isinstance(error, OSError) else type(error).__name__)
        return None
