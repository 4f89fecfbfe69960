"""Issue 24, starting the camera: the tuning (defect 1), the first frame after the start-up frames (2), locked
values across reopens (3), the first open retried (7), picamera2 0.3.34 (8), a busy camera and a mono sensor
refused at open (12). Each fake behaviour these need names its source line in tests/edge/sources/fake_picamera2."""

from __future__ import annotations

import os

import pytest

from edge.errors import CameraError
from edge.frame import Result
from edge.loop import CaptureLoop
from edge.sinks.base import Sink
from edge.sources.picamera import PicameraConfig, PicameraSource
from firmware_sim.spec import PRESETS
from tests.edge.sources.fake_picamera2 import BACKEND, IMX477, IMX708, OV9281, FakePicamera2
from tests.edge.sources.test_picamera import run_in_thread, source

VERSIONS = [(0, 3, 38), (0, 3, 34)]  # bookworm's picamera2, trixie's


@pytest.fixture
def tunings(tmp_path, monkeypatch):
    """libcamera's tuning folder for a Pi 4 ($LIBCAMERA_IPA_CONFIG_PATH/rpi/vc4), holding a NoIR tuning."""
    folder = tmp_path / "ipa" / "rpi" / "vc4"
    folder.mkdir(parents=True)
    (folder / "imx708_noir.json").write_text('{"version": 2.0, "target": "bcm2835", "name": "noir"}')
    monkeypatch.setenv("LIBCAMERA_IPA_CONFIG_PATH", str(tmp_path / "ipa"))
    return folder


class _Collect(Sink):
    def __init__(self) -> None:
        self.results: list = []

    def write(self, result) -> None:
        self.results.append(result)


class _Front:
    """A pipeline that passes plain frames on (the camera is what these tests look at)."""

    def front(self, frame):
        return Result(frame)

    def back(self, result):
        return result


def _loop(camera_source, **options) -> tuple[CaptureLoop, _Collect]:
    sink = _Collect()
    return CaptureLoop(camera_source, _Front(), [sink], backoff_s=0.01, **options), sink


# -- defect 1: the tuning -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_a_named_tuning_takes_effect_at_the_first_open(tunings, monkeypatch, version):
    """The manager reads $LIBCAMERA_RPI_TUNING_FILE when it starts (fake manager.py); listing the cameras starts it,
    so the variable must be set before: the IPA then loads the NoIR tuning, not the sensor's default."""
    monkeypatch.setattr(FakePicamera2, "version", version)
    with source(tuning="imx708_noir.json") as camera_source:
        camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert camera.tuning["name"] == "noir"
    assert camera.tuning_asked == str(tunings / "imx708_noir.json")  # a path, never a dict


@pytest.mark.parametrize("version", VERSIONS)
def test_a_named_tuning_survives_a_reopen(tunings, monkeypatch, version):
    """picamera2 deletes the temporary file a dict tuning went through but leaves the variable naming it; the next
    camera manager (after the last close) would read a file that is gone and list no camera."""
    monkeypatch.setattr(FakePicamera2, "version", version)
    camera_source = source(tuning="imx708_noir.json")
    for _ in range(2):
        camera_source.open()
        camera_source.read()
        camera_source.close()
    assert FakePicamera2._cm.started == 2  # the manager was dropped after each close and started again
    assert all(c.tuning["name"] == "noir" for c in FakePicamera2.instances)


def test_without_a_tuning_a_stale_variable_is_cleared_before_the_cameras_are_listed(tmp_path, monkeypatch):
    monkeypatch.setenv("LIBCAMERA_RPI_TUNING_FILE", str(tmp_path / "gone.json"))  # left by an earlier camera
    with source() as camera_source:
        camera_source.read()
    assert FakePicamera2.instances[-1].tuning == {"file": "imx708.json"}  # the sensor's own


def test_the_fake_reads_the_tuning_once_per_camera_manager(tunings):
    """One tuning a process: while a camera is open, a second one shares the manager and its tuning."""
    first = FakePicamera2(0, tuning=str(tunings / "imx708_noir.json"))
    second = FakePicamera2(0)  # tuning=None unsets the variable, too late for the running manager
    assert second.tuning["name"] == "noir" and "LIBCAMERA_RPI_TUNING_FILE" not in os.environ
    first.close(), second.close()
    assert FakePicamera2(0).tuning == {"file": "imx708.json"}  # a new manager, the variable read again


def test_the_fake_lists_no_camera_once_a_dict_tunings_file_is_gone():
    """picamera2 writes a dict tuning to a temporary file, deletes it at the end of __init__ and leaves the variable
    naming it (P2 L327-338, L373-375); after the last close the next manager reads that name, the IPA fails to load
    and the camera is not registered (fake manager.py): what keycam's path avoids."""
    camera = FakePicamera2(0, tuning=FakePicamera2.load_tuning_file("imx708_noir.json"))
    assert camera.tuning["file"] == "imx708_noir.json"  # read while the file was there
    left = os.environ["LIBCAMERA_RPI_TUNING_FILE"]
    assert not os.path.exists(left)
    camera.close()
    assert FakePicamera2.global_camera_info() == []  # a new manager, the deleted file: no camera
    with pytest.raises(RuntimeError, match="No camera number 0 found"):
        FakePicamera2(0)


# -- defect 2: the first frame comes after the start-up frames ----------------------------------------------------

@pytest.mark.parametrize("settings", [{"frame_rate": 2.0}, {"exposure_us": 300_000}])
def test_the_first_frame_waits_for_the_start_up_frames_libcamera_hides(settings):
    """With automatic gain the first frame picamera2 hands over is the 8th (fake ipa.py): 4 s at 2 frames/s, 2.4 s
    at 0.3 s exposures; a wait of three frame durations (at least 2 s) timed out on every open."""
    with source(**settings) as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
        assert frame is not None and camera.sequence == 1
        camera_source.read()
    from edge.sources.picamera_controls import frame_us

    frame_s = frame_us(camera.controls) / 1e6
    assert camera_source.first_timeout_s >= (7 + 3) * frame_s + 1
    assert camera_source.timeout_s == pytest.approx(max(1.0, 5 * frame_s) + 1)


def test_fixed_exposure_gain_and_white_balance_hide_no_start_up_frames():
    camera = FakePicamera2(0)
    camera.configure(camera.create_video_configuration(controls={"ExposureTime": 10000, "AnalogueGain": 2.0,
                                                                 "ColourGains": (1.5, 1.5)}))
    camera.start()
    assert camera.startup_frames == 0
    camera.close()
    camera = FakePicamera2(0)  # a new manager: a cold start again
    camera.configure(camera.create_video_configuration(controls={"ExposureTime": 10000}))
    camera.start()
    assert camera.startup_frames == 7  # the gain is still automatic: AGC's 6 + 1 mistrusted


# -- defect 3: locked values survive a reopen -----------------------------------------------------------------------

def test_locked_values_are_sent_again_when_the_camera_is_reopened():
    camera_source = source(lock_after_frames=3)
    with camera_source:
        for _ in range(4):
            camera_source.read()
    with camera_source:  # after a camera fault the loop closes and opens it again
        camera_source.read()
        reopened = FakePicamera2.instances[-1]
    assert reopened.controls["ExposureTime"] == 20000 and reopened.controls["ExposureTimeMode"] == 1
    assert reopened.controls["AnalogueGain"] == 2.0 and reopened.controls["ColourGains"] == (1.8, 1.5)
    assert reopened.startup_frames == 0  # everything fixed: nothing to converge


# -- defect 7: the first open is retried -----------------------------------------------------------------------------

class _BusyTwice(FakePicamera2):
    """Another program holds the camera for the first two tries."""

    tries = 0

    def __init__(self, *args, **kwargs) -> None:
        _BusyTwice.tries += 1
        FakePicamera2.busy = frozenset({IMX708.id}) if _BusyTwice.tries <= 2 else frozenset()
        super().__init__(*args, **kwargs)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_first_open_is_retried_while_another_program_holds_the_camera(monkeypatch, version):
    from types import SimpleNamespace

    monkeypatch.setattr(FakePicamera2, "version", version)
    monkeypatch.setattr(_BusyTwice, "tries", 0)
    backend = SimpleNamespace(Picamera2=_BusyTwice, Transform=BACKEND.Transform)
    camera_source = PicameraSource(32, 48, settings=PicameraConfig(), backend=backend)
    loop, sink = _loop(camera_source, max_frames=3, open_retries=3, open_backoff_s=0.01)
    finished, failure = run_in_thread(loop.run, timeout=60)
    assert finished and failure is None, failure
    assert len(sink.results) == 3 and loop.metrics.camera_failures == 2 and _BusyTwice.tries == 3
    assert not FakePicamera2._cm.running  # 0.3.34's half-open entries were replaced, and the manager dropped


def test_a_configuration_the_camera_refuses_is_not_retried():
    camera_source = source(sensor_mode="999x999")
    loop, _ = _loop(camera_source, open_retries=5, open_backoff_s=10)
    finished, failure = run_in_thread(loop.run, timeout=5)  # a retry would wait 10 s
    assert finished and isinstance(failure, CameraError) and "not one of this camera's modes" in str(failure)
    assert len(FakePicamera2.instances) == 1


def test_the_services_configuration_retries_the_first_open(monkeypatch, tmp_path):
    """keycam run: [loop] open_retries and open_backoff_s reach the loop (edge/job.py)."""
    import edge.sources.picamera as picamera
    from edge.config import Config
    from edge.job import build_job
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
    from firmware_sim.keys import MasterKey

    key = MasterKey.generate()
    key.save(tmp_path / "k.key")
    save(keyify(resnet20(), key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD, channel_order="bgr")),
         tmp_path / "keyed.onnx")
    monkeypatch.setattr(_BusyTwice, "tries", 0)
    monkeypatch.setattr(picamera, "load_backend", lambda: type(BACKEND)(Picamera2=_BusyTwice,
                                                                         Transform=BACKEND.Transform))
    config = Config()
    config.source = PicameraConfig(frame_rate=30)
    config.model.path, config.model.key = str(tmp_path / "keyed.onnx"), str(tmp_path / "k.key")
    config.results.path, config.loop.max_frames = str(tmp_path / "r.jsonl"), 2
    config.loop.open_retries, config.loop.open_backoff_s = 2, 0.01
    summary = build_job(config).run()
    assert summary["frames"] == 2 and summary["camera_failures"] == 2


# -- defect 8: picamera2 0.3.34 (trixie) -----------------------------------------------------------------------------

def test_picamera2_0_3_34_keeps_a_failed_camera_in_its_manager(monkeypatch):
    """0.3.34 registers with the manager before the open can fail, and raises IndexError for a missing camera."""
    monkeypatch.setattr(FakePicamera2, "version", (0, 3, 34))
    monkeypatch.setattr(FakePicamera2, "busy", frozenset({IMX708.id}))
    with pytest.raises(RuntimeError) as raised:
        FakePicamera2(0)
    assert raised.value.__cause__ is None and "busy" in str(raised.value.__context__)
    assert FakePicamera2._cm.running and FakePicamera2._cm.cameras  # left behind
    with pytest.raises(IndexError):
        FakePicamera2(1)


@pytest.mark.parametrize("version", VERSIONS)
def test_a_missing_camera_is_one_line_on_either_picamera2(monkeypatch, version):
    monkeypatch.setattr(FakePicamera2, "version", version)
    monkeypatch.setattr(FakePicamera2, "attached", ())
    with pytest.raises(CameraError, match=r"camera 0 is not connected \(cameras: none\).*reboot"):
        source().open()


# -- defect 12: a busy camera, a mono sensor --------------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_a_camera_held_by_another_program_says_so(monkeypatch, version):
    """"Camera __init__ sequence did not complete." hides "Device or resource busy" (0.3.38 in __cause__, 0.3.34
    only in __context__)."""
    monkeypatch.setattr(FakePicamera2, "version", version)
    monkeypatch.setattr(FakePicamera2, "busy", frozenset({IMX708.id}))
    with pytest.raises(CameraError, match=r"camera 0 is in use by another program \(Device or resource busy\)"):
        source().open()


def test_a_mono_sensor_with_a_bayer_spec_is_refused_at_open_and_not_retried(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "attached", (OV9281,))
    camera_source = PicameraSource(24, 32, PRESETS["bayer10"], PicameraConfig(), backend=BACKEND)
    loop, _ = _loop(camera_source, open_retries=5, open_backoff_s=10)
    finished, failure = run_in_thread(loop.run, timeout=5)  # a retry would wait 10 s
    assert finished and isinstance(failure, CameraError) and "monochrome sensor" in str(failure)
    assert len(FakePicamera2.instances) == 1 and not FakePicamera2.instances[0].is_open


def test_a_camera_without_autofocus_gets_no_focus_controls_by_default(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "attached", (IMX477,))
    with source() as camera_source:
        camera_source.read()
        assert "AfMode" not in FakePicamera2.instances[-1].controls
