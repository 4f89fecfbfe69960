"""A run, assembled from a configuration and run: key, keyed model(s), readout, source, pipeline and sinks.

:func:`build_job` checks everything it can before it opens anything: the key against the model, the
readout settings against the manifest, each sink's settings. Each stage is built once, with everything
it needs, in the order the frame will meet them:

1. the key and the models (with forwarding and no local model, the *server's* model: the server is
   asked first, ``edge.sinks.forwarding``), so the manifest the sensor reads out for is known;
2. the source, for that sensor's format (``edge.sensor.SensorFormat``), then the one readout stage for
   the source's channel order, and the virtual sensor joining them (recordings are measured already);
3. the answer stage (``edge.answers``), once, from the final manifest (the task model's, the server's or
   the keyed model's), shared by the local task stage and the forwarding sink;
4. the pipeline, and the sinks in two phases (``edge.sinks.build_sinks``).

:func:`check_config` makes the checks :func:`build_job` makes before it opens anything, with the same functions,
without a camera, a server or a file written: ``keycam validate-config`` runs it.

:meth:`Job.run` runs the capture loop with the metrics endpoint, and :meth:`Job.summary_lines` says what
happened.
"""

from __future__ import annotations

import logging
import math
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from edge import places
from edge.answers import Answers
from edge.config import Config, ModelConfig, ReadoutConfig, default_config, validated
from edge.credentials import credential_path, read_token
from edge.epochs import EpochSchedule
from edge.events import Tracking
from edge.errors import ConfigError
from edge.loop import CaptureLoop
from edge.pipeline import Pipeline
from edge.runtime import KeyedModel
from edge.sensor import Readout, SensorFormat
from edge.sinks import Sink, SinkContext, build_sinks
from edge.sources.base import Source
from edge.sources.virtual import VirtualSensor
from edge.switches import Switches
from edge.tasks import TaskConfig, make_decoder
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest

log = logging.getLogger(__name__)


@dataclass
class Job:
    config: Config
    source: Source  # what the loop reads: measurements (the virtual sensor, or a recording)
    plain_source: Source | None  # the plain source behind the virtual sensor (None for recordings)
    readout: Readout  # the run's one readout stage
    pipeline: Pipeline
    sinks: list[Sink]
    key: MasterKey
    model_path: Path | None
    default_folder: Path | None = None  # the embedded default's key and models, when the run uses them
    last_summary: dict | None = None  # the loop's summary of the last run, also when it failed
    tracking: Tracking | None = None  # the run's tracking stage, when [events] is on
    switches: Switches | None = None  # detection and recording on or off (edge.switches): the loop reads them

    def run(self, progress=None) -> dict:
        """Run the capture loop to its end (or a stop signal); the loop's summary."""
        metrics = self.config.metrics
        server = None
        try:
            if metrics.port:
                from edge.metrics import MetricsServer

                server = MetricsServer(metrics.host, metrics.port)
                server.describe(self.pipeline.manifest, self.key.fingerprint)  # keycam_build_info
                server.watch_source(self.source)
                for sink in self.sinks:
                    sink.watch(server)
                print(f"keycam: metrics on http://{metrics.host}:{server.port}/metrics", file=sys.stderr)
            loop = self.config.loop
            capture = CaptureLoop(self.source, self.pipeline, self.sinks, queue_size=loop.queue,
                                  max_frames=loop.max_frames, realtime=loop.realtime, progress=progress,
                                  metrics_server=server, on_frame_error=loop.on_frame_error,
                                  open_retries=loop.open_retries, open_backoff_s=loop.open_backoff_s,
                                  switches=self.switches)
            try:
                capture.run()
            finally:  # a run that fails still says what it did (frames, spooled, lost) before its error
                self.last_summary = capture.metrics.summary()
            return self.last_summary
        finally:
            if server is not None:
                server.close()

    def summary_lines(self, summary: dict) -> list[str]:
        lines = [f"{summary['frames']} frames at {summary['fps']:.1f} fps, {summary['drops']} dropped, "
                 f"{summary['errors']} errors, {summary['skipped']} skipped; key {self.key.fingerprint}; "
                 f"mean ms per stage {summary['stage_ms_mean']}; stopped by {summary['stopped_by']}"]
        if self.default_folder is not None:
            lines.append(f"the embedded default's key and compiled models are in '{self.default_folder}'")
        if self.tracking is not None:
            counts = self.tracking.counts
            lines.append(f"tracked {counts['new']} objects: {counts['update']} updates, {counts['end']} ended")
        parts = [self.source.summary()] + [sink.summary() for sink in self.sinks]
        return lines + [line for line in parts if line]


def epoch_schedule(readout: ReadoutConfig, manifest: Manifest, where: str) -> EpochSchedule:
    if (readout.rotating or readout.epoch not in (-1, manifest.epoch)) and not manifest.epoch_rotation:
        raise ConfigError(f"{where} cannot be rebuilt for other key epochs; compile it again")
    base = manifest.epoch if readout.epoch < 0 else readout.epoch
    return EpochSchedule(base, readout.rotate_frames, readout.rotate_seconds)


@dataclass(frozen=True)
class _Models:
    """The [model] section resolved: the key, the model's path (None: forward measurements), and, for the
    embedded default, its class names and decoder settings."""

    key: MasterKey
    path: Path | None
    labels: tuple[str, ...] = ()
    task: TaskConfig | None = None
    folder: Path | None = None  # the embedded default's folder, when it is used


def _models(settings: ModelConfig, forwarding: bool, source_kind: str) -> _Models:
    """No model: the default job's keyed face detector, with its decoder settings; for the Fashion-MNIST frames,
    keycam's own CNN; both compiled for the default key, in the default folder (``edge.places``)."""
    settings = settings.model_copy(update={"key": credential_path(settings.key)})  # credential:NAME -> systemd's
    if settings.path:
        return _Models(MasterKey.load(settings.key), Path(settings.path))
    if forwarding:
        if not settings.key:
            raise ConfigError("forward.url is set but model.key is not; name this device's key file")
        return _Models(MasterKey.load(settings.key), None)
    from edge import default
    from edge.faces import LABELS, task_settings

    folder = places.default_folder(settings.folder)
    key = default.load_or_create_key(Path(settings.key) if settings.key else folder / default.KEY_FILE)
    if source_kind == "fashion-mnist":
        return _Models(key, default.default_model(folder, key), tuple(default.LABELS), folder=folder)
    return _Models(key, default.default_detector(folder, key), tuple(LABELS), task_settings(), folder)


def _check_settings(config: Config, force: bool = False) -> None:
    """The settings a run refuses before it opens anything, whatever the models: the recording's path, and
    forwarding's URL, bounds and token file (no server is asked)."""
    config.record.check(force)
    settings = config.forward
    if not settings.url:
        return
    _check_url(settings.url)
    if not math.isfinite(settings.spool_max_mb):
        raise ConfigError(f"forward.spool_max_mb = {settings.spool_max_mb}: give the spool's bound in MiB, a finite "
                          f"number")
    spool = Path(settings.spool)
    if spool.exists() and not spool.is_dir():
        raise ConfigError(f"forward.spool '{spool}' is a file, not a folder; name a folder for the frames waiting "
                          f"for the server (keycam creates it)")
    if settings.token_file:
        read_token(credential_path(settings.token_file))


def _check_url(url: str) -> None:
    """A server URL the client can use: http or https, a host, a port that is a number (the password is never
    shown)."""
    import httpx

    shown = re.sub(r"//[^/@]*@", "//***@", url)
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed on access: a port that is not a number raises here
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as error:
        raise ConfigError(f"forward.url {shown!r} is not a URL ({error}); give http://HOST:PORT") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"forward.url {shown!r} must be http:// or https:// and name a host, such as "
                          f"http://server:8000")


def _check_models(model: KeyedModel | None, task: KeyedModel | None, forwarding: bool) -> None:
    """The models' roles, as the run will use them: a split's feature model with its own task model here, or
    its task model on the server; never a task model as the device's."""
    if model is None:
        return
    role = model.manifest.role
    if task is not None:
        if forwarding:
            raise ConfigError("model.task and forward.url are both set: with forwarding the task model runs on the "
                              "server; leave model.task empty")
        if role != "feature" or task.manifest.role != "task":
            raise ConfigError(f"model '{model.path}' is a {role} model and model.task '{task.path}' a "
                              f"{task.manifest.role} model; model.task is the task model of a split whose feature "
                              f"model is model.path (keycam keyify --split-after)")
    elif forwarding and role != "feature":
        raise ConfigError(f"model '{model.path}' is a {role} model; with forward.url, model.path is a split's feature "
                          f"model (its task model on the server), or empty to forward measurements")
    elif not forwarding and role == "task":
        raise ConfigError(f"model '{model.path}' is a split's task model; model.path is the device's model (a full "
                          f"model, or the split's feature model with this one as model.task)")
    _one_frame_at_a_time(model, task)


def check_config(config: Config, force: bool = False) -> None:
    """What ``keycam run`` checks of a configuration at start, with no camera opened, no server asked and nothing
    written (``keycam validate-config``): the settings, the key, the models' manifests against the key, their
    roles, the readout's epochs and the answers' settings. ``build_job`` makes the same checks, with the same
    functions, as it builds the run; the embedded default (no model.path) is checked when it is built."""
    config = validated(config)
    _check_settings(config, force)
    settings = config.model
    key_path = credential_path(settings.key)
    key = MasterKey.load(key_path) if key_path else None
    if key is None or not settings.path:
        return
    model = KeyedModel(settings.path, key, optimisation="disable")
    task = KeyedModel(settings.task, key, optimisation="disable") if settings.task else None
    forwarding = bool(config.forward.url)
    _check_models(model, task, forwarding)
    epoch_schedule(config.readout, model.manifest, f"model '{model.path}'")
    if not forwarding:
        make_decoder(config.task, task.manifest if task is not None else model.manifest, None)


def _one_frame_at_a_time(*models: KeyedModel | None) -> None:
    for loaded in (m for m in models if m is not None):
        batch = loaded.manifest.input.shape[0]
        if batch not in (None, 1):
            raise ConfigError(f"model '{loaded.path}' takes batches of exactly {batch} frames, and the device runs "
                              f"one frame at a time; export it with batch 1 or a dynamic batch and compile it again")


def _sensor(config: Config, manifest: Manifest, key: MasterKey, where: str) -> tuple[Source, Source | None, Readout]:
    """(the source the loop reads, the plain source behind it or None, the run's readout stage)."""
    fit = config.model.fit_override
    source = config.source.build(SensorFormat.of(manifest, fit))
    readout = Readout.for_model(manifest, key, fit, schedule=epoch_schedule(config.readout, manifest, where),
                                reference=config.readout.reference, keep_plain=config.record.plain_debug,
                                masks=config.readout.privacy_masks(),
                                source_order=source.channel_order if not source.measured else "bgr")
    if source.measured:
        return source, None, readout
    return VirtualSensor(source, readout), source, readout


def _tracking(config: Config, names: list[str]) -> Tracking | None:
    """The run's one tracking stage (``[events] enabled``), for the task stage or the forwarding sink."""
    if not config.events.enabled:
        return None
    tracking = Tracking(config.events, config.zones)
    unknown = tracking.unknown_labels(names)
    if unknown:
        log.warning("[events] or [zones] name labels the model does not have (%s); its labels are %s",
                    ", ".join(unknown), ", ".join(names[:20]) + (", ..." if len(names) > 20 else ""))
    return tracking


def build_job(config: Config | None = None, *, replay: bool = False, force: bool = False) -> Job:
    config = validated(config or default_config())
    _check_settings(config, force)
    forwarding_on = bool(config.forward.url)
    models = _models(config.model, forwarding_on, config.source.kind)
    key, threads = models.key, config.model.threads or None
    model = KeyedModel(models.path, key, threads=threads, optimisation=config.model.optimisation) \
        if models.path else None
    task = KeyedModel(config.model.task, key, threads=threads) if config.model.task else None
    _check_models(model, task, forwarding_on)
    forwarding = config.forward.connect(key, model, task, config.readout.rotating) if forwarding_on else None
    manifest, where = (forwarding.manifest, forwarding.where) if forwarding else (model.manifest,
                                                                                  f"model '{model.path}'")
    source, plain_source, readout = _sensor(config, manifest, key, where)
    final = forwarding.remote.manifest if forwarding else (task.manifest if task is not None else manifest)
    settings = models.task if models.task is not None and config.task.kind == "auto" else config.task
    labels = list(models.labels) or None
    decoder = make_decoder(settings, final, labels)  # a model whose outputs do not fit is refused here
    answers = Answers(final, decoder, key, config.model.fit_override)
    tracking = _tracking(config, decoder.labels or labels or [])
    pipeline = Pipeline(model, key, task=task, answers=answers, forward=forwarding_on, manifest=manifest,
                        tracking=tracking)
    switches = Switches()  # set by the MQTT sink's command topics, read by the loop
    config.mqtt.link_page(config.web)  # Home Assistant's link to the device: the [web] page, when it is on
    context = SinkContext(key, manifest, replay=replay, force=force, labels=tuple(decoder.labels or labels or ()),
                          answers=answers, forwarding=forwarding, tracking=tracking, switches=switches)
    sinks = build_sinks(config.sink_sections(), context)
    if any(sink.role == "frames" for sink in sinks):  # a recorder: recording can be switched off and on
        switches.offer("recordings")
    for sink in sinks:  # the forwarding sink answers the frames itself: it tracks them, with the same stage
        if sink.role == "forward":
            sink.tracking = tracking
    job = Job(config, source, plain_source, readout, pipeline, sinks, key, models.path, models.folder,
              tracking=tracking, switches=switches)
    for sink in sinks:
        sink.attach(job)  # a sink that shows the whole run (the web page) sees it
    return job
