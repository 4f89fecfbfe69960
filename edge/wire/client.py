"""A device's client for an Open Inference Protocol (KServe v2) server: ``keycam serve``, Triton or KServe.

Before forwarding anything the device learns what the server's model is keyed for: the embedded
server puts the keycam manifest in the model metadata's ``parameters``; Triton shows the same
entries (written by ``keycam export triton``) through its model-configuration endpoint. A server
whose model is keyed for another fingerprint is refused, so measurements never go to a server that
could not use them anyway, and the key itself never leaves the device.

:func:`connect` is the device's first step: the server's model, checked against the device's key, or
(when the server is down at a restart) the description cached from the last successful start.

Failures are sorted for the caller: :class:`ServerUnavailable` (connection refused or reset, a
timeout, HTTP 5xx, 429) is worth retrying; :class:`ServerRejected` (any other 4xx) will fail again
and must not be retried.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

from edge.errors import (ConfigError, KeycamError, KeyMismatch, ProtocolError, ServerRejected, ServerUnavailable,
                         WireError)
from edge.wire.codec import HEADER_LENGTH, InferResponse, decode_response
from firmware_sim.files import write_atomic
from firmware_sim.manifest import Manifest

log = logging.getLogger(__name__)
SERVER_CACHE = "server.json"  # the last server model description seen, in the spool folder


@dataclass(frozen=True)
class RemoteModel:
    """What the device needs to know about the server's model."""

    name: str
    version: str
    input_name: str
    input_datatype: str
    input_shape: list[int]
    output_names: list[str]
    manifest: Manifest

    def to_json(self) -> str:
        document = dict(self.__dict__)
        document["manifest"] = json.loads(self.manifest.to_json())
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RemoteModel:
        document = json.loads(text)
        document["manifest"] = Manifest.model_validate(document["manifest"])
        return cls(**document)


class V2Client:
    def __init__(self, url: str, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"server URL {url!r} must start with http:// or https://")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise ServerUnavailable(f"{self.url}{path}: no answer within the timeout") from None
        except httpx.TransportError as error:
            raise ServerUnavailable(f"{self.url}{path}: {type(error).__name__}: {error}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise ServerUnavailable(f"{self.url}{path}: HTTP {response.status_code}: {_message(response)}")
        if response.status_code >= 400:
            raise ServerRejected(f"{self.url}{path}: HTTP {response.status_code}: {_message(response)}",
                                 response.status_code)
        return response

    @staticmethod
    def _model_path(name: str, version: str) -> str:
        path = f"/v2/models/{quote(name, safe='')}"
        return f"{path}/versions/{quote(version, safe='')}" if version else path

    def live(self) -> bool:
        return self._request("GET", "/v2/health/live").status_code == 200

    def model(self, name: str, version: str = "") -> RemoteModel:
        """The server's model, with the keycam manifest from its metadata or (Triton) its configuration."""
        path = self._model_path(name, version)
        metadata = self._request("GET", path).json()
        parameters = metadata.get("parameters") or {}
        manifest_text = parameters.get("keycam_manifest")
        if manifest_text is None:
            try:
                config = self._request("GET", path + "/config").json()
            except ServerRejected:
                config = {}
            entry = (config.get("parameters") or {}).get("keycam_manifest") or {}
            manifest_text = entry.get("string_value") if isinstance(entry, dict) else None
        if not manifest_text:
            raise KeyMismatch(f"the server's model '{name}' at {self.url} carries no keycam manifest (no key "
                              f"fingerprint); export it with `keycam export triton` so the device can check it")
        try:
            manifest = Manifest.from_json(manifest_text, source=f"the manifest of '{name}' at {self.url}")
        except KeycamError as error:
            raise KeyMismatch(str(error)) from None
        inputs, outputs = metadata.get("inputs") or [], metadata.get("outputs") or []
        if len(inputs) != 1:
            raise WireError(f"the server's model '{name}' takes {len(inputs)} inputs; a keyed model takes one")
        versions = metadata.get("versions") or [""]
        return RemoteModel(name, version or str(versions[-1]), inputs[0]["name"], inputs[0]["datatype"],
                           list(inputs[0]["shape"]), [o["name"] for o in outputs], manifest)

    def infer(self, name: str, version: str, body: bytes, header_length: int | None) -> InferResponse:
        headers = {"Content-Type": "application/octet-stream" if header_length is not None else "application/json"}
        if header_length is not None:
            headers[HEADER_LENGTH] = str(header_length)
        response = self._request("POST", self._model_path(name, version) + "/infer", content=body, headers=headers)
        try:
            return decode_response(response.content, response.headers.get(HEADER_LENGTH))
        except ProtocolError as error:
            raise ServerUnavailable(f"{self.url}: unreadable answer ({error})") from None


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase


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
    Path(spool_folder).mkdir(parents=True, exist_ok=True)
    write_atomic(cache, remote.to_json().encode())
    return remote


def _cached(cache: Path) -> RemoteModel | None:
    """The cached server description, or None when there is none or it is damaged (with a warning)."""
    if not cache.is_file():
        return None
    try:
        return RemoteModel.from_json(cache.read_bytes().decode("utf-8"))
    except (OSError, ValueError, KeyError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        log.warning("the cached server description %s is damaged (%s); ignoring it", cache, type(error).__name__)
        return None
