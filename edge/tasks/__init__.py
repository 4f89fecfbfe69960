"""Tasks: a small base (``base``), one decoder per output family, and the choice of one for a model.

``classify`` (label, score, class name), ``yolo`` ((N, 4 + classes, anchors), boxes decoded in the
model), ``ssd`` (regressors and scores over generated anchors: BlazeFace, MobileNet-SSD), ``segment``
(a dense class map: areas and contours) and ``tensors`` (per-output summaries, for models of unknown
task). :func:`make_decoder` picks one from ``[task]`` and the manifest, checked against the model's
outputs at start-up. Adding a family is one file and one line here.
"""

from __future__ import annotations

from edge.errors import ConfigError
from edge.registry import Registry
from edge.tasks.base import Decoder, TaskConfig, shape_text
from edge.tasks.geometry import Geometry
from edge.tasks.segment import SegmentDecoder
from edge.tasks.ssd import SsdDecoder
from edge.tasks.summary import ClassifyDecoder, TensorsDecoder, summarise
from edge.tasks.yolo import YoloDecoder
from firmware_sim.manifest import Manifest

DECODERS: Registry[type[Decoder]] = Registry("decoder")
for _decoder in (TensorsDecoder, ClassifyDecoder, YoloDecoder, SsdDecoder, SegmentDecoder):
    DECODERS.add(_decoder.name, _decoder)


def _detector(manifest: Manifest) -> str:
    """yolo or ssd, from the output shapes."""
    shapes = [o.shape for o in manifest.outputs]
    if len(shapes) == 1 and len(shapes[0]) == 3:
        return "yolo"
    if len(shapes) == 2 and all(len(s) == 3 for s in shapes):
        return "ssd"
    raise ConfigError(f"a detector's outputs are (N, 4 + classes, anchors) (yolo) or regressors and scores (ssd); "
                      f"this model gives {', '.join(shape_text(s) for s in shapes)}; set [task] kind or decoder")


def make_decoder(settings: TaskConfig, manifest: Manifest, labels: list[str] | None = None) -> Decoder:
    """The decoder for the model whose (final) manifest is ``manifest``: [task] first, then the manifest's task."""
    kind = (manifest.task or "tensors") if settings.kind == "auto" else settings.kind
    if kind == "detect":
        kind = _detector(manifest) if settings.decoder == "auto" else settings.decoder
    names = settings.read_labels() or labels or manifest.labels or None
    _, height, width, _ = manifest.input.shape  # every role's manifest describes the measurement's input
    return DECODERS[kind](settings, manifest.outputs, names, (width, height))


__all__ = ["DECODERS", "Decoder", "Geometry", "TaskConfig", "make_decoder", "summarise"]
