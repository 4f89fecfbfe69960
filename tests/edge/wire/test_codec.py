"""The wire codec alone: whatever one side encodes, the other decodes to the same arrays, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.wire.codec import (DATATYPES, InferResponse, ProtocolError, decode_request, decode_response, encode_request,
                      encode_response)

arrays = st.sampled_from(sorted(DATATYPES)).flatmap(
    lambda name: hnp.arrays(DATATYPES[name], hnp.array_shapes(min_dims=1, max_dims=4, max_side=5),
                            elements={"allow_nan": False} if DATATYPES[name].kind == "f" else None))


@settings(max_examples=200, deadline=None)
@given(tensors=st.lists(arrays, min_size=1, max_size=3), binary=st.booleans(), request_id=st.none() | st.text())
def test_requests_round_trip(tensors, binary, request_id):
    inputs = {f"t{i}": a for i, a in enumerate(tensors)}
    body, length = encode_request(inputs, request_id=request_id, binary=binary, outputs=["y"])
    decoded = decode_request(body, length)
    assert decoded.id == request_id and decoded.outputs == {"y": True}
    for name, array in inputs.items():
        assert decoded.inputs[name].dtype == array.dtype.newbyteorder("<")
        np.testing.assert_array_equal(decoded.inputs[name], array)


@settings(max_examples=100, deadline=None)
@given(tensors=st.lists(arrays, min_size=1, max_size=3), binary=st.lists(st.booleans(), min_size=3, max_size=3))
def test_responses_round_trip_with_mixed_binary_and_json_outputs(tensors, binary):
    outputs = {f"o{i}": a for i, a in enumerate(tensors)}
    wanted = {f"o{i}": b for i, b in enumerate(binary)}
    body, length = encode_response(InferResponse("m", "2", outputs, "id-1"), wanted)
    decoded = decode_response(body, length)
    assert (decoded.model_name, decoded.model_version, decoded.id) == ("m", "2", "id-1")
    for name, array in outputs.items():
        np.testing.assert_array_equal(decoded.outputs[name], array)


def test_big_endian_arrays_travel_little_endian():
    array = np.arange(6, dtype=">u2").reshape(2, 3)
    body, length = encode_request({"x": array})
    assert body[length:] == np.arange(6, dtype="<u2").tobytes()
    np.testing.assert_array_equal(decode_request(body, length).inputs["x"], array)


def test_error_documents_and_missing_outputs():
    with pytest.raises(ProtocolError, match="answered with an error: boom"):
        decode_response(b'{"error": "boom"}')
    with pytest.raises(ProtocolError, match="'outputs' must be a non-empty list"):
        decode_response(b'{"model_name": "m"}')
    with pytest.raises(ProtocolError, match="given twice"):
        decode_request(b'{"inputs": [{"name": "a", "datatype": "INT8", "shape": [1], "data": [1]},'
                       b'{"name": "a", "datatype": "INT8", "shape": [1], "data": [1]}]}')
