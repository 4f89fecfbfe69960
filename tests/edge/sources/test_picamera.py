"""The picamera2 source against a fake that mirrors picamera2's real API (tests/edge/sources/fake_picamera2.py)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import CameraError
from edge.sources.picamera import PicameraSource
from tests.edge.sources.fake_picamera2 import FakePicamera2, scene


@pytest.fixture(autouse=True)
def one_pi4_camera(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "cameras", 1)
    monkeypatch.setattr(FakePicamera2, "platform", "VC4")


def test_main_stream_at_model_size_every_request_released():
    source = PicameraSource(32, 48, frame_rate=30, exposure_us=8000, analogue_gain=2.0, camera_factory=FakePicamera2)
    with source:
        frames = [source.read() for _ in range(5)]
        camera = FakePicamera2.last
        assert camera.config["main"] == {"format": "RGB888", "size": (48, 32)} and camera.config["lores"] is None
        assert camera.controls["FrameDurationLimits"] == (33333, 33333)
        assert camera.controls["ExposureTime"] == 8000 and camera.controls["AeEnable"] is False
    assert camera.released == 5 and camera.outstanding == 0 and camera.closed and not camera.started
    assert source.live and source.channel_order == "bgr"
    assert all(np.array_equal(f.image, scene(32, 48)) for f in frames)  # RGB888 is B,G,R in memory: kept as is
    assert [f.timestamp_ns for f in frames] == [1_000_000_000 + i * 33_333_333 for i in range(5)]


def test_lores_yuv_beside_a_larger_main_stream():
    with PicameraSource(24, 32, main_size=(640, 480), camera_factory=FakePicamera2) as source:
        frame = source.read()
        camera = FakePicamera2.last
    assert camera.config["lores"]["format"] == "YUV420" and camera.config["lores"]["size"] == (32, 24)
    assert frame.image.shape == (24, 32, 3)
    assert np.abs(frame.image.astype(int) - scene(24, 32).astype(int)).max() <= 12  # YUV 4:2:0 round trip
    assert camera.released == 1


def test_odd_model_sizes_configure_even_streams_and_fit():
    with PicameraSource(27, 27, camera_factory=FakePicamera2) as source:
        frame = source.read()
        assert FakePicamera2.last.config["main"]["size"] == (28, 28)
    assert frame.image.shape == (27, 27, 3)


def test_unpacked_raw_stream_gives_16_bit_codes():
    with PicameraSource(16, 20, raw_format="SRGGB12", camera_factory=FakePicamera2) as source:
        first, second = source.read(), source.read()
    expected = (scene(16, 20)[:, :, 0].astype(np.uint16) * 16) & 0x0FFF
    assert first.image.dtype == np.uint16 and first.image.shape == (16, 20, 1)
    assert np.array_equal(first.image[:, :, 0], expected)
    assert np.array_equal(second.image[:, :, 0], (expected + 1) & 0x0FFF)


def test_missing_camera_bad_configuration_and_timeouts_are_camera_errors():
    with pytest.raises(CameraError, match="camera 1 cannot be opened: No camera number 1 found"):
        PicameraSource(32, 32, camera_num=1, camera_factory=FakePicamera2).open()
    with pytest.raises(CameraError, match="lores stream dimensions may not exceed main stream"):
        PicameraSource(64, 64, main_size=(32, 32), camera_factory=FakePicamera2).open()
    assert FakePicamera2.last.closed  # a refused configuration still closes the camera
    source = PicameraSource(32, 32, camera_factory=FakePicamera2, timeout_s=0.5)
    source.open()
    FakePicamera2.last.fail_after = 2
    source.read()
    source.read()
    with pytest.raises(CameraError, match="no frame in 0.5 s"):
        source.read()
    source.close()
    assert FakePicamera2.last.outstanding == 0


def test_unadvertised_controls_are_refused(monkeypatch):
    import tests.edge.sources.fake_picamera2 as fake

    monkeypatch.setattr(fake, "ADVERTISED", fake.ADVERTISED - {"AnalogueGain"})  # a sensor without gain control
    with pytest.raises(CameraError, match="Control AnalogueGain is not advertised"):
        PicameraSource(32, 32, analogue_gain=2.0, camera_factory=FakePicamera2).open()


def test_without_picamera2_the_error_says_how_to_install_it():
    with pytest.raises(CameraError, match="python3-picamera2"):
        PicameraSource(32, 32).open()
