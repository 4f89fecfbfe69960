"""Writing keyed models and their manifests, atomically: ``KEYED.onnx`` + ``KEYED.manifest.json``,
and with a split ``KEYED.feature.onnx`` / ``KEYED.task.onnx`` with theirs. A model whose sensor
tables can follow a key epoch gets ``KEYED.epochs.npz`` too: the tables' epoch-free recipes."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.errors import ModelError
from firmware_sim.files import write_atomic

if TYPE_CHECKING:
    from export.keyify import KeyifyResult


def manifest_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".manifest.json")


def save(result: KeyifyResult, path: str | Path) -> list[Path]:
    """Write every model of ``result`` and its manifest; returns the paths written."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ModelError(f"output '{path}' should end in .onnx")
    if not path.parent.is_dir():
        raise ModelError(f"cannot write '{path}': directory '{path.parent}' does not exist")
    pairs = [(path, result.model, result.manifest)]
    if result.feature is not None:
        pairs.append((path.with_name(path.stem + ".feature.onnx"), result.feature, result.feature_manifest))
        pairs.append((path.with_name(path.stem + ".task.onnx"), result.task, result.task_manifest))
    written = []
    for target, model, manifest in pairs:
        write_atomic(target, model.SerializeToString())
        write_atomic(manifest_path(target), manifest.to_json().encode() + b"\n")
        written += [target, manifest_path(target)]
        recipes = {name: result.epoch_recipes[name] for name in manifest.sensor_tables if name in result.epoch_recipes}
        if recipes and manifest.epoch_rotation:
            buffer = io.BytesIO()
            np.savez(buffer, **{f"t{i}": recipes[name] for i, name in enumerate(manifest.sensor_tables)})
            write_atomic(epochs_path(target), buffer.getvalue())
            written.append(epochs_path(target))
    return written


def epochs_path(model_path: Path) -> Path:
    """The recipes for rebuilding the sensor tables in another key epoch (``tN`` for ``sensor_tables[N]``)."""
    return model_path.with_name(model_path.stem + ".epochs.npz")

