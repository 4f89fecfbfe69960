"""One frame through the keyed pipeline: ADC transform (when the frame is plain), model, result.

A :class:`Pipeline` holds the keyed model (and, with a split, the task model), the key's transform
and the class names; :meth:`Pipeline.process` turns a source frame into a :class:`Result` and the
measurement it computed on. The capture loop and replay both call it, so live runs and replays
compute the same results.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from edge.epochs import EpochSchedule
from edge.errors import KeyMismatch, ModelError
from edge.runtime import KeyedModel
from edge.sources.base import Frame, to_sensor
from edge.transform import AdcTransform
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest


@dataclass
class Result:
    sequence: int
    timestamp_ns: int
    origin: str
    fingerprint: str
    epoch: int
    outputs: dict
    latency_ms: dict = field(default_factory=dict)
    error: str | None = None  # a forwarded frame the server refused (its outputs are then empty)
    payload: np.ndarray | None = field(default=None, repr=False, compare=False)  # forwarding: what leaves the device

    def to_dict(self, include_latency: bool = True) -> dict:
        record = {"sequence": self.sequence, "timestamp_ns": self.timestamp_ns, "origin": self.origin,
                  "fingerprint": self.fingerprint, "epoch": self.epoch, "outputs": self.outputs}
        if self.error is not None:
            record["error"] = self.error
        if include_latency:
            record["latency_ms"] = {k: round(v, 3) for k, v in self.latency_ms.items()}
        return record


def summarise(name: str, output: np.ndarray, kind: str, labels: list[str] | None) -> dict:
    """A JSON-able summary of one output of one frame (batch of one)."""
    if kind == "plain" and output.ndim == 2:  # a classifier: (1, classes)
        logits = output[0].astype(np.float64)
        probabilities = np.exp(logits - logits.max())
        probabilities /= probabilities.sum()
        label = int(np.argmax(logits))
        summary = {"label": label, "score": round(float(probabilities[label]), 6)}
        if labels and label < len(labels):
            summary["class"] = labels[label]
        return summary
    if output.ndim == 4:  # a dense map (scrambled or not): the class histogram does not depend on the layout
        counts = np.bincount(output[0].argmax(axis=0).reshape(-1), minlength=output.shape[1])
        return {"shape": list(output.shape), "class_pixels": counts.tolist()}
    return {"shape": list(output.shape), "mean": round(float(output.mean()), 6)}


@dataclass
class Staged:
    """A frame between the device stage and the task stage."""

    frame: Frame
    measurement: np.ndarray
    plain: np.ndarray | None
    outputs: list
    timings: dict
    epoch: int = 0


class Pipeline:
    """``forward=True``: the device stops after the transform (``model=None``, with the server's ``manifest``) or
    after a split's feature model; the result's ``payload`` is what the forwarding sink sends."""

    def __init__(self, model: KeyedModel | None, key: MasterKey, *, task: KeyedModel | None = None,
                 labels: list[str] | None = None, source_order: str = "bgr",
                 schedule: EpochSchedule | None = None, forward: bool = False,
                 manifest: Manifest | None = None) -> None:
        self.model, self.task, self.key, self.labels = model, task, key, labels
        self.forward = forward
        if model is None and (manifest is None or not forward):
            raise ModelError("a pipeline without a local model forwards measurements: it needs the server's manifest")
        manifest = model.manifest if model is not None else manifest
        self.manifest = manifest
        self.transform = AdcTransform(key, manifest.spec)
        self.height, self.width = manifest.input.shape[1], manifest.input.shape[2]
        self.source_order = source_order
        self.schedule = schedule or EpochSchedule(manifest.epoch)  # for plain frames read out here
        final = task.manifest if task is not None else manifest
        self.output_specs = final.outputs
        self.transform.prepare(self.height, self.width, manifest.epoch)
        self._models = {model.epoch: model} if model is not None else {}  # the keyed (or feature) model per key epoch, rebuilt on demand

    def model_for(self, epoch: int) -> KeyedModel:
        """The model for measurements of key ``epoch``: only its sensor tables are rebuilt (edge.runtime)."""
        if epoch not in self._models:
            base = self.model
            self._models[epoch] = KeyedModel(base.path, self.key, threads=base.threads,
                                             optimisation=base.optimisation, epoch=epoch)
            while len(self._models) > 4:  # keep a few epochs: replays move forward through them
                self._models.pop(next(iter(self._models)))
        return self._models[epoch]

    def process(self, frame: Frame) -> tuple[Result, np.ndarray]:
        result, measurement, _ = self.process_with_plain(frame)
        return result, measurement

    def process_with_plain(self, frame: Frame) -> tuple[Result, np.ndarray, np.ndarray | None]:
        """Also returns the plain sensor frame (None for frames that arrive measured), for debug recording only."""
        return self.back(self.front(frame))

    def front(self, frame: Frame) -> Staged:
        """The device's stage: ADC transform (for plain frames) and the keyed (or feature) model."""
        image = None
        timings = {}
        start = time.perf_counter()
        if frame.measured:
            if frame.fingerprint and frame.fingerprint != self.manifest.key_fingerprint:
                raise KeyMismatch(f"frame {frame.sequence} was measured with key {frame.fingerprint}, the model is "
                                  f"keyed for {self.manifest.key_fingerprint}; replay it with its own model and key")
            measurement = frame.image
            epoch = frame.epoch
        else:
            image = to_sensor(frame.image, self.manifest.spec, self.height, self.width, self.source_order,
                              self.manifest.input.channel_order)
            epoch = self.schedule.epoch(frame.sequence, frame.timestamp_ns)
            measurement = self.transform(image, epoch)
        timings["transform"] = (time.perf_counter() - start) * 1e3
        if self.model is None:  # forwarding the measurement itself
            return Staged(frame, measurement, image, [], timings, epoch)
        start = time.perf_counter()
        outputs = self.model_for(epoch).run(measurement)
        timings["model"] = (time.perf_counter() - start) * 1e3
        return Staged(frame, measurement, image, outputs, timings, epoch)

    def back(self, staged: Staged) -> tuple[Result, np.ndarray, np.ndarray | None]:
        """The task stage (a split's task model, when there is one) and the result."""
        outputs, timings, frame = staged.outputs, staged.timings, staged.frame
        if self.forward:  # the answer comes from the server, through the forwarding sink
            payload = outputs[0] if outputs else staged.measurement
            result = Result(frame.sequence, frame.timestamp_ns, frame.origin, self.manifest.key_fingerprint,
                            staged.epoch, {}, timings, payload=payload)
            return result, staged.measurement, staged.plain
        if self.task is not None:
            start = time.perf_counter()
            outputs = self.task.run(outputs[0])
            timings["task"] = (time.perf_counter() - start) * 1e3
        summaries = {spec.name: summarise(spec.name, out, spec.kind, self.labels)
                     for spec, out in zip(self.output_specs, outputs)}
        result = Result(frame.sequence, frame.timestamp_ns, frame.origin, self.manifest.key_fingerprint,
                        staged.epoch, summaries, timings)
        return result, staged.measurement, staged.plain
