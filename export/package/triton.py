"""Packaging a model for Triton Inference Server (and ``keycam serve``): a model repository entry.

    REPOSITORY/NAME/config.pbtxt     platform onnxruntime_onnx, tensors, batching, instances, keycam parameters
    REPOSITORY/NAME/V/model.onnx     the model, unchanged

The configuration is Triton's ``ModelConfig`` in protobuf text format. With a batch dimension that
is dynamic on every input and output (keyed models have one: measurements arrive as (N, H, W, C)),
``max_batch_size`` is set (default 8) and the dims omit the batch, so Triton's dynamic batcher can
merge the requests of many devices into one run; a model whose batch is fixed (ultralytics' and
TFLite's default exports) gets ``max_batch_size`` 0 and whole dims, and asking it for a batch size
above 0 is refused (Triton would refuse to load it). Values past the configuration's integer fields
(``max_batch_size`` and ``count`` are int32) are refused too. Dynamic non-batch dimensions are -1. A keyed model's key fingerprint, role, epoch and manifest go
into ``parameters``, where Triton's model-configuration endpoint shows them to a device that checks
the server is keyed for it. Nothing else of the key travels: the manifest holds no key material.

Adding a model to an existing repository writes the next version folder (or the one asked for);
an existing version is never overwritten without ``force``. Writes are atomic file by file.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import onnx

from export.errors import ModelError
from export.package.stamp import stamped
from firmware_sim.errors import KeycamError
from firmware_sim.files import write_atomic
from firmware_sim.manifest import METADATA_KEY, Manifest

DEFAULT_BATCH = 8
INT32_MAX = (1 << 31) - 1  # ModelConfig.max_batch_size and ModelInstanceGroup.count are int32
UINT64_MAX = (1 << 64) - 1  # ModelDynamicBatching.max_queue_delay_microseconds
INT64_MAX = (1 << 63) - 1  # version numbers
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TYPES = {
    onnx.TensorProto.BOOL: "TYPE_BOOL", onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64", onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.DOUBLE: "TYPE_FP64",
}


@dataclass(frozen=True)
class TritonOptions:
    max_batch_size: int | None = None  # None: DEFAULT_BATCH for a model whose batch is dynamic, else 0
    instances: int = 1
    kind: str = "cpu"  # cpu | gpu
    max_queue_delay_us: int = 100
    version: int | None = None  # None: the next free version
    force: bool = False


def _quote(text: str) -> str:
    """A protobuf text-format string literal: printable ASCII as is, everything else as octal escapes."""
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if 0x20 <= byte < 0x7F and char not in '"\\':
            out.append(char)
        else:
            out.append(f"\\{byte:03o}")
    return '"' + "".join(out) + '"'


def _dims(value: onnx.ValueInfoProto) -> list[int]:
    return [d.dim_value if d.HasField("dim_value") else -1 for d in value.type.tensor_type.shape.dim]


def _tensor(value: onnx.ValueInfoProto, batched: bool, what: str) -> str:
    element = value.type.tensor_type.elem_type
    if element not in TYPES:
        raise ModelError(f"{what} '{value.name}' has ONNX element type "
                             f"{onnx.TensorProto.DataType.Name(element)}, which the server cannot carry")
    dims = _dims(value)[1:] if batched else _dims(value)
    return (f"  {{\n    name: {_quote(value.name)}\n    data_type: {TYPES[element]}\n"
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}")


def _batch_size(inputs: list, outputs: list, asked: int | None) -> int:
    """Triton's ``max_batch_size`` for these tensors: what was asked (default 8) where every input and output has
    a dynamic first dimension; 0 otherwise, where a batch size above 0 is refused in one line."""
    fixed = next((v for v in inputs + outputs if not (_dims(v) and _dims(v)[0] == -1)), None)
    if fixed is None:
        return DEFAULT_BATCH if asked is None else asked
    if asked:
        dims = _dims(fixed)
        shape = "(" + ", ".join("N" if d == -1 else str(d) for d in dims) + ")"
        what = f"a fixed batch of {dims[0]}" if dims and dims[0] > 0 else "no batch dimension"
        raise ModelError(f"--max-batch-size {asked}: the model has {what} ('{fixed.name}' is {shape}), so Triton "
                         f"cannot batch its requests; pass --max-batch-size 0 (or leave it out), or export the "
                         f"model with a dynamic batch")
    return 0


def config_text(model: onnx.ModelProto, name: str, options: TritonOptions) -> str:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    outputs = list(graph.output)
    max_batch_size = _batch_size(inputs, outputs, options.max_batch_size)
    batched = max_batch_size > 0
    lines = [f"name: {_quote(name)}", 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"',
             f"max_batch_size: {max_batch_size}",
             "input [\n" + ",\n".join(_tensor(v, batched, "input") for v in inputs) + "\n]",
             "output [\n" + ",\n".join(_tensor(v, batched, "output") for v in outputs) + "\n]",
             f"instance_group [\n  {{\n    count: {options.instances}\n    kind: KIND_{options.kind.upper()}\n  }}\n]"]
    if batched:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {options.max_queue_delay_us}\n}}")
    metadata = {p.key: p.value for p in model.metadata_props}
    if METADATA_KEY in metadata:
        manifest = Manifest.from_json(metadata[METADATA_KEY], source=f"the manifest of model '{name}'")
        parameters = {"keycam_fingerprint": manifest.key_fingerprint, "keycam_role": manifest.role,
                      "keycam_epoch": str(manifest.epoch), "keycam_manifest": manifest.to_json()}
        for key, value in parameters.items():
            lines.append(f"parameters {{\n  key: {_quote(key)}\n  value {{ string_value: {_quote(value)} }}\n}}")
    return "\n".join(lines) + "\n"


def _check_numbers(options: TritonOptions) -> None:
    """Refuse numbers Triton's configuration cannot hold (its parser rejects an int32 field past 2**31-1)."""
    for flag, value, low, high in (("--max-batch-size", options.max_batch_size, 0, INT32_MAX),
                                   ("--instances", options.instances, 1, INT32_MAX),
                                   ("--max-queue-delay-us", options.max_queue_delay_us, 0, UINT64_MAX),
                                   ("--version", options.version, 1, INT64_MAX)):
        if value is not None and not low <= value <= high:
            raise ModelError(f"{flag} {value} is out of range: Triton's configuration takes {low} to {high}")


def export_triton(model_path: str | Path, repository: str | Path, name: str,
                  options: TritonOptions = TritonOptions()) -> Path:
    """Write ``model_path`` as version V of ``name`` in ``repository``; returns the version folder."""
    model_path, repository = Path(model_path), Path(repository)
    if not NAME.match(name):
        raise ModelError(f"model name {name!r} is not valid: use letters, digits, '_', '.' and '-' (at most 128, "
                             f"starting with a letter or digit)")
    _check_numbers(options)
    if options.kind not in ("cpu", "gpu"):
        raise ModelError(f"instance kind {options.kind!r}; use cpu or gpu")
    if not model_path.is_file():
        raise ModelError(f"model '{model_path}' does not exist")
    try:
        model = onnx.load(str(model_path))
    except Exception as error:  # onnx raises DecodeError and others for files that are not models
        raise ModelError(f"'{model_path}' is not an ONNX model: {str(error).splitlines()[0]}") from None
    try:
        onnx.checker.check_model(model)  # an empty file parses as an empty model: check what was read
    except Exception as error:  # onnx.checker.ValidationError and friends
        raise ModelError(f"'{model_path}' is not a valid ONNX model ({str(error).splitlines()[0]})") from None
    if not model.graph.input or not model.graph.output:
        raise ModelError(f"'{model_path}' has no graph inputs or outputs; it is not a model a server can run")
    text = config_text(model, name, options)
    folder = repository / name
    if repository.exists() and not repository.is_dir():
        raise ModelError(f"repository '{repository}' exists and is not a directory")
    existing = sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit()) \
        if folder.is_dir() else []
    version = options.version if options.version is not None else (existing[-1] + 1 if existing else 1)
    target = folder / str(version)
    if (target / "model.onnx").exists() and not options.force:
        raise ModelError(f"'{target / 'model.onnx'}' exists; choose another --version or pass --force")
    _write_version(folder, target, _serialized(model, model_path))
    write_atomic(folder / "config.pbtxt", text.encode("ascii"))
    return target


def _serialized(model: onnx.ModelProto, path: Path) -> bytes:
    """The model's bytes, external data inline; a keyed model re-stamped with its own digest (stamp.py)."""
    entry = next((p for p in model.metadata_props if p.key == METADATA_KEY), None)
    if entry is None:
        return model.SerializeToString()
    try:
        manifest = Manifest.from_json(entry.value, source=f"the manifest of '{path}'")
    except KeycamError as error:
        raise ModelError(str(error)) from None
    return stamped(model, manifest)[0]


def _write_version(folder: Path, target: Path, data: bytes) -> None:
    """Write VERSION/model.onnx as one step: into a hidden folder beside it, then renamed into place (an
    interrupted export leaves no half version); mode 0600 in 0700 folders (a keyed model is the key)."""
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    staging = folder / f".{target.name}.{secrets.token_hex(4)}.tmp"
    staging.mkdir(mode=0o700)
    try:
        write_atomic(staging / "model.onnx", data, mode=0o600)
        if target.exists():  # --force: the old version goes once the new one is complete
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
