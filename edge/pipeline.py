"""One measured frame through the keyed models: the device's stage, then the task stage.

A frame arrives here measured (the run's one readout stage read it out at the source:
``edge.sources.virtual``, or a recording holds measurements) and moves forward only:

- :meth:`Pipeline.front`, the device's stage (its own thread): the keyed (or a split's feature) model
  for the frame's key epoch, and nothing else. Returns a :class:`~edge.frame.Result` whose ``tensors``
  are the model's outputs by name. With forwarding and no local model it only hands the measurement on.
- :meth:`Pipeline.back`, the task stage (the calling thread): a split's task model, then the run's
  :class:`~edge.answers.Answers` (restore in the frame's epoch, geometry, decode), then, when the run tracks,
  its :class:`~edge.events.Tracking` (track ids, events, zones). With forwarding it only names the payload that
  leaves the device; the forwarding sink answers (and tracks) with the same ``Answers`` (and ``Tracking``).

The two stages share nothing but the result handed from one to the other: the device stage owns the
models per key epoch, the task stage the task model and the answer stage. :meth:`Pipeline.process`
runs both; the capture loop and replay both call these, so live runs and replays compute the same results.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge.answers import Answers
from edge.errors import KeyMismatch, ModelError
from edge.frame import Frame, Result
from edge.runtime import KeyedModel
from edge.seal import Opener
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest

if TYPE_CHECKING:
    from edge.events import Tracking

EPOCHS_KEPT = 4  # models kept for recent key epochs: replays move forward through them


class Pipeline:
    """``model``: the keyed (or feature) model, None to forward measurements (then ``manifest`` is the server's);
    ``task``: a split's task model run here; ``answers``: the run's answer stage (default: built from the final
    manifest with the default ``[task]`` settings); ``forward``: the answers come from a server; ``tracking``: the
    run's tracking stage (``edge.events``), run on each answer here (None: no tracking, or the run forwards)."""

    def __init__(self, model: KeyedModel | None, key: MasterKey, *, task: KeyedModel | None = None,
                 answers: Answers | None = None, forward: bool = False, manifest: Manifest | None = None,
                 labels: list[str] | None = None, tracking: Tracking | None = None) -> None:
        if model is None and (manifest is None or not forward):
            raise ModelError("a pipeline without a local model forwards measurements: it needs the server's manifest")
        self.model, self.task, self.key, self.forward = model, task, key, forward
        self.manifest = model.manifest if model is not None else manifest  # what the measurements are read out for
        final = task.manifest if task is not None else self.manifest
        self.answers = None if forward else answers or Answers.for_manifest(final, key, labels=labels)
        self._models = {model.epoch: model} if model is not None else {}  # the device stage's, per key epoch
        self.tracking = None if forward else tracking  # the task stage's, after the answers
        # a sealed spec: frames are opened here, right before the model (forwarded frames leave sealed)
        self.opener = Opener(key, self.manifest.spec) if self.manifest.spec.is_sealed and model is not None else None

    @property
    def input_size(self) -> tuple[int, int]:
        """(width, height) of the measurement the models read."""
        _, height, width, _ = self.manifest.input.shape
        return width, height

    # -- the device's stage -------------------------------------------------------------------------------------

    def model_for(self, epoch: int) -> KeyedModel:
        """The model for measurements of key ``epoch``: only its sensor tables are rebuilt (edge.runtime); a model
        with none reads every epoch as it is."""
        if self.model.epoch_free:
            return self.model
        if epoch not in self._models:
            base = self.model
            self._models[epoch] = KeyedModel(base.path, self.key, threads=base.threads,
                                             optimisation=base.optimisation, epoch=epoch)
            while len(self._models) > EPOCHS_KEPT:
                self._models.pop(next(iter(self._models)))
        return self._models[epoch]

    def front(self, frame: Frame) -> Result:
        """The device's stage: the keyed (or feature) model for the frame's epoch. The frame is a measurement."""
        if not frame.measured:
            raise ModelError(f"frame {frame.sequence} is a plain frame; the pipeline takes measurements (the run's "
                             f"readout stage, edge.sensor.Readout, reads frames out at the source)")
        if not frame.fingerprint:  # a recording that does not say its key: the model's, checked by its answers
            frame = frame.replace(fingerprint=self.manifest.key_fingerprint)
        timings = {"transform": frame.readout_ms}  # 0 for frames measured before this run (recordings)
        if self.model is None:  # forwarding the measurement itself (sealed or not) to the server's model
            reason = self.manifest.refusal(frame.fingerprint, frame.epoch)
            if reason is not None:
                raise KeyMismatch(f"frame {frame.sequence} does not fit the server's model: {reason}")
            return Result(frame, latency_ms=timings)
        reason = self.manifest.refusal(frame.fingerprint)
        if reason is not None:  # another key's measurements: the run's error, not one frame's
            raise KeyMismatch(f"frame {frame.sequence} does not fit model '{self.model.path}': {reason}; use the "
                              f"frame's own model and key")
        opened = frame  # what the model reads; the frame itself goes on as it came (sealed, for recordings)
        if self.opener is not None:  # refused (FrameError) unless its seal opens with the key, once
            start = time.perf_counter()
            opened = self.opener.open(frame)
            timings["open"] = (time.perf_counter() - start) * 1e3
        elif frame.seal is not None:
            raise KeyMismatch(f"frame {frame.sequence} is sealed, and model '{self.model.path}' reads an unsealed "
                              f"spec; use the model compiled for the sensor's sealed spec")
        start = time.perf_counter()
        model = self.model_for(frame.epoch)
        tensors = model.named(model.run(opened))
        timings["model"] = (time.perf_counter() - start) * 1e3
        return Result(frame, latency_ms=timings, tensors=tensors)

    # -- the task stage -----------------------------------------------------------------------------------------

    def back(self, result: Result) -> Result:
        """The task stage: a split's task model, when it runs here, then the answer."""
        tensors, timings = result.tensors, result.latency_ms
        if self.forward:  # the answer comes from the server, through the forwarding sink
            result.payload = next(iter(tensors.values())) if tensors else result.measurement
            return result
        if self.task is not None:
            start = time.perf_counter()
            tensors = self.task.named(self.task.run(next(iter(tensors.values()))))
            timings["task"] = (time.perf_counter() - start) * 1e3
            result.tensors = tensors
        start = time.perf_counter()
        result.outputs = self.answers(tensors, result.frame)
        timings["decode"] = (time.perf_counter() - start) * 1e3
        if self.tracking is not None:  # track ids, events and zones, in frame order (timings["track"])
            self.tracking(result)
        return result

    def process(self, frame: Frame) -> Result:
        return self.back(self.front(frame))
