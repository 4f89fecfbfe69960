"""A run, assembled from a configuration and run: key, keyed model(s), readout, source, pipeline and sinks.

:func:`build_job` checks everything it can before it opens anything: the key against the model, the
readout settings against the manifest, each sink's settings. The order matters: with forwarding and
no local model the device reads out for the *server's* model, so the server is asked first
(``edge.sinks.forwarding``); then the one readout stage is made, and the source and the pipeline
share it (the virtual sensor reads plain sources out in the capture thread). :meth:`Job.run` runs
the capture loop with the metrics endpoint, and :meth:`Job.summary_lines` says what happened.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from edge.config import ModelConfig, ReadoutConfig, default_config, validated
from edge.epochs import EpochSchedule
from edge.errors import ConfigError
from edge.loop import CaptureLoop
from edge.pipeline import Pipeline
from edge.runtime import KeyedModel
from edge.schema import Section
from edge.sensor import Readout
from edge.sinks import SECTIONS, Sink, SinkContext
from edge.sources.base import Source
from edge.sources.virtual import VirtualSensor
from edge.tasks import make_decoder
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest

DEFAULT_FOLDER = Path("keycam-demo")


@dataclass
class Job:
    config: Section
    source: Source  # what the loop reads: measurements (the virtual sensor, or a recording)
    plain_source: Source | None  # the plain source behind the virtual sensor (None for recordings)
    pipeline: Pipeline
    sinks: list[Sink]
    key: MasterKey
    model_path: Path | None
    last_summary: dict | None = None  # the loop's summary of the last run, also when it failed

    @property
    def readout(self) -> Readout:
        return self.pipeline.readout

    def run(self, progress=None) -> dict:
        """Run the capture loop to its end (or a stop signal); the loop's summary."""
        metrics = self.config.metrics
        server = None
        try:
            if metrics.port:
                from edge.metrics import MetricsServer

                server = MetricsServer(metrics.host, metrics.port)
                server.watch_source(self.source)
                for sink in self.sinks:
                    sink.watch(server)
                print(f"keycam: metrics on http://{metrics.host}:{server.port}/metrics", file=sys.stderr)
            loop = self.config.loop
            capture = CaptureLoop(self.source, self.pipeline, self.sinks, queue_size=loop.queue,
                                  max_frames=loop.max_frames, realtime=loop.realtime, progress=progress,
                                  metrics_server=server)
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
        parts = [self.source.summary()] + [sink.summary() for sink in self.sinks]
        return lines + [line for line in parts if line]


def epoch_schedule(readout: ReadoutConfig, manifest: Manifest, where: str) -> EpochSchedule:
    if (readout.rotating or readout.epoch not in (-1, manifest.epoch)) and not manifest.epoch_rotation:
        raise ConfigError(f"{where} cannot be rebuilt for other key epochs; compile it again")
    base = manifest.epoch if readout.epoch < 0 else readout.epoch
    return EpochSchedule(base, readout.rotate_frames, readout.rotate_seconds)


def _models(settings: ModelConfig, forwarding: bool, folder: Path, source_kind: str):
    """(key, model path or None, labels, task settings or None) of the [model] section. No model: the default
    job's keyed face detector, with its decoder settings; for the Fashion-MNIST frames, keycam's own CNN."""
    if settings.path:
        return MasterKey.load(settings.key), Path(settings.path), None, None
    if forwarding:
        if not settings.key:
            raise ConfigError("forward.url is set but model.key is not; name this device's key file")
        return MasterKey.load(settings.key), None, None, None
    from edge import default
    from edge.faces import LABELS, task_settings

    key = default.load_or_create_key(Path(settings.key) if settings.key else folder / "default.key")
    if source_kind == "fashion-mnist":
        return key, default.default_model(folder, key), default.LABELS, None
    return key, default.default_detector(folder, key), LABELS, task_settings()


def build_job(config: Section | None = None, *, replay: bool = False, folder: Path = DEFAULT_FOLDER,
              force: bool = False) -> Job:
    config = validated(config or default_config())
    forwarding_on = bool(config.forward.url)
    key, model_path, labels, default_task = _models(config.model, forwarding_on, folder, config.source.kind)
    threads = config.model.threads or None
    model = KeyedModel(model_path, key, threads=threads, optimisation=config.model.optimisation) if model_path else None
    task = KeyedModel(config.model.task, key, threads=threads) if config.model.task else None
    forwarding = config.forward.connect(key, model, task, config.readout.rotating) if forwarding_on else None
    manifest, where = (forwarding.manifest, forwarding.where) if forwarding else (model.manifest,
                                                                                  f"model '{model.path}'")
    context = SinkContext(key, manifest, replay=replay, force=force, labels=labels, forwarding=forwarding)
    readout = Readout.for_model(manifest, key, schedule=epoch_schedule(config.readout, manifest, where),
                                reference=config.readout.reference, keep_plain=config.record.plain_debug)
    source = config.source.build(readout)
    plain_source = None
    if not source.measured:
        plain_source, source = source, VirtualSensor(source, readout)
        readout.source_order = plain_source.channel_order
    for loaded in (m for m in (model, task) if m is not None):
        batch = loaded.manifest.input.shape[0]
        if batch not in (None, 1):
            raise ConfigError(f"model '{loaded.path}' takes batches of exactly {batch} frames, and the device runs "
                              f"one frame at a time; export it with batch 1 or a dynamic batch and compile it again")
    final = forwarding.remote.manifest if forwarding else (task.manifest if task is not None else manifest)
    settings = default_task if default_task is not None and config.task.kind == "auto" else config.task
    decoder = make_decoder(settings, final, labels)  # a model whose outputs do not fit is refused here
    pipeline = Pipeline(model, key, task=task, labels=labels, readout=readout, forward=forwarding_on,
                        manifest=manifest, decoder=decoder)
    context.decoder = decoder
    answers, frames, front = [], [], []
    for name, _ in SECTIONS.items():
        sink = getattr(config, name).build(context)
        if sink is None:
            continue
        {"answers": answers, "frames": frames, "forward": front}[sink.role].append(sink)
        if sink.role == "answers":
            context.answers.append(sink)
    return Job(config, source, plain_source, pipeline, (front or answers) + frames, key, model_path)
