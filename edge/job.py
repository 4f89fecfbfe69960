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
from firmware_sim.manifest import Manifest

DEFAULT_FOLDER = Path("keycam-demo")


@dataclass
class Job:
    source: Source
    pipeline: Pipeline
    sinks: list[Sink]
    key: MasterKey
    model_path: Path | None


def epoch_schedule(config: Config, manifest: Manifest, where: str) -> EpochSchedule:
    readout = config.readout
    if readout.rotate_frames and readout.rotate_seconds:
        raise ConfigError("readout.rotate_frames and readout.rotate_seconds are both set; choose one")
    if (readout.rotate_frames or readout.rotate_seconds or readout.epoch not in (-1, manifest.epoch)) \
            and not manifest.epoch_rotation:
        raise ConfigError(f"{where} cannot be rebuilt for other key epochs; compile it again")
    base = manifest.epoch if readout.epoch < 0 else readout.epoch
    return EpochSchedule(base, readout.rotate_frames, readout.rotate_seconds)


def build_source(config: Config, key: MasterKey, manifest: Manifest, where: str) -> Source:
    from edge.sources.folder import FolderSource
    from edge.sources.opencv import OpenCVSource
    from edge.sources.picamera import PicameraSource
    from edge.sources.recording import RecordingSource
    from edge.sources.virtual import VirtualSensor

    height, width = manifest.input.shape[1], manifest.input.shape[2]
    kind, target = config.source.kind, config.source.target
    schedule = epoch_schedule(config, manifest, where)
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
    forward = config.forward
    if config.model.path:
        if not config.model.key:
            raise ConfigError("model.path is set but model.key is not; name the key file the model was keyed for")
        key = MasterKey.load(config.model.key)
        model_path = Path(config.model.path)
    elif forward.url:
        if not config.model.key:
            raise ConfigError("forward.url is set but model.key is not; name this device's key file")
        key = MasterKey.load(config.model.key)
        model_path = None
    else:
        from edge.default import LABELS, default_model, load_or_create_key

        key = load_or_create_key(Path(config.model.key) if config.model.key else folder / "default.key")
        model_path = default_model(folder, key)
        labels = LABELS
    threads = config.model.threads or None
    model = KeyedModel(model_path, key, threads=threads, optimisation=config.model.optimisation) if model_path else None
    task = KeyedModel(config.model.task, key, threads=threads) if config.model.task else None
    results: Sink = ResultsSink(config.output.results, include_latency=not replay)
    if forward.url:
        sink, manifest, where = _forwarding(config, key, model, task, labels, results)
    else:
        sink, manifest, where = results, model.manifest, f"model '{model.path}'"
    source = build_source(config, key, manifest, where)
    pipeline = Pipeline(model, key, task=task, labels=labels, source_order=source.channel_order,
                        schedule=epoch_schedule(config, manifest, where), forward=bool(forward.url),
                        manifest=manifest)
    sinks: list[Sink] = [sink]
    if config.output.record:
        sinks.append(RecordingSink(config.output.record, manifest.spec, key.fingerprint, force=force,
                                   record_plain=config.output.record_plain))
    elif config.output.record_plain:
        raise ConfigError("output.record_plain needs output.record (the recording the plain frames go into)")
    return Job(source, pipeline, sinks, key, model_path)


def _forwarding(config: Config, key: MasterKey, model: KeyedModel | None, task: KeyedModel | None,
                labels: list[str] | None, results: Sink) -> tuple[Sink, Manifest, str]:
    """The forwarding sink for ``[forward]``; returns it, the manifest the device reads out for, and its name."""
    from edge.remote import V2Client
    from edge.server import read_token
    from edge.sinks.forward import ForwardSink, connect
    from edge.spool import Spool

    forward = config.forward
    if not forward.model:
        raise ConfigError("forward.url is set but forward.model is not; name the model on the server")
    if task is not None:
        raise ConfigError("model.task and forward.url are both set: with forwarding the task model runs on the "
                          "server; leave model.task empty")
    if model is not None and model.manifest.role != "feature":
        raise ConfigError(f"model '{model.path}' is a {model.manifest.role} model; with forward.url, model.path is "
                          f"a split's feature model (its task model on the server), or empty to forward measurements")
    token = read_token(forward.token_file) if forward.token_file else None
    client = V2Client(forward.url, token=token, timeout_s=forward.timeout_s)
    remote = connect(client, forward.model, forward.version, key.fingerprint, forward.spool, forward.connect_s)
    if model is None:
        if remote.manifest.role != "full":
            raise ConfigError(f"the server's model '{forward.model}' is a {remote.manifest.role} model; forwarding "
                              f"measurements needs a full keyed model (or set model.path to the split's feature model)")
        manifest, where = remote.manifest, f"the server's model '{forward.model}'"
        if config.readout.rotate_frames or config.readout.rotate_seconds:
            raise ConfigError("key rotation with forwarded measurements would need the server to rebuild its sensor "
                              "tables; rotate keys with a split model (forward the features to the task model)")
    else:
        if remote.manifest.role != "task":
            raise ConfigError(f"the server's model '{forward.model}' is a {remote.manifest.role} model; a feature "
                              f"model's output goes to its task model")
        manifest, where = model.manifest, f"model '{model.path}'"
    spool = Spool(forward.spool, max_entries=forward.spool_max_frames, max_bytes=int(forward.spool_max_mb * (1 << 20)))
    sink = ForwardSink(client, remote, results, spool, labels=labels, when_full=forward.when_full,
                       inflight=forward.inflight, retry_min_s=forward.retry_min_s, retry_max_s=forward.retry_max_s,
                       drain_s=forward.drain_s, device_id=forward.device_id)
    return sink, manifest, where
