"""Assembling a run from a configuration: key, keyed model(s), source, pipeline and sinks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edge.config import Config, ConfigError
from edge.epochs import EpochSchedule
from edge.pipeline import Pipeline
from edge.runtime import KeyedModel
from edge.sinks.base import Sink
from edge.sinks.recorder import RecordingSink
from edge.sinks.results import ResultsSink
from edge.sources.base import Source
from firmware_sim.keys import MasterKey

DEFAULT_FOLDER = Path("keycam-demo")


@dataclass
class Job:
    source: Source
    pipeline: Pipeline
    sinks: list[Sink]
    key: MasterKey
    model_path: Path


def epoch_schedule(config: Config, model: KeyedModel) -> EpochSchedule:
    readout = config.readout
    if readout.rotate_frames and readout.rotate_seconds:
        raise ConfigError("readout.rotate_frames and readout.rotate_seconds are both set; choose one")
    if (readout.rotate_frames or readout.rotate_seconds or readout.epoch not in (-1, model.manifest.epoch)) \
            and not model.manifest.epoch_rotation:
        raise ConfigError(f"model '{model.path}' cannot be rebuilt for other key epochs; compile it again")
    base = model.manifest.epoch if readout.epoch < 0 else readout.epoch
    return EpochSchedule(base, readout.rotate_frames, readout.rotate_seconds)


def build_source(config: Config, key: MasterKey, model: KeyedModel) -> Source:
    from edge.sources.folder import FolderSource
    from edge.sources.opencv import OpenCVSource
    from edge.sources.picamera import PicameraSource
    from edge.sources.recording import RecordingSource
    from edge.sources.virtual import VirtualSensor

    manifest = model.manifest
    height, width = manifest.input.shape[1], manifest.input.shape[2]
    kind, target = config.source.kind, config.source.target
    schedule = epoch_schedule(config, model)
    if kind in ("opencv", "folder", "recording") and not target:
        raise ConfigError(f"source.kind = {kind!r} needs source.target (a path, camera index or URL)")
    if kind == "recording":
        return RecordingSource(target)
    if kind == "default":
        from edge.default import frames_folder

        folder, pattern = frames_folder()
        plain: Source = FolderSource(folder, pattern)
        virtual = True
    elif kind == "folder":
        plain, virtual = FolderSource(target), True
    elif kind == "opencv":
        plain, virtual = OpenCVSource(target), config.source.virtual
    else:
        plain = PicameraSource(height, width, camera_num=config.source.camera_num,
                               frame_rate=config.source.frame_rate, exposure_us=config.source.exposure_us)
        virtual = config.source.virtual
    if virtual:
        return VirtualSensor(plain, key, manifest.spec, height, width, schedule.base,
                             reference=config.source.reference_readout, sensor_order=manifest.input.channel_order,
                             schedule=schedule)
    return plain


def build_job(config: Config, *, replay: bool = False, folder: Path = DEFAULT_FOLDER, force: bool = False) -> Job:
    labels = None
    if config.model.path:
        if not config.model.key:
            raise ConfigError("model.path is set but model.key is not; name the key file the model was keyed for")
        key = MasterKey.load(config.model.key)
        model_path = Path(config.model.path)
    else:
        from edge.default import LABELS, default_model, load_or_create_key

        key = load_or_create_key(Path(config.model.key) if config.model.key else folder / "default.key")
        model_path = default_model(folder, key)
        labels = LABELS
    model = KeyedModel(model_path, key, threads=config.model.threads or None, optimisation=config.model.optimisation)
    task = KeyedModel(config.model.task, key, threads=config.model.threads or None) if config.model.task else None
    source = build_source(config, key, model)
    pipeline = Pipeline(model, key, task=task, labels=labels, source_order=source.channel_order,
                        schedule=epoch_schedule(config, model))
    sinks: list[Sink] = [ResultsSink(config.output.results, include_latency=not replay)]
    if config.output.record:
        sinks.append(RecordingSink(config.output.record, model.manifest.spec, key.fingerprint, force=force,
                                   record_plain=config.output.record_plain))
    elif config.output.record_plain:
        raise ConfigError("output.record_plain needs output.record (the recording the plain frames go into)")
    return Job(source, pipeline, sinks, key, model_path)
