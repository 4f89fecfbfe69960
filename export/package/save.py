"""Writing keyed models and their manifests, atomically: ``KEYED.onnx`` + ``KEYED.manifest.json``,
and with a split ``KEYED.feature.onnx`` / ``KEYED.task.onnx`` with theirs. A model whose sensor
tables can follow a key epoch gets ``KEYED.epochs.npz`` too: the tables' epoch-free recipes (``tN``
for ``sensor_tables[N]``). The names are ``firmware_sim.words.model_files``'s."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from export.errors import ModelError
from firmware_sim.files import write_atomic
from firmware_sim.words import MODEL_SUFFIX, model_files

if TYPE_CHECKING:
    from export.keyify import KeyifyResult


def save(result: KeyifyResult, path: str | Path) -> list[Path]:
    """Write every model of ``result`` and its manifest; returns the paths written."""
    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        raise ModelError(f"output '{path}' should end in {MODEL_SUFFIX}")
    if not path.parent.is_dir():
        raise ModelError(f"cannot write '{path}': directory '{path.parent}' does not exist")
    pairs = [(path, result.model, result.manifest)]
    if result.feature is not None:
        pairs.append((model_files(path).feature, result.feature, result.feature_manifest))
        pairs.append((model_files(path).task, result.task, result.task_manifest))
    written = []
    for target, model, manifest in pairs:
        beside = model_files(target)
        write_atomic(target, model.SerializeToString())
        write_atomic(beside.manifest, manifest.to_json().encode() + b"\n")
        written += [target, beside.manifest]
        recipes = {name: result.epoch_recipes[name] for name in manifest.sensor_tables if name in result.epoch_recipes}
        if recipes and manifest.epoch_rotation:
            buffer = io.BytesIO()
            np.savez(buffer, **{f"t{i}": recipes[name] for i, name in enumerate(manifest.sensor_tables)})
            write_atomic(beside.epochs, buffer.getvalue())
            written.append(beside.epochs)
    return written
