"""The decoder interface, and the ``[task]`` section that configures it.

A decoder turns a model's output tensors (batch of one) into the frame's answer, a JSON-able dict.
It checks the model's outputs once, at start-up (:meth:`Decoder.check`: a detector whose outputs do
not fit is refused in one line naming the expected and the actual shapes), and then decodes each
frame, mapping what it finds to the camera frame's pixels through the frame's
:class:`~edge.tasks.geometry.Geometry`. ``natural_order``: the decoder needs dense outputs back in
natural order first (the answer stage, ``edge.answers``, restores them with the key, which the device
holds). ``task``: the task kind it answers (``firmware_sim.words.TASKS``, or ``tensors``); ``fits``:
whether a model's output shapes look like its family's, so that ``[task] decoder = "auto"`` can choose
among the decoders of one task. A frame whose tensors it cannot decode is a :class:`FrameError`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from edge.errors import ConfigError
from edge.schema import Section
from edge.tasks.geometry import Geometry
from firmware_sim.manifest import OutputSpec
from firmware_sim.words import TASKS

TASK_KINDS = ("auto", *TASKS, "tensors")  # [task] kind: the manifest's task (auto), a task, or summaries only


class AnchorsConfig(Section):
    """SSD-style anchors (MediaPipe's SsdAnchors options; the defaults are BlazeFace short range's, 128x128)."""

    strides: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default=[8, 16, 16, 16], min_length=1, description="feature map stride per layer")
    min_scale: float = Field(default=0.1484375, gt=0, le=1, description="anchor scale of the first layer")
    max_scale: float = Field(default=0.75, gt=0, le=1, description="anchor scale of the last layer")
    aspect_ratios: list[Annotated[float, Field(gt=0, allow_inf_nan=False)]] = Field(default=[1.0], min_length=1, description="width / height of each anchor")
    interpolated_scale_aspect_ratio: float = Field(default=1.0, ge=0, description="an extra anchor of this aspect "
                                                                                   "ratio between scales (0: none)")
    offset: float = Field(default=0.5, ge=0, le=1, description="anchor centre inside its cell (0.5: the middle)")
    fixed_anchor_size: bool = Field(default=True, description="anchors of size 1 (the regressors carry the size)")


class TaskConfig(Section):
    """``[task]``: what the model's outputs are, and how to read them."""

    kind: Literal[TASK_KINDS] = Field(default="auto", description="auto: the model's manifest says (else: "
                                                                  "per-tensor summaries)")
    decoder: str = Field(default="auto", description="the output family, a registered decoder (edge.tasks."
                                                     "DECODERS: yolo, ssd, ...; auto: chosen by the task and the "
                                                     "output shapes)")
    score_threshold: float = Field(default=0.5, ge=0, le=1, description="detect: lowest score kept")
    iou_threshold: float = Field(default=0.45, gt=0, le=1, description="detect: overlap above which NMS keeps "
                                                                       "only the best box")
    max_detections: int = Field(default=100, ge=1, le=10_000, description="detect: most boxes per frame")
    labels: str = Field(default="", description="a file of class names, one per line (empty: the model's own)")
    names: list[str] = Field(default_factory=list, description="the class names, in class-index order, instead "
                                                               "of a labels file (empty: the model's own)")
    classes: list[str] = Field(default_factory=list, description="report only these classes (empty: all)")
    box_order: Literal["xywh", "yxhw"] = Field(default="xywh", description="ssd: the order of a regressor's first "
                                                                          "four values")
    anchors: AnchorsConfig = Field(default_factory=AnchorsConfig, description="ssd: how the anchors are made")
    rotated_nms: Literal["polygon", "probiou"] = Field(
        default="probiou", description="obb: probiou (ultralytics' own predict: Fast-NMS over the boxes' "
                                       "probabilistic IoU) or polygon (OpenCV's rotated NMS, the rectangles' IoU)")
    kpt_shape: list[int] = Field(default_factory=list, description="pose: [keypoints, values per keypoint (2: x, y; "
                                                                   "3: x, y, visibility)], ultralytics' kpt_shape "
                                                                   "(empty: from the output's channel count)")

    @field_validator("kpt_shape")
    @classmethod
    def _keypoint_shape(cls, value: list[int]) -> list[int]:
        if value and (len(value) != 2 or value[0] < 1 or value[1] not in (2, 3)):
            raise ValueError(f"task.kpt_shape = {value} is not [keypoints, 2 or 3]; give e.g. [17, 3] (the model's "
                             f"kpt_shape metadata)")
        return value

    @field_validator("decoder")
    @classmethod
    def _registered(cls, value: str) -> str:
        from edge.tasks import DECODERS  # the registry is built from the decoder modules, which import this one

        if value != "auto" and value not in DECODERS:
            raise ValueError(f"task.decoder = {value!r} is not a decoder; use auto or one of {', '.join(DECODERS)}")
        return value

    @model_validator(mode="after")
    def _labels_exist(self) -> TaskConfig:
        if self.labels and self.names:
            raise ValueError("task.labels and task.names are both set; give the class names one way")
        if self.labels and not Path(self.labels).is_file():
            raise ValueError(f"task.labels = {self.labels!r} does not exist; give a file of class names, one per line")
        return self

    def read_labels(self) -> list[str] | None:
        if self.names:
            return list(self.names)
        if not self.labels:
            return None
        try:
            names = [line.strip() for line in Path(self.labels).read_text(encoding="utf-8").splitlines()]
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"task.labels '{self.labels}' cannot be read ({error})") from None
        return [name for name in names if name]


class Decoder(ABC):
    name = "tensors"
    task = "tensors"  # the task kind it answers
    natural_order = False

    @classmethod
    def fits(cls, outputs: list[OutputSpec]) -> bool:
        """Whether outputs of these shapes look like this decoder's family (``auto`` chooses by it)."""
        return True

    def __init__(self, settings: TaskConfig, outputs: list[OutputSpec], labels: list[str] | None,
                 input_size: tuple[int, int]) -> None:
        self.settings, self.outputs, self.labels = settings, outputs, labels or []
        self.input_size = input_size  # (width, height) of the model's input, pixels
        self.check()

    def check(self) -> None:  # noqa: B027 - optional hook
        """Refuse, in one line with the expected and actual shapes, a model whose outputs do not fit."""

    def label(self, index: int) -> str:
        return self.labels[index] if index < len(self.labels) else str(index)

    @abstractmethod
    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict: ...
