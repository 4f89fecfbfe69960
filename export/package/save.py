"""Writing keyed models and their manifests, atomically: ``KEYED.onnx`` + ``KEYED.manifest.json``,
and with a split ``KEYED.feature.onnx`` / ``KEYED.task.onnx`` with theirs. A model whose sensor
tables can follow a key epoch gets ``KEYED.epochs.npz`` too: the tables' epoch-free recipes (``tN``
for ``sensor_tables[N]``). The names are ``firmware_sim.words.model_files``'s. Each model carries its own
digest and its recipes' (``stamp.py``), checked when it loads. The models and recipes reveal the sensor's
layout (the keyed model *is* the key), so they are written mode 0600 whatever the umask; the manifests,
which hold no key material, stay readable.

A name stands for all of these files (:func:`family`): a command that writes one refuses to start while any
of them exists (:func:`refuse_existing`) unless it is told to replace them (``--force``), and then removes
those the new compile does not write (:func:`remove_stale`), so no sidecar of an earlier model is left
beside a new one. :func:`stored_size` counts a model with its external data files."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from export.errors import ModelError
from export.package.stamp import stamped
from firmware_sim.files import remove_leftovers, write_together
from firmware_sim.words import MODEL_SUFFIX, model_files

if TYPE_CHECKING:
    from export.keyify import KeyifyResult

KEY_EQUIVALENT = 0o600  # a keyed model and its recipes reveal the sensor's layout: only their owner reads them


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
    files = []
    for target, model, manifest in pairs:
        beside = model_files(target)
        recipes = {name: result.epoch_recipes[name] for name in manifest.sensor_tables if name in result.epoch_recipes}
        epochs = None
        if recipes and manifest.epoch_rotation:
            buffer = io.BytesIO()
            np.savez(buffer, **{f"t{i}": recipes[name] for i, name in enumerate(manifest.sensor_tables)})
            epochs = buffer.getvalue()
        data, final = stamped(model, manifest, epochs)  # the model carries its own digest and its recipes'
        if epochs is not None:  # the recipes first: a model is never on disk without the sidecar it names
            files.append((beside.epochs, epochs, KEY_EQUIVALENT))
        files += [(target, data, KEY_EQUIVALENT), (beside.manifest, final.to_json().encode() + b"\n", None)]
    return write_family(files)


def write_family(files: list[tuple[Path, bytes, int | None]]) -> list[Path]:
    """Write a model's files together (``firmware_sim.files.write_together``: staged, then renamed into place, so a
    full disk leaves none of them and never a model without its sidecar), after removing what an earlier,
    interrupted write of any of them left beside them (private temporary files)."""
    for path, _, _ in files:
        remove_leftovers(path)
    return write_together(files)


def family(path: str | Path) -> list[Path]:
    """Every file the model name ``path`` stands for: the model, its split's feature and task models, and each
    one's manifest and epoch recipes."""
    files = model_files(path)
    models = [Path(path), files.feature, files.task]
    return [p for model in models for p in (model, model_files(model).manifest, model_files(model).epochs)]


def refuse_existing(paths: Iterable[Path], flag: str = "-o") -> None:
    """Refuse, in one line, to write over any existing file of ``paths`` (the command has no ``--force``)."""
    existing = [p for p in paths if p.exists() or p.is_symlink()]
    if existing:
        more = f" (and {len(existing) - 1} more of its files)" if len(existing) > 1 else ""
        raise ModelError(f"'{existing[0]}' already exists{more}; pass --force to replace it, or choose another {flag}")


def remove_stale(paths: Iterable[Path], written: Iterable[Path]) -> list[Path]:
    """Delete the files of ``paths`` that exist and were not just ``written`` (an earlier model's sidecars)."""
    kept = {Path(p).absolute() for p in written}
    removed = []
    for path in paths:
        if path.absolute() not in kept and path.is_file():
            path.unlink()
            removed.append(path)
    return removed


def stored_size(path: str | Path) -> int:
    """Bytes the model at ``path`` takes on disk: the file and the external data files its tensors name."""
    path = Path(path)
    total = path.stat().st_size
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not a model onnx can read: the file alone
        return total
    names = {entry.value for tensor in _tensors(model.graph) if tensor.data_location == onnx.TensorProto.EXTERNAL
             for entry in tensor.external_data if entry.key == "location"}
    for name in names:
        data = path.parent / name
        if data.is_file():
            total += data.stat().st_size
    return total


def _tensors(graph: onnx.GraphProto):
    """The tensors of a graph that can hold external data: initializers and attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for sub in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from _tensors(sub)
