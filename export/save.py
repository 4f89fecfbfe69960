"""Writing keyed models and their manifests, atomically: ``KEYED.onnx`` + ``KEYED.manifest.json``,
and with a split ``KEYED.feature.onnx`` / ``KEYED.task.onnx`` with theirs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import onnx

from export.errors import ModelFileError
from export.keyify import KeyedModels


def _atomic_write(path: Path, payload: bytes) -> None:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "xb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def manifest_path(model_path: Path) -> Path:
    return model_path.with_name(model_path.stem + ".manifest.json")


def save(result: KeyedModels, path: str | Path) -> list[Path]:
    """Write every model of ``result`` and its manifest; returns the paths written."""
    path = Path(path)
    if path.suffix != ".onnx":
        raise ModelFileError(f"output '{path}' should end in .onnx")
    if not path.parent.is_dir():
        raise ModelFileError(f"cannot write '{path}': directory '{path.parent}' does not exist")
    pairs = [(path, result.model, result.manifest)]
    if result.feature is not None:
        pairs.append((path.with_name(path.stem + ".feature.onnx"), result.feature, result.feature_manifest))
        pairs.append((path.with_name(path.stem + ".task.onnx"), result.task, result.task_manifest))
    written = []
    for target, model, manifest in pairs:
        _atomic_write(target, model.SerializeToString())
        _atomic_write(manifest_path(target), manifest.to_json().encode() + b"\n")
        written += [target, manifest_path(target)]
    return written


def load(path: str | Path) -> onnx.ModelProto:
    from export.graph import load_model

    return load_model(path)
