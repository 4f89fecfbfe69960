"""Conformance: the device's letterbox (edge.fitting, the model's framing) builds, from the picture, the frame the
golden vectors' letterbox cases hold (firmware_sim.framing: the picture in a field of the pad code), and its readout
is those cases' measurement, byte for byte. Then, on real photos of other aspect ratios, the whole letterboxed frame
through the edge transform equals firmware_sim's readout of it, and the pad code stands exactly where ultralytics'
LetterBox pads."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge import fitting
from edge.lab.demo import shipped_photo
from edge.sensor import to_sensor
from edge.transform import AdcTransform
from firmware_sim import vectors
from firmware_sim.framing import pad_code
from firmware_sim.keys import MasterKey
from firmware_sim.readout import readout
from firmware_sim.spec import PRESETS, ReadoutSpec

CASES = [case for case in vectors.load()["cases"] if "letterbox" in case]


def test_the_golden_vectors_hold_letterbox_cases():
    assert len(CASES) >= 6 and any(ReadoutSpec(**c["spec"]).is_bayer for c in CASES)
    assert {c["letterbox"]["pad"] for c in CASES} >= {0, 114, 255}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_the_device_letterbox_builds_the_golden_frame_and_reads_it_out_exactly(case):
    spec = ReadoutSpec(**case["spec"])
    box = case["letterbox"]
    cell = 2 if spec.is_bayer else 1
    shape = vectors.case_shape(spec, case["height"], case["width"])
    frame = np.array(case["input"], dtype=spec.input_dtype).reshape(shape)
    top, left = box["top"] * cell, box["left"] * cell
    inner_h, inner_w = box["inner"][0] * cell, box["inner"][1] * cell
    picture = frame[top:top + inner_h, left:left + inner_w]  # what the camera gave: the picture alone
    order = "rgb"  # the golden frame's own order: nothing to swap
    built = to_sensor(picture, spec, case["height"], case["width"], order, order, "letterbox", box["pad"])
    assert built.dtype == frame.dtype and np.array_equal(built, frame)
    assert box["pad_code"] == pad_code(box["pad"], spec)
    key = MasterKey(bytes.fromhex(case["key_hex"]))
    assert AdcTransform(key, spec)(built, case["epoch"]).reshape(-1).tolist() == case["output"]


@pytest.mark.parametrize("preset", ["rgb8", "raw12", "bayer10"])
@pytest.mark.parametrize("photo, size", [("coffee", (48, 64)), ("astronaut", (40, 64)), ("rocket", (64, 48))])
def test_a_letterboxed_photo_reads_out_as_firmware_sim_reads_it(preset, photo, size, key):
    spec = PRESETS[preset]
    height, width = size
    picture = cv2.imread(str(shipped_photo(photo)), cv2.IMREAD_COLOR)
    frame = to_sensor(picture, spec, height, width, "bgr", "rgb", "letterbox", 114)
    cells = 2 if spec.is_bayer else 1
    chosen = fitting.plan(picture.shape[1], picture.shape[0], width * cells, height * cells, "letterbox")
    left, top, right, bottom = chosen.pads
    code = pad_code(114, spec)
    border = np.ones(frame.shape[:2], bool)
    border[top:frame.shape[0] - bottom, left:frame.shape[1] - right] = False
    if not spec.is_bayer:
        assert border.any() and (frame[border] == code).all()  # the padding is the pad code, everywhere
        assert not (frame[~border] == code).all()  # and the picture is not
    measured = AdcTransform(key, spec)(frame, 3)
    assert measured.tobytes() == readout(frame, key, spec, 3).tobytes()
