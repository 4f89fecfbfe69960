"""The fake picamera2 mirrors the real one: signatures read from picamera2's own source (its wheel,
downloaded without dependencies by scripts/setup-venv.sh and parsed, never imported: it needs libcamera)."""

from __future__ import annotations

import ast
import inspect
import sys
import zipfile
from pathlib import Path

import pytest

from tests.edge.sources.fake_picamera2 import FakePicamera2, FakeRequest

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
def real() -> tuple[dict, dict]:
    assert WHEELS, "scripts/setup-venv.sh downloads picamera2's wheel for this test"
    with zipfile.ZipFile(WHEELS[-1]) as wheel:
        camera = wheel.read("picamera2/picamera2.py").decode()
        request = wheel.read("picamera2/request.py").decode()
    return _functions(camera, "Picamera2"), _functions(request, "CompletedRequest")


@pytest.mark.parametrize("method", ["__init__", "create_video_configuration", "configure", "start", "stop",
                                    "close", "set_controls", "capture_request"])
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
    used = {"create_video_configuration", "configure", "start", "stop", "close", "capture_request"}
    assert used <= set(camera) and {"make_array", "get_metadata", "release"} <= set(request)
