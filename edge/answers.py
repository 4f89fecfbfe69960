"""The answer stage: a model's output tensors become the frame's answer, one way for every run.

::

    outputs (by name) ──► restore: dense outputs back in natural order, in the frame's own key epoch
                      ──► geometry: the window of the camera frame the model saw (the fitting rule)
                      ──► decode (edge.tasks): labels, boxes and outlines in the camera frame's pixels

One :class:`Answers` is built per run from the *final* manifest (the keyed model's, a split's task
model's, or the forwarding server's), the run's key and its decoder. The local task stage
(``edge.pipeline``) and the forwarding sink (``edge.sinks.forward``) both call it, so a frame answered
on the device and one answered by a server give the same answer. It holds nothing of another stage:
only the layouts' permutations it built for itself (``edge.restore.Permutations``, under a lock,
since a forwarding sink answers from its own thread).

Restoring is a pure function of the output specs, the key and the frame's epoch
(``edge.restore.restore_outputs``), and is done only where the decoder needs natural order and some
output is still scrambled. An output the decoder needs that is missing from the tensors is the frame's
error (:class:`~edge.errors.FrameError`), not the run's.
"""

from __future__ import annotations

import threading

import numpy as np

from edge.errors import FrameError, KeyMismatch
from edge.frame import Frame
from edge.restore import Permutations, restore_outputs
from edge.tasks import Decoder, Geometry, TaskConfig, make_decoder
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest, OutputSpec, shape_text


class Answers:
    """The run's answer stage: restore (the frame's epoch), geometry, decode."""

    def __init__(self, manifest: Manifest, decoder: Decoder, key: MasterKey | None, fit: str | None = None) -> None:
        """``fit``: the run's framing when the configuration overrides the model's (``[model] fit``)."""
        self.manifest, self.decoder = manifest, decoder
        self.fit = fit or manifest.input.fit
        self.cells = 2 if manifest.spec.is_bayer else 1  # a raw mosaic is fitted per colour plane
        self.specs = list(manifest.outputs)
        self.restoring = decoder.natural_order and any(spec.kind == "dense" for spec in self.specs)
        if self.restoring and key is None:
            raise KeyMismatch("the decoder needs the model's dense outputs in natural order, which needs the key")
        self._perms = Permutations(key) if key is not None else None
        self._lock = threading.Lock()
        _, height, width, _ = manifest.input.shape  # every role's manifest describes the measurement's input
        self.input_size = (width, height)

    @classmethod
    def for_manifest(cls, manifest: Manifest, key: MasterKey | None = None, settings: TaskConfig | None = None,
                     labels: list[str] | None = None, fit: str | None = None) -> Answers:
        """The answer stage for a model whose final manifest is ``manifest``: its decoder chosen by ``settings``
        (default: the manifest's task) and checked against its outputs (``edge.tasks.make_decoder``)."""
        return cls(manifest, make_decoder(settings or TaskConfig(), manifest, labels), key, fit)

    def geometry(self, frame: Frame) -> Geometry:
        """The mapping from the model's input pixels to the frame's camera pixels (the run's framing)."""
        return Geometry.of(*self.input_size, frame.source_size, self.fit, self.cells)

    def restore(self, outputs: dict[str, np.ndarray], frame: Frame) -> dict[str, np.ndarray]:
        """The dense outputs back in natural order, for the frame's key epoch (key holders only)."""
        with self._lock:
            return restore_outputs(outputs, self.specs, self._perms, frame.epoch)

    def tensors(self, outputs: dict[str, np.ndarray], frame: Frame) -> list[np.ndarray]:
        """The decoder's tensors, in the manifest's output order, restored where the decoder needs it."""
        missing = [spec.name for spec in self.specs if spec.name not in outputs]
        if missing:
            raise FrameError(f"the model's answer has no output {missing[0]!r} (it has "
                             f"{sorted(outputs)})")
        for spec in self.specs:
            _check_shape(outputs[spec.name], spec)
        if self.restoring:
            outputs = self.restore(outputs, frame)
        return [outputs[spec.name] for spec in self.specs]

    def __call__(self, outputs: dict[str, np.ndarray], frame: Frame) -> dict:
        """The frame's answer from its model's outputs (by name)."""
        return self.decoder.decode(self.tensors(outputs, frame), self.geometry(frame))


def _check_shape(value: np.ndarray, spec: OutputSpec) -> None:
    """A tensor of the output's rank and fixed sizes, with at least one row (a server's answer may be anything)."""
    shape = getattr(value, "shape", None)
    fits = (shape is not None and len(shape) == len(spec.shape) and len(shape) > 0 and shape[0] >= 1
            and all(want is None or want == got for want, got in zip(spec.shape[1:], shape[1:])))
    if not fits:
        raise FrameError(f"output {spec.name!r} has shape {list(shape) if shape is not None else type(value).__name__}"
                         f", and the model's manifest says {shape_text(spec.shape)}")
