"""The Open Inference Protocol (KServe v2) wire format, with Triton's binary tensor data extension.

Both directions, used by the embedded server (``edge.server``) and by the device's client
(``edge.wire.client``, for the forwarding sink), so that what one writes the other reads, and both speak to
Triton Inference Server, KServe and the official ``tritonclient`` unchanged.

An inference request or response body is a JSON object, optionally followed by raw tensor bytes::

    body = JSON header (H bytes) || tensor_0 bytes || tensor_1 bytes || ...
    HTTP header  Inference-Header-Content-Length: H      (absent: the whole body is JSON)

A tensor travels either inline as JSON (``"data"``: its elements in row-major order, flat or
nested) or as ``parameters.binary_data_size`` bytes of little-endian row-major data after the
header, in the order the tensors are listed. A request asks for binary outputs per output
(``outputs[i].parameters.binary_data``) or for all (``parameters.binary_data_output``).

Every malformed body raises :class:`ProtocolError` with the HTTP status to answer and a message
that names the field, the value (shortened) and what was expected; nothing here trusts a length or
a shape before checking it against the bytes actually received. A JSON header nesting deeper than
``MAX_DEPTH`` arrays and objects is refused before it is parsed (a tensor needs its rank plus the
document's four levels), so no decoder recurses without bound.
"""

from __future__ import annotations

import json
import math
import re
import reprlib
from dataclasses import dataclass, field

import numpy as np

from edge.errors import ProtocolError

HEADER_LENGTH = "Inference-Header-Content-Length"
MAX_DEPTH = 64  # nesting levels of arrays and objects in a JSON header
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')  # a JSON string, escapes included
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 6, 6, 60, 60


def _show(value: object) -> str:
    """A value for a message: its repr, shortened (a request can send anything, of any size)."""
    return _SHORT.repr(value)


def json_depth(text: bytes) -> int:
    """How deeply arrays and objects nest in JSON ``text`` (brackets inside strings do not count)."""
    opened = text.count(b"[") + text.count(b"{")
    if opened <= MAX_DEPTH:
        return opened  # it cannot nest deeper than it opens
    codes = np.frombuffer(_STRING.sub(b"", text), np.uint8)
    brackets = codes[np.isin(codes, np.frombuffer(b"[]{}", np.uint8))]
    steps = np.where((brackets == ord("[")) | (brackets == ord("{")), 1, -1).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))

# v2 datatype <-> numpy (little-endian on the wire). BYTES (strings) is not a camera's data.
DATATYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
# onnxruntime's element type names -> v2 datatypes
ONNX_TYPES = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16", "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64", "tensor(int8)": "INT8", "tensor(int16)": "INT16", "tensor(int32)": "INT32",
    "tensor(int64)": "INT64", "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
}


def datatype_of(array: np.ndarray) -> str:
    for name, dtype in DATATYPES.items():
        if array.dtype.kind == dtype.kind and array.dtype.itemsize == dtype.itemsize:
            return name
    raise ProtocolError(f"arrays of dtype {array.dtype} have no Open Inference Protocol datatype")


def _dtype(datatype: object, where: str) -> np.dtype:
    if datatype == "BYTES":
        raise ProtocolError(f"{where}: datatype BYTES is not supported (camera tensors are numeric)")
    if not isinstance(datatype, str) or datatype not in DATATYPES:
        raise ProtocolError(f"{where}: unknown datatype {_show(datatype)}; use one of {', '.join(DATATYPES)}")
    return DATATYPES[datatype]


def _shape(shape: object, where: str) -> tuple[int, ...]:
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise ProtocolError(f"{where}: 'shape' must be a list of integers, got {_show(shape)}")
    if any(d < 0 for d in shape):
        raise ProtocolError(f"{where}: 'shape' {shape} has a negative dimension")
    return tuple(shape)


def _json_tensor(data: object, dtype: np.dtype, shape: tuple[int, ...], where: str) -> np.ndarray:
    """JSON elements (flat or nested lists) -> array of ``dtype`` and ``shape``, kind- and range-checked."""
    if not isinstance(data, list):
        data = [data]
    try:
        values = np.array(data)
    except (ValueError, TypeError, OverflowError):  # ragged nesting
        values = np.array([], dtype=object)
    kind = values.dtype.kind
    if dtype.kind in "iu" and kind in "fO" and values.size:  # past int64 (uint64): numpy gave floats or objects
        values = _big_integers(data, values.shape)
        kind = values.dtype.kind
    allowed = {"b": "b", "i": "iu", "u": "iu", "f": "iuf"}[dtype.kind]
    if values.size and kind not in allowed or kind == "O":
        wants = {"b": "true/false values", "i": "integers", "u": "integers", "f": "numbers"}[dtype.kind]
        raise ProtocolError(f"{where}: 'data' must hold {wants} for datatype {datatype_name(dtype)} "
                            f"(flat or regularly nested lists)")
    if dtype.kind in "iu" and values.size:
        info = np.iinfo(dtype)
        if values.min() < info.min or values.max() > info.max:
            raise ProtocolError(f"{where}: 'data' has values outside {datatype_name(dtype)}'s range "
                                f"[{info.min}, {info.max}]")
    if values.size != math.prod(shape):
        raise ProtocolError(f"{where}: 'data' has {values.size} elements, shape {list(shape)} needs "
                            f"{math.prod(shape)}")
    return values.astype(dtype).reshape(shape)  # (elements,) -> shape


def _big_integers(data: list, shape: tuple[int, ...]) -> np.ndarray:
    """Integers beyond int64, element by element; anything else gives an object array (refused by the caller)."""
    try:
        flat = np.array(data, dtype=object).reshape(-1)  # nested -> (elements,)
    except (ValueError, TypeError):
        return np.array([], dtype=object)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in flat) or not 0 <= min(flat) <= max(flat) < 1 << 64:
        return np.array([], dtype=object)
    return np.array(flat.tolist(), dtype=np.uint64).reshape(shape)


def datatype_name(dtype: np.dtype) -> str:
    for name, candidate in DATATYPES.items():
        if candidate == dtype:
            return name
    return str(dtype)


def _split(body: bytes, header_length: str | int | None) -> tuple[dict, memoryview]:
    """Separate the JSON header from the binary tail."""
    if header_length is None:
        header, tail = body, memoryview(b"")
    else:
        try:
            length = int(header_length)
        except (TypeError, ValueError):
            raise ProtocolError(f"{HEADER_LENGTH} {_show(header_length)} is not an integer") from None
        if not 0 <= length <= len(body):
            raise ProtocolError(f"{HEADER_LENGTH} is {length} but the body has {len(body)} bytes")
        header, tail = body[:length], memoryview(body)[length:]
    header = bytes(header)
    depth = json_depth(header)
    if depth > MAX_DEPTH:
        raise ProtocolError(f"the JSON header nests arrays and objects {depth} levels deep, over the limit of "
                            f"{MAX_DEPTH}; send tensors flat or nested only by their shape")
    try:
        document = json.loads(header)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProtocolError(f"the JSON header is not valid JSON: {error}") from None
    except RecursionError:  # pragma: no cover - MAX_DEPTH is far below the interpreter's limit
        raise ProtocolError(f"the JSON header nests too deeply (over {MAX_DEPTH} levels)") from None
    if not isinstance(document, dict):
        raise ProtocolError(f"the JSON header must be an object, got {type(document).__name__}")
    return document, tail


def _parameters(item: dict, where: str) -> dict:
    parameters = item.get("parameters", {})
    if not isinstance(parameters, dict):
        raise ProtocolError(f"{where}: 'parameters' must be an object, got {_show(parameters)}")
    return parameters


def _tensors(items: object, tail: memoryview, what: str) -> dict[str, np.ndarray]:
    """Decode a list of tensors (JSON or binary) against the binary tail, which must be used up exactly."""
    if not isinstance(items, list) or not items:
        raise ProtocolError(f"'{what}' must be a non-empty list of tensors")
    tensors: dict[str, np.ndarray] = {}
    offset = 0
    for index, item in enumerate(items):
        where = f"{what}[{index}]"
        if not isinstance(item, dict):
            raise ProtocolError(f"{where} must be an object")
        name = item.get("name")
        if not isinstance(name, str) or not name:
            raise ProtocolError(f"{where}: 'name' must be a non-empty string")
        where = f"{what}[{index}] '{name}'"
        if name in tensors:
            raise ProtocolError(f"{where}: the tensor is given twice")
        dtype = _dtype(item.get("datatype"), where)
        shape = _shape(item.get("shape"), where)
        size = _parameters(item, where).get("binary_data_size")
        if size is not None:
            if "data" in item:
                raise ProtocolError(f"{where}: has both 'data' and parameters.binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise ProtocolError(f"{where}: binary_data_size must be a non-negative integer, got {_show(size)}")
            expected = math.prod(shape) * dtype.itemsize
            if size != expected:
                raise ProtocolError(f"{where}: binary_data_size is {size} bytes, shape {list(shape)} of "
                                    f"{datatype_name(dtype)} needs {expected}")
            if offset + size > len(tail):
                raise ProtocolError(f"{where}: the body ends {offset + size - len(tail)} bytes short of its "
                                    f"binary data (truncated request?)")
            raw = np.frombuffer(tail[offset:offset + size], dtype=dtype)
            tensors[name] = raw.reshape(shape)  # (elements,) -> shape
            offset += size
        elif "data" in item:
            tensors[name] = _json_tensor(item["data"], dtype, shape, where)
        else:
            raise ProtocolError(f"{where}: has neither 'data' nor parameters.binary_data_size")
    if offset != len(tail):
        raise ProtocolError(f"the body has {len(tail) - offset} bytes after the last tensor's binary data")
    return tensors


def _encode(document: dict, what: str, tensors: dict[str, np.ndarray], binary: dict[str, bool]) -> tuple[bytes, int | None]:
    """``document`` with ``tensors`` listed under ``what`` (binary ones after the header); (body, header length)."""
    items, blobs = [], []
    for name, array in tensors.items():
        item = {"name": name, "datatype": datatype_of(array), "shape": list(array.shape)}
        if binary.get(name, False):
            data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
            item["parameters"] = {"binary_data_size": len(data)}
            blobs.append(data)
        else:
            item["data"] = array.reshape(-1).tolist()  # shape -> (elements,)
        items.append(item)
    document[what] = items
    header = json.dumps(document, separators=(",", ":")).encode()
    if not blobs:
        return header, None
    return b"".join([header, *blobs]), len(header)


# -- requests ---------------------------------------------------------------------------------


@dataclass
class InferRequest:
    inputs: dict[str, np.ndarray]
    id: str | None = None
    outputs: dict[str, bool] | None = None  # requested output -> binary; None: all outputs
    binary_output: bool = False  # the request-wide default for outputs not listed
    parameters: dict = field(default_factory=dict)


def decode_request(body: bytes, header_length: str | int | None = None) -> InferRequest:
    document, tail = _split(body, header_length)
    request_id = document.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(f"'id' must be a string, got {_show(request_id)}")
    parameters = _parameters(document, "the request")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise ProtocolError(f"parameters.binary_data_output must be true or false, got {_show(binary_output)}")
    inputs = _tensors(document.get("inputs"), tail, "inputs")
    outputs = None
    if "outputs" in document:
        items = document["outputs"]
        if not isinstance(items, list):
            raise ProtocolError(f"'outputs' must be a list, got {_show(items)}")
        outputs = {}
        for index, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("name"), str):
                raise ProtocolError(f"outputs[{index}] must be an object with a string 'name'")
            binary = _parameters(item, f"outputs[{index}]").get("binary_data", binary_output)
            if not isinstance(binary, bool):
                raise ProtocolError(f"outputs[{index}]: binary_data must be true or false, got {_show(binary)}")
            outputs[item["name"]] = binary
    return InferRequest(inputs, request_id, outputs, binary_output, parameters)


def encode_request(inputs: dict[str, np.ndarray], *, request_id: str | None = None, binary: bool = True,
                   outputs: list[str] | None = None, parameters: dict | None = None) -> tuple[bytes, int | None]:
    """A request body and its header length (None when the body is pure JSON). Outputs come back binary."""
    document: dict = {}
    if request_id is not None:
        document["id"] = request_id
    params = dict(parameters or {})
    if outputs is None:
        params["binary_data_output"] = True
    else:
        document["outputs"] = [{"name": n, "parameters": {"binary_data": True}} for n in outputs]
    if params:
        document["parameters"] = params
    return _encode(document, "inputs", inputs, {name: binary for name in inputs})


# -- responses --------------------------------------------------------------------------------


@dataclass
class InferResponse:
    model_name: str
    model_version: str
    outputs: dict[str, np.ndarray]
    id: str | None = None
    parameters: dict = field(default_factory=dict)


def encode_response(response: InferResponse, binary: dict[str, bool]) -> tuple[bytes, int | None]:
    """A response body and its header length (None when pure JSON); ``binary`` says which outputs go binary."""
    document: dict = {"model_name": response.model_name, "model_version": response.model_version}
    if response.id is not None:
        document["id"] = response.id
    if response.parameters:
        document["parameters"] = response.parameters
    return _encode(document, "outputs", response.outputs, binary)


def decode_response(body: bytes, header_length: str | int | None = None) -> InferResponse:
    document, tail = _split(body, header_length)
    if "error" in document:
        raise ProtocolError(f"the server answered with an error: {document['error']}", status=500)
    outputs = _tensors(document.get("outputs"), tail, "outputs")
    return InferResponse(str(document.get("model_name", "")), str(document.get("model_version", "")), outputs,
                         document.get("id"), document.get("parameters") or {})
