"""The server's model as the device knows it, and everything the device checks against it.

A server may answer anything, so nothing it says is used before it is checked:

- its model metadata (:func:`parse_metadata`): a JSON object with exactly one input and at least one
  output, each with a name, a datatype of the protocol and a shape of integers; the keycam manifest's
  outputs among the model's outputs. Anything else is an :class:`~edge.errors.AnswerError` in one line;
- each inference answer (:meth:`RemoteModel.check_answer`): every output the metadata lists, with its
  datatype, rank, fixed dimensions and one row per row sent; its size bounded before it is read
  (:meth:`RemoteModel.answer_limit`);
- what must not change while frames wait for it (:meth:`RemoteModel.changes`): the key, the role, the
  readout spec (a sealed spec and an unsealed one with the same datatype and shape included), the layout
  policy, the input and outputs of the manifest, the split, the decoding (task, labels, decoder), the
  input the requests are encoded for, and the key epoch where the model's tables depend on it. A server
  whose model changed in any of these keeps every frame waiting and raises the alarm
  (``edge.sinks.forward``). A retrained model with the same contract, or the same model re-exported or
  quantised, is not a change: the frames waiting fit it as they are.

The description is cached in the spool folder (``edge.wire.client.SERVER_CACHE``); a cache written
before the outputs' datatypes and shapes were recorded still loads, and its answers are checked by name
and row count only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from edge.errors import AnswerError
from edge.wire.codec import DATATYPES, datatype_name
from firmware_sim.manifest import Manifest

UNBOUNDED_ANSWER = 64 << 20  # bytes: an answer whose size the metadata does not fix (a dynamic dimension)
ANSWER_ALLOWANCE = 8  # an answer may take this many times its binary size (JSON text, headers)
CONTRACT = {"role", "key_fingerprint", "policy", "spec", "input", "outputs", "split", "task", "labels", "decoder",
            "kpt_shape", "batch"}  # the manifest's fields a waiting frame or its answer depends on


@dataclass(frozen=True)
class RemoteModel:
    """What the device needs to know about the server's model."""

    name: str
    version: str
    input_name: str
    input_datatype: str
    input_shape: list[int]
    output_names: list[str]
    manifest: Manifest
    output_datatypes: list[str] = field(default_factory=list)  # by output ([]: a cache from an older keycam)
    output_shapes: list[list[int]] = field(default_factory=list)  # -1: a dynamic dimension

    def to_json(self) -> str:
        document = dict(self.__dict__)
        document["manifest"] = json.loads(self.manifest.to_json())
        return json.dumps(document, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RemoteModel:
        """The cached description; ValueError, KeyError or TypeError when it is damaged."""
        document = json.loads(text)
        document["manifest"] = Manifest.model_validate(document["manifest"])
        remote = cls(**document)
        tensors = [(remote.input_name, remote.input_datatype, remote.input_shape)]
        tensors += list(zip(remote.output_names, remote.output_datatypes or ["FP32"] * len(remote.output_names),
                            remote.output_shapes or [[]] * len(remote.output_names)))
        if not (isinstance(remote.name, str) and isinstance(remote.version, str) and remote.output_names
                and all(_tensor_fits(*tensor) for tensor in tensors)):
            raise ValueError("the cached server description has fields of the wrong type")
        return remote

    def changes(self, now: RemoteModel) -> list[str]:
        """What differs in ``now`` (the server's model as it is now) that matters to the frames waiting for it."""
        was_m, now_m = self.manifest, now.manifest
        changed = [name for name in sorted(CONTRACT) if getattr(was_m, name) != getattr(now_m, name)]
        words = {"key_fingerprint": f"keyed for {now_m.key_fingerprint}", "role": f"a {now_m.role} model",
                 "spec": f"readout spec {now_m.spec.describe()} (the device reads out {was_m.spec.describe()})",
                 "policy": f"layout policy {now_m.policy}"}
        said = [words.get(name, f"its manifest's {name}") for name in changed]
        if (was_m.sensor_tables or now_m.sensor_tables) and was_m.epoch != now_m.epoch:
            said.append(f"key epoch {now_m.epoch} (the device reads out for {was_m.epoch})")
        wire = (self.input_name, self.input_datatype, self.input_shape, self.output_names)
        if wire != (now.input_name, now.input_datatype, now.input_shape, now.output_names):
            said.append(f"input '{now.input_name}' {now.input_datatype} {now.input_shape}, outputs {now.output_names} "
                        f"(the device sends '{self.input_name}' {self.input_datatype} {self.input_shape})")
        return said

    def answer_limit(self, rows: int) -> int:
        """The most bytes an answer for ``rows`` rows may take: its outputs' binary size times an allowance."""
        if not self.output_shapes:
            return UNBOUNDED_ANSWER
        total = 0
        for datatype, shape in zip(self.output_datatypes, self.output_shapes):
            dims = [rows if i == 0 and d < 0 else d for i, d in enumerate(shape)]
            if any(d < 0 for d in dims):
                return UNBOUNDED_ANSWER
            total += math.prod(dims) * DATATYPES[datatype].itemsize
        return (1 << 20) + ANSWER_ALLOWANCE * total

    def check_answer(self, outputs: dict[str, np.ndarray], rows: int, where: str) -> dict[str, np.ndarray]:
        """The answer's outputs, each as the metadata says it is (extra outputs left out); AnswerError otherwise."""
        checked = {}
        for index, name in enumerate(self.output_names):
            if name not in outputs:
                raise AnswerError(f"{where}: the answer has no output {name!r} (it has {sorted(outputs)[:8]}), and "
                                  f"the server's model lists it")
            array = outputs[name]
            shape = self.output_shapes[index] if self.output_shapes else None
            datatype = self.output_datatypes[index] if self.output_datatypes else None
            if datatype is not None and datatype_name(array.dtype) != datatype:
                raise AnswerError(f"{where}: output {name!r} is {datatype_name(array.dtype)}, and the server's model "
                                  f"says {datatype}")
            batched = shape[0] < 0 if shape else (self.input_shape[:1] == [-1] and array.ndim > 0)
            fits = shape is None or (array.ndim == len(shape) and all(d < 0 or d == a for d, a in zip(shape, array.shape)))
            if not fits or (batched and array.shape[0] != rows):
                wanted = f"{shape} (-1: any)" if shape is not None else "one row per row sent"
                raise AnswerError(f"{where}: output {name!r} has shape {list(array.shape)} for {rows} row(s) sent, "
                                  f"and the server's model says {wanted}")
            checked[name] = array
        return checked


def _tensor_fits(name: object, datatype: object, shape: object) -> bool:
    return (isinstance(name, str) and bool(name) and datatype in DATATYPES and isinstance(shape, list)
            and all(isinstance(d, int) and not isinstance(d, bool) and d >= -1 for d in shape))


def _tensor(item: object, where: str) -> tuple[str, str, list[int]]:
    """One tensor of the metadata (name, datatype, shape), or AnswerError naming what is wrong."""
    if not isinstance(item, dict):
        raise AnswerError(f"{where} is {type(item).__name__}, not an object with name, datatype and shape")
    name, datatype, shape = item.get("name"), item.get("datatype"), item.get("shape")
    if isinstance(shape, list):
        shape = [-1 if isinstance(d, int) and not isinstance(d, bool) and d < -1 else d for d in shape]
    if not _tensor_fits(name, datatype, shape):
        raise AnswerError(f"{where} is {_short(item)}; a tensor needs a non-empty 'name', a 'datatype' of the "
                          f"protocol ({', '.join(DATATYPES)}) and a 'shape' of integers")
    return name, datatype, shape


def _short(value: object) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_metadata(document: object, name: str, version: str, manifest: Manifest, where: str) -> RemoteModel:
    """The server's model from its metadata ``document`` (any JSON value) and its keycam ``manifest``."""
    if not isinstance(document, dict):
        raise AnswerError(f"{where}: the model metadata is a JSON {type(document).__name__}, not an object")
    inputs, outputs = document.get("inputs"), document.get("outputs")
    if not isinstance(inputs, list) or len(inputs) != 1:
        count = len(inputs) if isinstance(inputs, list) else "no list of"
        raise AnswerError(f"{where}: the model metadata lists {count} inputs; a keyed model takes one")
    if not isinstance(outputs, list) or not outputs:
        raise AnswerError(f"{where}: the model metadata lists no outputs")
    input_name, input_datatype, input_shape = _tensor(inputs[0], f"{where}: inputs[0]")
    tensors = [_tensor(item, f"{where}: outputs[{index}]") for index, item in enumerate(outputs)]
    names = [name for name, _, _ in tensors]
    missing = [spec.name for spec in manifest.outputs if spec.name not in names]
    if missing:
        raise AnswerError(f"{where}: the model metadata has no output {missing[0]!r}, which its keycam manifest "
                          f"lists (it has {names[:8]})")
    versions = document.get("versions")
    if not version:
        latest = versions[-1] if isinstance(versions, list) and versions else ""
        if not isinstance(latest, (str, int)) or isinstance(latest, bool):
            raise AnswerError(f"{where}: the model metadata's versions are {_short(versions)}, not names")
        version = str(latest)
    return RemoteModel(name, version, input_name, input_datatype, input_shape, names,
                       manifest, [datatype for _, datatype, _ in tensors], [shape for _, _, shape in tensors])


def manifest_text(metadata: object, config: object) -> str | None:
    """The keycam manifest's JSON from the model metadata's parameters (``keycam serve``), else from Triton's
    model configuration (``keycam export triton``); None when neither carries one."""
    for document, entry_of in ((metadata, lambda e: e), (config, lambda e: e.get("string_value")
                                                        if isinstance(e, dict) else None)):
        parameters = document.get("parameters") if isinstance(document, dict) else None
        if isinstance(parameters, dict) and "keycam_manifest" in parameters:
            text = entry_of(parameters["keycam_manifest"])
            if isinstance(text, str) and text:
                return text
    return None
