"""Packaging a model for Triton Inference Server (and ``keycam serve``): a model repository entry.

    REPOSITORY/NAME/config.pbtxt     platform onnxruntime_onnx, tensors, batching, instances, keycam parameters
    REPOSITORY/NAME/V/model.onnx     the model, unchanged

The configuration is Triton's ``ModelConfig`` in protobuf text format. With a batch dimension that
is dynamic on every input and output (keyed models have one: measurements arrive as (N, H, W, C)),
``max_batch_size`` is set and the dims omit the batch, so Triton's dynamic batcher can merge the
requests of many devices into one run; otherwise ``max_batch_size`` is 0 and the dims are whole.
Dynamic non-batch dimensions are -1. A keyed model's key fingerprint, role, epoch and manifest go
into ``parameters``, where Triton's model-configuration endpoint shows them to a device that checks
the server is keyed for it. Nothing else of the key travels: the manifest holds no key material.

Adding a model to an existing repository writes the next version folder (or the one asked for);
an existing version is never overwritten without ``force``. Writes are atomic file by file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import onnx

from export.errors import ModelError
from firmware_sim.files import write_atomic
from firmware_sim.manifest import METADATA_KEY, Manifest

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
TYPES = {
    onnx.TensorProto.BOOL: "TYPE_BOOL", onnx.TensorProto.UINT8: "TYPE_UINT8", onnx.TensorProto.UINT16: "TYPE_UINT16",
    onnx.TensorProto.UINT32: "TYPE_UINT32", onnx.TensorProto.UINT64: "TYPE_UINT64", onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.INT16: "TYPE_INT16", onnx.TensorProto.INT32: "TYPE_INT32", onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.FLOAT16: "TYPE_FP16", onnx.TensorProto.FLOAT: "TYPE_FP32", onnx.TensorProto.DOUBLE: "TYPE_FP64",
}


@dataclass(frozen=True)
class TritonOptions:
    max_batch_size: int = 8
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


def config_text(model: onnx.ModelProto, name: str, options: TritonOptions) -> str:
    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = [v for v in graph.input if v.name not in initializers]
    outputs = list(graph.output)
    dynamic_batch = all(_dims(v) and _dims(v)[0] == -1 for v in inputs + outputs)
    batched = dynamic_batch and options.max_batch_size > 0
    lines = [f"name: {_quote(name)}", 'platform: "onnxruntime_onnx"', 'backend: "onnxruntime"',
             f"max_batch_size: {options.max_batch_size if batched else 0}",
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


def export_triton(model_path: str | Path, repository: str | Path, name: str,
                  options: TritonOptions = TritonOptions()) -> Path:
    """Write ``model_path`` as version V of ``name`` in ``repository``; returns the version folder."""
    model_path, repository = Path(model_path), Path(repository)
    if not NAME.match(name):
        raise ModelError(f"model name {name!r} is not valid: use letters, digits, '_', '.' and '-' (at most 128, "
                             f"starting with a letter or digit)")
    if options.max_batch_size < 0 or options.instances < 1 or options.max_queue_delay_us < 0:
        raise ModelError("--max-batch-size and --max-queue-delay-us must be >= 0 and --instances >= 1")
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
    if version < 1:
        raise ModelError(f"version {version}: Triton versions are positive integers")
    target = folder / str(version)
    if (target / "model.onnx").exists() and not options.force:
        raise ModelError(f"'{target / 'model.onnx'}' exists; choose another --version or pass --force")
    target.mkdir(parents=True, exist_ok=True)
    write_atomic(target / "model.onnx", model.SerializeToString())  # external data, if any, now inline
    write_atomic(folder / "config.pbtxt", text.encode("ascii"))
    return target
