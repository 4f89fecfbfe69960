"""Issue 24, the frames a camera delivers: the crop on a Pi 5 (defect 4), autofocus (5), frame times (10), a late
frame after a timeout (11), 8-bit raw, black levels, depth rescaling and YVU420 (12), and the docs (13)."""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import CameraError, ConfigError
from edge.sensor import fit_frame
from firmware_sim.spec import PRESETS, ReadoutSpec
from tests.edge.sources.fake_picamera2 import IMX219, IMX708, ColorSpace, FakePicamera2, Platform, scene
from tests.edge.sources.test_picamera import error, ideal, ideal_cells, raw_cells, source

ROOT = Path(__file__).resolve().parents[3]


# -- defect 4: scaler_crop on a Pi 5 with main_size ---------------------------------------------------------------

@pytest.mark.parametrize("platform", [Platform.VC4, Platform.PISP])
def test_the_scaler_crop_reaches_the_models_stream_beside_a_larger_main(monkeypatch, platform):
    """On a Pi 5 with two outputs picamera2 sets rpi::ScalerCrops on configure, which libcamera prefers to
    ScalerCrop (fake ipa.py): the crop is set as ScalerCrops too."""
    monkeypatch.setattr(FakePicamera2, "platform", platform)
    crop = (1152, 648, 2304, 1296)  # the centre quarter of Camera Module 3's field of view
    with source(28, 28, main_size=(1920, 1080), scaler_crop=crop) as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert camera.crops["lores"] == crop and camera.crops["main"] == crop
    assert error(fit_frame(frame.image, 28, 28), ideal(28, 28, fov=crop)) < 3.0


def test_a_scaler_crop_with_a_raw_spec_is_refused():
    with pytest.raises(ConfigError, match="scaler_crop has no effect on a raw readout spec"):
        source(24, 32, PRESETS["bayer10"], scaler_crop=(0, 0, 2304, 1296))


# -- defect 5: autofocus ------------------------------------------------------------------------------------------

def test_auto_focus_scans_once_at_start_and_reports_its_state():
    """In Auto mode libcamera moves the lens only on AfTrigger (control_ids_core.yaml L812-837)."""
    with source(af_mode="auto") as camera_source:
        for _ in range(5):
            camera_source.read()
        camera = FakePicamera2.instances[-1]
        health = camera_source.health()
    assert camera.controls["AfMode"] == 1 and camera.focus.ignored_triggers == 0
    assert camera.focus.lens != 1.0 and health["camera_af_state"] == 2.0  # moved; focused


def test_camera_module_3_focuses_continuously_by_default_and_by_hand_with_a_lens_position():
    with source() as camera_source:
        camera_source.read()
        assert FakePicamera2.instances[-1].controls["AfMode"] == 2  # as rpicam-apps does
    with source(lens_position=0.5) as camera_source:
        camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert camera.controls["AfMode"] == 0 and camera.focus.lens == 0.5


# -- defect 10: frame times ------------------------------------------------------------------------------------------

def test_frames_carry_the_wall_clock_time_and_the_sensors_monotonic_time():
    with source() as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert frame.monotonic_ns == 1_000_000_000 + camera.clock_ns  # SensorTimestamp: CLOCK_BOOTTIME
    assert frame.timestamp_ns == camera.wall_base_ns + camera.clock_ns  # FrameWallClock: CLOCK_REALTIME
    assert abs(frame.timestamp_ns - time.time_ns()) < 60e9


def test_without_frame_wall_clock_the_time_the_frame_was_taken_is_used(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "libcamera_version", (0, 3, 2))  # before the Pi fork added FrameWallClock
    before = time.time_ns()
    with source() as camera_source:
        frame = camera_source.read()
    assert before <= frame.timestamp_ns <= time.time_ns() and frame.monotonic_ns > 0


# -- defect 11: a frame that arrives after a timeout -------------------------------------------------------------------

def test_a_frame_that_completes_after_a_timeout_is_released():
    """It completes the abandoned job between the TimeoutError and cancel_all_and_flush (picamera2 L1478-1484)."""
    with source(timeout_s=0.2) as camera_source:
        camera_source.read()
        camera = FakePicamera2.instances[-1]
        camera.stall()
        with pytest.raises(CameraError, match="delivered no frame in 0.2 s"):
            camera_source.read()
    assert camera.late == 1 and camera_source.late_frames == 1
    assert camera.outstanding == 0 and camera.leaked == 0 and not camera._job_list


# -- defect 12: raw details and YVU420 -------------------------------------------------------------------------------

BAYER8 = ReadoutSpec(spec_version=2, cfa="RGGB", channels=4, input_bits=8, output_bits=8)


def test_8_bit_raw_on_a_pi_4_is_one_byte_a_photosite(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "attached", (IMX219,))
    with source(24, 32, BAYER8, sensor_mode="1640x1232:8") as camera_source:
        raw = FakePicamera2.instances[-1].camera_configuration()["raw"]
        assert raw["format"] == "SBGGR8" and raw["stride"] == 1664  # ALIGN(1640, 32): one byte a photosite
        cells = raw_cells(camera_source, BAYER8, 24, 32)
    assert np.abs(cells - ideal_cells(24, 32, 8, IMX219)).mean() < 0.01 * 256


def test_the_sensors_black_level_is_reported_and_a_spec_that_disagrees_is_refused(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "attached", (dataclasses.replace(IMX708, black_level=4096),))
    fits = PRESETS["bayer10"].model_copy(update={"black_level": 64})  # 4096 of 65536 is 64 of 1024
    with source(24, 32, fits) as camera_source:
        camera_source.read()
        assert camera_source.health()["sensor_black_level"] == 64.0
    wrong = PRESETS["bayer10"].model_copy(update={"black_level": 16})
    with source(24, 32, wrong) as camera_source:
        with pytest.raises(ConfigError, match=r"subtracts black level 16 but the sensor reports 64/64/64/64"):
            camera_source.read()


def test_a_sensor_depth_that_differs_from_the_specs_is_said(caplog):
    with caplog.at_level(logging.WARNING), source(24, 32, PRESETS["bayer12"]) as camera_source:  # a 10-bit sensor
        camera_source.read()
    assert "10-bit raw is read as 12-bit codes (x4" in caplog.text
    assert "read as 12-bit codes" in camera_source.summary()


def test_yvu420_swaps_the_chroma_planes_not_red_and_blue():
    """Kr and Kb differ (BT.709 here), so swapping R and B after decoding is not swapping U and V."""
    with source(28, 28, main_size=(1920, 1080)) as camera_source:
        camera = FakePicamera2.instances[-1]
        camera.camera_config["lores"]["format"] = "YVU420"  # as libcamera would report a YVU420 lores
        camera_source._stream["format"] = "YVU420"
        frame = camera_source.read()
        assert camera.camera_config["colour_space"] == ColorSpace.Rec709()
    assert error(fit_frame(frame.image, 28, 28), ideal(28, 28)) < 3.0


def test_the_fake_encodes_yvu420_with_the_v_plane_first():
    rgb = scene.render((8, 4), (0, 0, 8, 4), (8, 4))
    yuv, yvu = scene.i420(rgb, 8, "Rec709", False), scene.i420(rgb, 8, "Rec709", False, v_first=True)
    assert np.array_equal(yuv[:4], yvu[:4]) and np.array_equal(yuv[4:5], yvu[5:6])  # Y kept, U and V swapped


# -- defect 13: the docs ------------------------------------------------------------------------------------------------

def test_the_docs_say_what_the_camera_source_does():
    runtime = (ROOT / "docs" / "runtime.md").read_text()
    paragraph = next(p for p in runtime.split("\n\n") if "picamera" in p)
    assert "AeEnable" not in paragraph and "camera_num" not in paragraph
    pi = (ROOT / "docs" / "raspberry-pi.md").read_text()
    tuning = next(line for line in pi.splitlines() if line.startswith("| tuning"))
    assert "LIBCAMERA_RPI_TUNING_FILE" in tuning and "one tuning a process" in tuning
    assert "camera modules report BGGR" not in pi and "imx500" in pi
    assert "hot-plug" in pi and "reboot" in pi
