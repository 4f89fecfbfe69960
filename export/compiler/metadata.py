"""What the plain model says about itself: its task, its class names, and the metadata the keyed model keeps.

Exporters write ONNX ``metadata_props``; ultralytics writes, among others, ``task`` (``detect``,
``segment``, ``classify``, ``pose``, ``obb``), ``names`` (a Python dict as a string,
``"{0: 'person', 1: 'bicycle'}"``), ``stride``, ``imgsz`` (``"[320, 320]"``) and ``batch``. The
keyed model keeps every one of them (its own ``keycam.*`` entries, the manifest and the key
fingerprint, are written after them), and the manifest records:

- ``task``: the option when given, else the metadata's when the device has a decoder family for it
  (``classify``, ``detect``, ``segment``; ``pose`` and ``obb`` are left unknown, ``""``);
- ``labels``: class names in class-index order, from ``--labels FILE`` (one name per line) or the
  metadata's ``names`` (a dict of index to name, or a list); missing indices get their number.
"""

from __future__ import annotations

import ast
from pathlib import Path

import onnx

from export.errors import ModelError, UnsupportedModel
from firmware_sim.words import TASKS

MAX_LABELS = 100_000


def plain_metadata(model: onnx.ModelProto) -> dict[str, str]:
    """The plain model's metadata, without any keycam entries (a plain model is not keyed)."""
    return {p.key: p.value for p in model.metadata_props if not p.key.startswith("keycam.")}


def read_labels(path: str | Path) -> tuple[str, ...]:
    """Class names from a text file, one per line in class-index order (a trailing empty line is ignored)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ModelError(f"labels file '{path}' does not exist") from None
    except (OSError, UnicodeDecodeError) as error:
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
