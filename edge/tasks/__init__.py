"""Tasks: a small base (``base``), one decoder per output family, and the choice of one for a model.

``classify`` (label, score, class name), ``yolo`` ((N, 4 + classes, anchors), boxes decoded in the
model), ``ssd`` (regressors and scores over generated anchors: BlazeFace, MobileNet-SSD), ``end2end``
(YOLOv10/YOLO26 rows chosen by the model) and ``rtdetr`` (RT-DETR's queries), ``segment`` (a dense
class map: areas and contours) and ``instances`` (YOLO-seg: boxes and masks from prototypes), ``pose``
(YOLO pose: keypoints), ``obb`` (YOLO OBB: rotated boxes), and ``tensors`` (per-output summaries, for
models of unknown task); ``heads`` reads the YOLO heads' two layouts for them. :func:`make_decoder`
picks one from ``[task]`` and the manifest, checked against the model's outputs at start-up: the task
kind (``[task] kind``, else the manifest's), then among that task's decoders the one ``[task] decoder``
names, or the one whose ``fits`` accepts the output shapes.
Adding a family is one file and one line here (a new task kind: one word in ``firmware_sim.words``).
"""

from __future__ import annotations

from edge.errors import ConfigError
from edge.tasks.base import Decoder, TaskConfig
from edge.tasks.end2end import EndToEndDecoder
from edge.tasks.geometry import Geometry
from edge.tasks.instances import InstancesDecoder
from edge.tasks.obb import ObbDecoder
from edge.tasks.pose import PoseDecoder
from edge.tasks.rtdetr import RtdetrDecoder
from edge.tasks.segment import SegmentDecoder
from edge.tasks.ssd import SsdDecoder
from edge.tasks.summary import ClassifyDecoder, TensorsDecoder, summarise
from edge.tasks.yolo import YoloDecoder
from firmware_sim.manifest import Manifest, shape_text
from firmware_sim.registry import Registry

DECODERS: Registry[type[Decoder]] = Registry("decoder")
for _decoder in (TensorsDecoder, ClassifyDecoder, YoloDecoder, SsdDecoder, SegmentDecoder, InstancesDecoder, PoseDecoder,
                 ObbDecoder, EndToEndDecoder, RtdetrDecoder):
    DECODERS.add(_decoder.name, _decoder)


def choose(kind: str, decoder: str, manifest: Manifest) -> type[Decoder]:
    """The decoder class for task ``kind``: the one ``decoder`` names, or (``auto``) the one of that task whose
    ``fits`` accepts the model's outputs."""
    if decoder != "auto":
        chosen = DECODERS[decoder]
        if chosen.task != kind and kind != "tensors":
            raise ConfigError(f"task.decoder = {decoder!r} decodes {chosen.task} outputs, and the task is {kind}; "
                              f"set [task] kind = {chosen.task!r} or choose a {kind} decoder")
        return chosen
    family = [d for d in DECODERS.values() if d.task == kind]
    if not family:
        raise ConfigError(f"no decoder answers task {kind!r}; the decoders answer "
                          f"{', '.join(sorted({d.task for d in DECODERS.values()}))}")
    if len(family) == 1:
        return family[0]
    fitting = [d for d in family if d.fits(manifest.outputs)]
    if len(fitting) != 1:
        shapes = ", ".join(shape_text(o.shape) for o in manifest.outputs)
        names = ", ".join(d.name for d in family)
        raise ConfigError(f"the {kind} decoders ({names}) cannot tell which of them reads this model's outputs "
                          f"({shapes}); set [task] decoder to one of them")
    return fitting[0]


def make_decoder(settings: TaskConfig, manifest: Manifest, labels: list[str] | None = None) -> Decoder:
    """The decoder for the model whose (final) manifest is ``manifest``: [task] first, then the manifest's task,
    the decoder its exporter's head needs (``Manifest.decoder``: RT-DETR's, an end-to-end head's) and its
    keypoints' shape (``Manifest.kpt_shape``)."""
    kind = (manifest.task or "tensors") if settings.kind == "auto" else settings.kind
    names = settings.read_labels() or labels or manifest.labels or None
    _, height, width, _ = manifest.input.shape  # every role's manifest describes the measurement's input
    decoder = settings.decoder
    if decoder == "auto" and manifest.decoder in DECODERS and DECODERS[manifest.decoder].task == kind:
        decoder = manifest.decoder
    if not settings.kpt_shape and manifest.kpt_shape:
        settings = settings.model_copy(update={"kpt_shape": list(manifest.kpt_shape)})
    return choose(kind, decoder, manifest)(settings, manifest.outputs, names, (width, height))


__all__ = ["DECODERS", "Decoder", "Geometry", "TaskConfig", "choose", "make_decoder", "summarise"]
