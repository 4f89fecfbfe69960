"""The fake picamera2 mirrors the real one: signatures read from picamera2's own source (its wheel,
downloaded without dependencies by scripts/setup-venv.sh and parsed, never imported: it needs libcamera)."""

from __future__ import annotations

import ast
import inspect
import re
import sys
import zipfile
from pathlib import Path

import pytest

from tests.edge.sources.fake_picamera2 import FakePicamera2, FakeRequest

SOURCE_NAMES = {"camera": "picamera2/picamera2.py", "request": "picamera2/request.py",
                "controls": "picamera2/controls.py", "job": "picamera2/job.py"}

WHEELS = sorted((Path(sys.prefix) / "share" / "picamera2").glob("picamera2-*.whl"))


def _functions(source: str, class_name: str) -> dict[str, ast.FunctionDef]:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            return {f.name: f for f in node.body if isinstance(f, ast.FunctionDef)}
    raise AssertionError(f"class {class_name} not found")


def _params(function: ast.FunctionDef) -> list[str]:
    return [a.arg for a in function.args.args]


@pytest.fixture(scope="module")
def sources() -> dict[str, str]:
    assert WHEELS, "scripts/setup-venv.sh downloads picamera2's wheel for this test"
    with zipfile.ZipFile(WHEELS[-1]) as wheel:
        return {name: wheel.read(path).decode() for name, path in SOURCE_NAMES.items()}


@pytest.fixture(scope="module")
def real(sources) -> tuple[dict, dict]:
    return _functions(sources["camera"], "Picamera2"), _functions(sources["request"], "CompletedRequest")


@pytest.mark.parametrize("method", ["__init__", "create_video_configuration", "configure", "start", "stop",
                                    "close", "set_controls", "capture_request", "camera_configuration",
                                    "cancel_all_and_flush", "global_camera_info", "load_tuning_file", "wait"])
def test_camera_methods_take_the_real_parameters(real, method):
    camera, _ = real
    assert method in camera, f"picamera2 has no Picamera2.{method}"
    ours = list(inspect.signature(getattr(FakePicamera2, method)).parameters)
    assert ours == _params(camera[method]), f"{method}: fake {ours} vs real {_params(camera[method])}"


@pytest.mark.parametrize("method", ["make_array", "get_metadata", "release", "acquire"])
def test_request_methods_exist_with_the_real_parameters(real, method):
    _, request = real
    assert method in request
    assert list(inspect.signature(getattr(FakeRequest, method)).parameters) == _params(request[method])


def test_the_source_uses_only_methods_the_real_api_has(real):
    camera, request = real
    used = {"create_video_configuration", "configure", "start", "close", "capture_request", "camera_configuration",
            "cancel_all_and_flush", "global_camera_info", "set_controls", "sensor_modes", "wait"}
    assert used <= set(camera) and {"make_array", "get_metadata", "release"} <= set(request)
    source = (Path(__file__).resolve().parents[3] / "edge" / "sources" / "picamera.py").read_text()
    calls = set(re.findall(r"camera\.(\w+)\(", source)) | set(re.findall(r"Picamera2\.(\w+)\(", source))
    assert calls <= used, calls - used  # nothing the fake has and picamera2 lacks


# The behaviours the fake models, found in picamera2 0.3.38's own text (the fake's docstrings give the lines).
BEHAVIOURS = [
    ("camera", "return job.get_result(timeout=timeout)"),  # a timed-out job is not taken off the list
    ("job", "return self._future.result(timeout=timeout)"),
    ("camera", "self.dispatch_functions([self.stop_], wait=True, immediate=True)"),  # stop() queues behind it
    ("camera", "for job in self._job_list:\n                job.cancel()"),  # cancel_all_and_flush
    ("camera", '{"format": "YUV420", "size": main["size"], "preserve_ar": False}'),  # lores shares main's crop
    ("camera", 'if main["size"][0] < 1280 or main["size"][1] < 720:'),  # the video colour space rule
    ("camera", '"FrameDurationLimits": (33333, 33333),'),  # a fixed 30 fps unless told otherwise
    ("camera", '{"format": self.sensor_format, "size": main["size"]}, raw'),  # raw={} adds a raw stream
    ("camera", "score += 1500 * score_format(ar, mode_ar)"),  # how the sensor mode is chosen
    ("camera", 'raise RuntimeError("lores stream must be YUV")'),
    ("camera", 'stream_config["stride"] = libcamera_stream_config.stride'),  # sizes and strides come back
    ("camera", "controls[libcamera.controls.ExposureTimeMode] = 0 if exposure_time == 0 else 1"),
    ("camera", "key=lambda cam: (\"/usb\" not in cam['Id'], cam['Id']), reverse=True"),
    ("request", 'raise RuntimeError("CompletedRequest: lock now has negative ref_count")'),
    ("controls", 'raise RuntimeError(f"Control {name} is not advertised by libcamera")'),
    # issue 24: the tuning variable set only in __init__, the dict's temporary file deleted, the manager on first use
    ("camera", 'os.environ["LIBCAMERA_RPI_TUNING_FILE"] = tuning_file.name'),
    ("camera", "tuning_file.close()  # delete the temporary file"),
    ("camera", "self._cms = libcamera.CameraManager.singleton()"),
    ("camera", "if self.cameras == {}:\n                self.running = False"),  # the last close drops it
    ("camera", "# All is good, now safe to register with the CameraManager.\n        self._cm.add(camera_num, self)"),
    ("camera", 'raise RuntimeError("Camera __init__ sequence did not complete.") from e'),
    ("camera", "metadata.status == libcamera.FrameMetadata.Status.Success"),  # start-up frames dropped
    ("camera", 'self.set_controls({"ScalerCrops": scaler_crops})'),  # set on configure, over ScalerCrop
    ("camera", "finished_jobs.append(self._job_list.pop(0))"),  # a finished job leaves the list before its signal
    ("camera", "return job.get_result(timeout=timeout)"),  # wait(job, timeout)
]


@pytest.mark.parametrize("where, text", BEHAVIOURS, ids=[t[:40] for _, t in BEHAVIOURS])
def test_each_modelled_behaviour_is_in_picamera2s_source(sources, where, text):
    assert text in sources[where], f"picamera2's {SOURCE_NAMES[where]} no longer says: {text}"
