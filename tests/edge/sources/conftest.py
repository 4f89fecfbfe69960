"""Every test here starts from the same fake Raspberry Pi: a Pi 4 with a Camera Module 3, picamera2 0.3.38 on
libcamera 0.5.2, no camera held by another program, a fresh camera system (no camera manager running) and no
tuning variables in the environment (tests/edge/sources/fake_picamera2)."""

from __future__ import annotations

import pytest

from tests.edge.sources.fake_picamera2 import IMX708, FakeCameraManager, FakePicamera2, Platform


@pytest.fixture(autouse=True)
def pi4_with_camera_module_3(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "platform", Platform.VC4)
    monkeypatch.setattr(FakePicamera2, "attached", (IMX708,))
    monkeypatch.setattr(FakePicamera2, "libcamera_version", (0, 5, 2))
    monkeypatch.setattr(FakePicamera2, "version", (0, 3, 38))
    monkeypatch.setattr(FakePicamera2, "busy", frozenset())
    monkeypatch.setattr(FakePicamera2, "instances", [])
    monkeypatch.setattr(FakePicamera2, "timeout_after", None)
    monkeypatch.setattr(FakePicamera2, "_cm", FakeCameraManager())  # a fresh camera system for each test
    monkeypatch.delenv("LIBCAMERA_RPI_TUNING_FILE", raising=False)
    monkeypatch.delenv("LIBCAMERA_IPA_CONFIG_PATH", raising=False)
