"""One frame through the keyed pipeline: readout (when the frame is plain), model, answer.

A :class:`Pipeline` holds the keyed model (and, with a split, the task model), the run's readout
stage and the class names. Two stages, which the capture loop runs in two threads:

- :meth:`Pipeline.front`, the device's stage: the readout of a plain frame (the run's one
  :class:`~edge.sensor.Readout`; frames from the virtual sensor or a recording arrive measured), then
  the keyed (or feature) model for the frame's key epoch. Returns a :class:`~edge.frame.Result` whose
  ``tensors`` are the model's outputs.
- :meth:`Pipeline.back`, the task stage: a split's task model, and the decoder (``edge.tasks``): the
  outputs turned into the frame's answer (labels, detections in the camera frame's pixels, areas).

:meth:`Pipeline.process` runs both. The capture loop and replay both call these, so live runs and
replays compute the same results.
"""

from __future__ import annotations

import time

from edge.errors import KeyMismatch, ModelError
from edge.frame import Frame, Result
from edge.runtime import KeyedModel
from edge.sensor import Readout
from edge.tasks import Decoder, Geometry, TaskConfig, make_decoder
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest

EPOCHS_KEPT = 4  # models kept for recent key epochs: replays move forward through them


class Pipeline:
    """``forward=True``: the device stops after the readout (``model=None``, with the server's ``manifest``) or
    after a split's feature model; the result's ``payload`` is what the forwarding sink sends."""

    def __init__(self, model: KeyedModel | None, key: MasterKey, *, task: KeyedModel | None = None,
                 labels: list[str] | None = None, readout: Readout | None = None, source_order: str = "bgr",
                 forward: bool = False, manifest: Manifest | None = None, decoder: Decoder | None = None) -> None:
        self.model, self.task, self.key, self.labels = model, task, key, labels
        self.forward = forward
        if model is None and (manifest is None or not forward):
            raise ModelError("a pipeline without a local model forwards measurements: it needs the server's manifest")
        self.manifest = model.manifest if model is not None else manifest
        self.readout = readout or Readout.for_model(self.manifest, key, source_order=source_order)
        final = task.manifest if task is not None else self.manifest
        self.output_specs = final.outputs
        self.decoder = decoder or make_decoder(TaskConfig(), final, labels)
        # dense outputs back in natural order before decoding, where the decoder needs it and some are scrambled
        self._restore = self.decoder.natural_order and any(spec.kind == "dense" for spec in final.outputs)
        _, height, width, _ = self.manifest.input.shape
        self.input_size = (width, height)
        self._models = {model.epoch: model} if model is not None else {}  # the keyed (or feature) model per epoch

    def model_for(self, epoch: int) -> KeyedModel:
        """The model for measurements of key ``epoch``: only its sensor tables are rebuilt (edge.runtime)."""
        if epoch not in self._models:
            base = self.model
            self._models[epoch] = KeyedModel(base.path, self.key, threads=base.threads,
                                             optimisation=base.optimisation, epoch=epoch)
            while len(self._models) > EPOCHS_KEPT:
                self._models.pop(next(iter(self._models)))
        return self._models[epoch]

    def process(self, frame: Frame) -> Result:
        return self.back(self.front(frame))

    def front(self, frame: Frame) -> Result:
        """The device's stage: the readout (for plain frames) and the keyed (or feature) model."""
        if frame.measured:
            expected = self.manifest.key_fingerprint
            if frame.fingerprint and frame.fingerprint != expected:
                raise KeyMismatch(f"frame {frame.sequence} was measured with key {frame.fingerprint}, the model is "
                                  f"keyed for {expected}; replay it with its own model and key")
            frame = frame.replace(fingerprint=expected) if not frame.fingerprint else frame
        else:
            frame = self.readout.read(frame)
        timings = {"transform": frame.readout_ms}  # 0 for frames measured before this run (recordings)
        if self.model is None:  # forwarding the measurement itself
            return Result(frame, latency_ms=timings)
        start = time.perf_counter()
        tensors = self.model_for(frame.epoch).run(frame)
        timings["model"] = (time.perf_counter() - start) * 1e3
        return Result(frame, latency_ms=timings, tensors=tensors)

    def back(self, result: Result) -> Result:
        """The task stage (a split's task model, when there is one) and the summaries."""
        tensors, timings = result.tensors, result.latency_ms
        if self.forward:  # the answer comes from the server, through the forwarding sink
            result.payload = tensors[0] if tensors else result.measurement
            return result
        if self.task is not None:
            start = time.perf_counter()
            tensors = self.task.run(tensors[0])
            timings["task"] = (time.perf_counter() - start) * 1e3
            result.tensors = tensors
        start = time.perf_counter()
        if self._restore:  # dense outputs back in order first: the device holds the key
            tensors = (self.task or self.model_for(result.frame.epoch)).restore(tensors)
        geometry = Geometry.of(*self.input_size, result.frame.source_size)
        result.outputs = self.decoder.decode(tensors, geometry)
        timings["decode"] = (time.perf_counter() - start) * 1e3
        return result
