"""``[forward]``: send the private measurements (or a split's scrambled features) to a server.

Forwarding changes how a run is put together, not only where results go: with no local model the
device reads out for the *server's* model, so the server is asked first (:meth:`ForwardConfig.connect`,
which checks that its model is keyed for this device's key), and only then are the readout, the
source and the pipeline built. The forwarding sink (``edge.sinks.forward``) then takes every frame,
answers the server's outputs with the run's answer stage (``edge.answers``) and hands the answers to
the run's answer sinks (the results file, event publishers): its section ``receives_answers``, so it
is built after them (``edge.sinks.base.build_sinks``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from edge.answers import Answers
from edge.credentials import read_token
from edge.errors import ConfigError
from edge.runtime import KeyedModel
from edge.sinks.base import Sink, SinkConfig, SinkContext
from edge.sinks.forward import ForwardSink
from edge.wire.client import RemoteModel, V2Client, connect
from edge.wire.spool import Spool
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest


class ForwardConfig(SinkConfig):
    receives_answers: ClassVar[bool] = True
    url: str = Field(default="", description="forward to this Open Inference Protocol server, e.g. "
                                             "'http://server:8000' (empty: run the model on the device)")
    model: str = Field(default="", description="the model's name in the server's repository")
    version: str = Field(default="", description="the model's version on the server (empty: its latest)")
    token_file: str = Field(default="", description="bearer token for the server, in a file of mode 0600 (optional)")
    timeout_s: float = Field(default=10.0, gt=0, le=600, description="one request's timeout, seconds")
    connect_s: float = Field(default=30.0, ge=0, le=3600, description="how long the first start waits for the "
                                                                      "server, seconds")
    spool: str = Field(default="keycam-spool", description="folder for frames waiting for the server (unit: path)")
    spool_max_frames: int = Field(default=10_000, ge=1, description="spool bound, frames")
    spool_max_mb: float = Field(default=512.0, gt=0, description="spool bound, MiB")
    when_full: Literal["drop_oldest", "stop_capture"] = Field(
        default="drop_oldest", description="a full spool drops its oldest frame, or stops capture until there is "
                                           "room")
    inflight: int = Field(default=8, ge=1, le=1024, description="requests queued in memory while the server "
                                                                "answers (unit: frames)")
    retry_min_s: float = Field(default=0.2, gt=0, le=60, description="first retry delay, seconds (doubles)")
    retry_max_s: float = Field(default=10.0, gt=0, le=3600, description="longest retry delay, seconds")
    drain_s: float = Field(default=30.0, ge=0, le=3600, description="at the end, how long to wait for the server "
                                                                    "to take what is queued, seconds")
    device_id: str = Field(default="", description="this device's name in request ids (default: host name)")

    @model_validator(mode="after")
    def _consistent(self) -> ForwardConfig:
        if self.url and not self.model:
            raise ValueError("forward.url is set but forward.model is not; name the model on the server")
        if self.retry_min_s > self.retry_max_s:
            raise ValueError(f"forward.retry_min_s ({self.retry_min_s}) is larger than forward.retry_max_s "
                             f"({self.retry_max_s})")
        return self

    def connect(self, key: MasterKey, model: KeyedModel | None, task: KeyedModel | None,
                rotating: bool) -> Forwarding:
        """Check the local models against forwarding, ask the server for its model and check its key."""
        if task is not None:
            raise ConfigError("model.task and forward.url are both set: with forwarding the task model runs on the "
                              "server; leave model.task empty")
        if model is not None and model.manifest.role != "feature":
            raise ConfigError(f"model '{model.path}' is a {model.manifest.role} model; with forward.url, model.path "
                              f"is a split's feature model (its task model on the server), or empty to forward "
                              f"measurements")
        token = read_token(self.token_file) if self.token_file else None
        client = V2Client(self.url, token=token, timeout_s=self.timeout_s)
        remote = connect(client, self.model, self.version, key.fingerprint, self.spool, self.connect_s)
        if model is None:
            if remote.manifest.role != "full":
                raise ConfigError(f"the server's model '{self.model}' is a {remote.manifest.role} model; forwarding "
                                  f"measurements needs a full keyed model (or set model.path to the split's feature "
                                  f"model)")
            if rotating and remote.manifest.sensor_tables:
                raise ConfigError("key rotation with forwarded measurements would need the server to rebuild its "
                                  "sensor tables; rotate keys with a split model (forward the features to the task "
                                  "model)")
            return Forwarding(self, client, remote, remote.manifest, f"the server's model '{self.model}'")
        if remote.manifest.role != "task":
            raise ConfigError(f"the server's model '{self.model}' is a {remote.manifest.role} model; a feature "
                              f"model's output goes to its task model")
        return Forwarding(self, client, remote, model.manifest, f"model '{model.path}'")

    def build(self, context: SinkContext) -> Sink | None:
        if context.forwarding is None:
            return None
        if context.answers is None:
            raise ConfigError("forwarding needs the run's answer stage (edge.answers) to answer the server's outputs")
        sinks = list(context.answer_sinks)
        target = sinks[0] if len(sinks) == 1 else FanOut(sinks)
        return context.forwarding.sink(target, context.answers)


@dataclass
class Forwarding:
    """A server asked and checked: the client, its model, and the manifest the device reads out for."""

    settings: ForwardConfig
    client: V2Client
    remote: RemoteModel
    manifest: Manifest
    where: str  # the model the readout serves, in words

    def sink(self, results: Sink, answers: Answers) -> ForwardSink:
        """The forwarding sink: the server's outputs answered by ``answers``, the answers written to ``results``."""
        settings = self.settings
        spool = Spool(settings.spool, max_entries=settings.spool_max_frames,
                      max_bytes=int(settings.spool_max_mb * (1 << 20)))
        return ForwardSink(self.client, self.remote, results, spool, answers, when_full=settings.when_full,
                           inflight=settings.inflight, retry_min_s=settings.retry_min_s,
                           retry_max_s=settings.retry_max_s, drain_s=settings.drain_s, device_id=settings.device_id)


class FanOut(Sink):
    """Several answer sinks behind one: the forwarding sink hands each answer to all of them, in order."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks

    def start(self) -> None:
        for sink in self.sinks:
            sink.start()

    def write(self, result) -> None:
        for sink in self.sinks:
            sink.write(result)

    def watch(self, metrics) -> None:
        for sink in self.sinks:
            sink.watch(metrics)

    def close(self) -> None:
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001 - close the others, then report
                errors.append(error)
        if errors:
            raise errors[0]
