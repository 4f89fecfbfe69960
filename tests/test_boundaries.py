"""Package boundaries: data flows edge -> firmware_sim <- export, and picamera2 stays in one module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    "package, banned",
    [
        ("firmware_sim", {"edge", "export", "onnx", "onnxruntime", "cv2", "picamera2", "torch"}),
        ("export", {"edge", "picamera2"}),
        ("edge", {"onnx", "torch"}),
    ],
)
def test_package_does_not_import(package, banned):
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & banned) for p in _modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_only_the_picamera_source_imports_picamera2():
    allowed = ROOT / "edge" / "sources" / "picamera.py"
    users = [p for pkg in ("edge", "export", "firmware_sim") for p in _modules(pkg) if "picamera2" in _imports(p)]
    assert all(p == allowed for p in users)


def test_only_the_server_imports_the_web_framework_and_nothing_imports_tritonclient():
    """Devices install neither Starlette nor uvicorn (the `server` extra); tritonclient is a test dependency."""
    server = ROOT / "edge" / "server"
    for pkg in ("edge", "export", "firmware_sim"):
        for path in _modules(pkg):
            found = _imports(path)
            assert "tritonclient" not in found, path
            if server not in path.parents:
                assert not found & {"starlette", "uvicorn"}, path


def test_edge_imports_export_only_lazily_in_the_command_line():
    """The device never needs the compiler: only the keyify command (edge/cli.py) and the default job's first-run
    compile (edge/default.py) import export, inside functions."""
    for path in _modules("edge"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top_level = {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
        top_level |= {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
        assert "export" not in top_level, path
        if path.name not in ("cli.py", "default.py"):
            assert "export" not in _imports(path), path


def test_lint_is_clean():
    """ruff (pyfakes errors, bugbear) over the whole code base, with the settings in pyproject.toml."""
    import shutil
    import subprocess
    import sys

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    done = subprocess.run([ruff, "check", "edge", "export", "firmware_sim", "tests", "benchmarks", "training"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
