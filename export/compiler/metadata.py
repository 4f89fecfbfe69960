"""What the plain model says about itself: its task, its class names, and the metadata the keyed model keeps.

Exporters write ONNX ``metadata_props``; ultralytics writes, among others, ``task`` (``detect``,
``segment``, ``classify``, ``pose``, ``obb``), ``names`` (a Python dict as a string,
``"{0: 'person', 1: 'bicycle'}"``), ``stride``, ``imgsz`` (``"[320, 320]"``) and ``batch``. The
keyed model keeps every one of them (its own ``keycam.*`` entries, the manifest and the key
fingerprint, are written after them), and the manifest records:

- ``task``: the option when given, else the metadata's when the device has a decoder family for it
  (``firmware_sim.words.TASKS``: ``classify``, ``detect``, ``segment``, ``pose``, ``obb``; anything
  else is left unknown, ``""``);
- ``labels``: class names in class-index order, from ``--labels FILE`` (one name per line) or the
  metadata's ``names`` (a dict of index to name, or a list); missing indices get their number.

Two more things ultralytics writes decide how the device reads the outputs, and the manifest has no
field for them yet (the keyed model keeps them in its metadata): :func:`kpt_shape_of` (a pose model's
``kpt_shape``, ``"[17, 3]"``: keypoints and values per keypoint) and :func:`decoder_of` (the decoder
family the head's outputs need where their shape cannot tell: RT-DETR's ``(N, 300, 6)`` of normalised
boxes against YOLOv10/YOLO26's end-to-end ``(N, 300, 6)`` of pixels; ``head`` and ``end2end``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import onnx

from export.errors import ModelError, UnsupportedModel
from firmware_sim.files import read_regular
from firmware_sim.words import TASKS

LABELS_LIMIT = 16 * 2**20  # bytes: far more than any list of class names

MAX_LABELS = 100_000


def plain_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The plain model's metadata, without any keycam entries (a plain model is not keyed)."""
    return {p.key: p.value for p in model.metadata_props if not p.key.startswith("keycam.")}


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Class names from a text file, one per line in class-index order (a trailing empty line is ignored)."""
    path = Path(path)
    data = read_regular(path, "labels file", ModelError, limit=LABELS_LIMIT)  # a FIFO or a device: refused at once
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelError(f"labels file '{path}' cannot be read as UTF-8 text ({type(error).__name__})") from None
    lines = [line.strip() for line in text.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    if not lines:
        raise ModelError(f"labels file '{path}' has no class names; write one name per line, in class-index order")
    for number, line in enumerate(lines, 1):
        if not line:
            raise ModelError(f"labels file '{path}' line {number} is empty; every class needs a name")
    return tuple(lines)


def task_of(metadata: dict[str, str], option: str | None) -> str:
    if option is not None:
        if option not in ("", *TASKS):
            raise UnsupportedModel("(options)", "task", f"task {option!r}; use one of {', '.join(TASKS)}")
        return option
    task = metadata.get("task", "").strip()
    return task if task in TASKS else ""


def labels_of(metadata: dict[str, str], option: tuple[str, ...] | str | Path | None) -> list[str]:
    if isinstance(option, (str, Path)):
        option = read_labels(option)
    if option is not None:
        labels = [str(name) for name in option]
        if not labels or any(not name.strip() or "\n" in name for name in labels):
            raise UnsupportedModel("(options)", "labels", "every class needs a one-line, non-empty name")
        return labels
    text = metadata.get("names")
    if not text:
        return []
    try:
        names = ast.literal_eval(text)  # literals only: never code
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return []  # not names as ultralytics writes them: none recorded
    if isinstance(names, (list, tuple)):
        names = dict(enumerate(names))
    if not isinstance(names, dict) or not names or not all(isinstance(k, int) and k >= 0 for k in names):
        return []
    count = max(names) + 1
    if count > MAX_LABELS:
        return []
    return [str(names.get(index, index)) for index in range(count)]


def kpt_shape_of(metadata: dict[str, str]) -> list[int] | None:
    """A pose model's ``kpt_shape`` ([keypoints, 2 or 3]) from ultralytics' metadata, or None."""
    try:
        shape = ast.literal_eval(metadata.get("kpt_shape", "").strip() or "None")  # literals only: never code
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    if (isinstance(shape, (list, tuple)) and len(shape) == 2 and all(isinstance(v, int) for v in shape)
            and shape[0] >= 1 and shape[1] in (2, 3)):
        return [int(shape[0]), int(shape[1])]
    return None


def decoder_of(metadata: dict[str, str]) -> str:
    """The device's decoder for an ultralytics head whose output shape does not tell it (``edge.tasks``):
    ``rtdetr`` for RT-DETR's head, ``end2end`` for a detect head exported end to end (YOLOv10, YOLO26 with
    ``nms=False``), else ``""`` (the shapes tell, ``[task] decoder = "auto"``)."""
    if metadata.get("head", "").strip() == "RTDETRDecoder":
        return "rtdetr"
    if metadata.get("task", "").strip() == "detect" and metadata.get("end2end", "").strip() == "True":
        return "end2end"
    return ""
