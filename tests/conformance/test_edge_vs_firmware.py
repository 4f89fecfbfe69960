"""Conformance: the edge transform equals firmware_sim byte for byte, for every spec, size and key."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import transform as transform_module
from edge.imageio import read_frame
from edge.lab.demo import shipped_photo
from edge.transform import AdcTransform
from firmware_sim import vectors
from firmware_sim.keys import MasterKey
from firmware_sim.readout import readout
from firmware_sim.seal import SealHeader, open_sealed, seal
from firmware_sim.spec import ReadoutSpec


def _same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@st.composite
def specs(draw):
    input_bits = draw(st.sampled_from([8, 10, 12, 16]))
    return ReadoutSpec(
        channels=draw(st.sampled_from([1, 3])),
        input_bits=input_bits,
        output_bits=draw(st.sampled_from([8, 10, 12])),
        black_level=draw(st.integers(0, (1 << input_bits) - 1) | st.just(0)),
        gain_q16=draw(st.integers(0, 2**32 - 1) | st.sampled_from([65536, 4096, 1 << 20])),
    )


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs(),
    secret=st.binary(min_size=32, max_size=32),
    height=st.integers(1, 24),
    width=st.integers(1, 24),
    epoch=st.integers(0, 2**64 - 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_edge_equals_firmware_sim(spec, secret, height, width, epoch, seed):
    key = MasterKey(secret)
    rng = np.random.default_rng(seed)  # test data only; the readout never uses numpy's generators
    frame = rng.integers(0, spec.input_max + 1, (height, width, spec.channels)).astype(spec.input_dtype)
    assert _same_bytes(AdcTransform(key, spec)(frame, epoch), readout(frame, key, spec, epoch))


@pytest.mark.parametrize("case", vectors.load()["cases"], ids=lambda c: c["name"])
def test_edge_reproduces_every_golden_vector(case):
    spec = ReadoutSpec(**case["spec"])
    key = MasterKey(bytes.fromhex(case["key_hex"]))
    shape = vectors.case_shape(spec, case["height"], case["width"])  # (H, W, C), or a Bayer mosaic (2H, 2W, 1)
    frame = np.array(case["input"], dtype=spec.input_dtype).reshape(shape)
    mask = np.array(case["mask"], bool).reshape(case["height"], case["width"]) if "mask" in case else None
    before = frame.copy()
    measurement = AdcTransform(key, spec)(frame, case["epoch"], mask)
    assert np.array_equal(frame, before)  # the caller's frame is never written
    if "seal" in case:  # the sealed readout (version 4): the device's one-call AEAD equals the sensor's stream
        assert measurement.reshape(-1).tolist() == case["plain_output"]
        header = SealHeader.parse(bytes.fromhex(case["seal"]["associated_data"]))
        assert (header.run.hex(), header.counter, header.masks) == (case["seal"]["run"], case["seal"]["counter"],
                                                                    case["seal"]["masks"])
        sealed = seal(measurement, key, spec, header)
        assert sealed.data.reshape(-1).tolist() == case["output"] and sealed.tag.hex() == case["seal"]["tag"]
        assert np.array_equal(open_sealed(sealed, key, spec), measurement)
    else:
        assert measurement.reshape(-1).tolist() == case["output"]
    assert AdcTransform(key, spec).table(case["height"], case["width"], case["epoch"]).tolist() == case[
        "readout_order"
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=specs(), secret=st.binary(min_size=32, max_size=32), height=st.integers(1, 16),
       width=st.integers(1, 16), epoch=st.integers(0, 2**64 - 1), seed=st.integers(0, 2**32 - 1))
def test_a_privacy_mask_reads_out_as_firmware_sim_reads_it(spec, secret, height, width, epoch, seed):
    """Readout spec version 3: masked positions read input code 0, byte for byte as the reference model."""
    key = MasterKey(secret)
    rng = np.random.default_rng(seed)
    frame = rng.integers(0, spec.input_max + 1, (height, width, spec.channels)).astype(spec.input_dtype)
    mask = rng.random((height, width)) < 0.4
    got = AdcTransform(key, spec)(frame, epoch, mask)
    assert _same_bytes(got, readout(frame, key, spec, epoch, mask=mask))
    hidden = frame.copy()
    hidden[mask] = rng.integers(0, spec.input_max + 1, (int(mask.sum()), spec.channels))  # whatever was there
    assert _same_bytes(AdcTransform(key, spec)(hidden, epoch, mask), got)  # is never read


def test_edge_equals_firmware_sim_on_a_real_photo(key):
    frame = read_frame(shipped_photo())[40:140, 100:251]  # a 100 x 151 crop of chelsea
    assert _same_bytes(AdcTransform(key)(frame, 3), readout(frame, key, epoch=3))


def test_the_np_take_path_past_remap_limits_is_exact(key, monkeypatch):
    spec = ReadoutSpec(channels=1, input_bits=12, output_bits=8, black_level=100, gain_q16=5000)
    frame = np.random.default_rng(5).integers(0, 4096, (3, 700, 1)).astype(np.uint16)
    monkeypatch.setattr(transform_module, "_REMAP_LIMIT", 500)  # force the fallback gather
    fallback = AdcTransform(key, spec)
    assert fallback._tables(3, 700, 0).forward_map is None
    assert _same_bytes(fallback(frame), readout(frame, key, spec))
    monkeypatch.undo()
    assert _same_bytes(AdcTransform(key, spec)(frame), readout(frame, key, spec))


def test_a_frame_wider_than_remap_coordinates_is_exact(key):
    spec = ReadoutSpec(channels=1)
    frame = (np.arange(33_000) % 251).astype(np.uint8).reshape(1, 33_000, 1)  # (1, W, 1) with W > 32767
    transform = AdcTransform(key, spec)
    measurement = transform(frame)
    assert transform._tables(1, 33_000, 0).forward_map is None
    assert _same_bytes(measurement, readout(frame, key, spec))
    assert _same_bytes(transform.inverse(measurement), frame)
