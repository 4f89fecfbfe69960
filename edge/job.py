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

:meth:`Job.run` runs the capture loop with the metrics endpoint, and :meth:`Job.summary_lines` says what
happened.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

from edge import places
from edge.answers import Answers
from edge.config import Config, ModelConfig, ReadoutConfig, default_config, validated
from edge.credentials import credential_path
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
    forwarding_on = bool(config.forward.url)
    models = _models(config.model, forwarding_on, config.source.kind)
    key, threads = models.key, config.model.threads or None
    model = KeyedModel(models.path, key, threads=threads, optimisation=config.model.optimisation) \
        if models.path else None
    task = KeyedModel(config.model.task, key, threads=threads) if config.model.task else None
    forwarding = config.forward.connect(key, model, task, config.readout.rotating) if forwarding_on else None
    manifest, where = (forwarding.manifest, forwarding.where) if forwarding else (model.manifest,
                                                                                  f"model '{model.path}'")
    source, plain_source, readout = _sensor(config, manifest, key, where)
    _one_frame_at_a_time(model, task)
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
