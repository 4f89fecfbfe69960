"""Package boundaries (docs/architecture.md): data flows edge -> firmware_sim <- export, the device core stays
small, and what runs beside the device (lab, server, command line) stays out of it."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "export", "firmware_sim")
OUTSIDE_CORE = ("edge/lab", "edge/server", "edge/cli", "edge/web")  # edge's rooms that are not the device core
MAX_LINES = 400


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Absolute module names ``path`` imports (``a.b.c``), at the top of the module or anywhere."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _roots(path: Path) -> set[str]:
    return {name.split(".")[0] for name in _imports(path)}


def _modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def _name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _device_core() -> list[Path]:
    return [p for p in _modules("edge") if not any(str(p.relative_to(ROOT)).startswith(o) for o in OUTSIDE_CORE)]


@pytest.mark.parametrize(
    "package, banned",
    [
        ("firmware_sim", {"edge", "export", "onnx", "onnxruntime", "cv2", "picamera2", "torch"}),
        ("export", {"edge", "picamera2"}),
    ],
)
def test_package_does_not_import(package, banned):
    offenders = {str(p.relative_to(ROOT)): sorted(_roots(p) & banned) for p in _modules(package)}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_device_core_never_imports_onnx_or_torch_and_the_lab_imports_torch_only_when_it_runs():
    """The device reads models through onnxruntime alone. The lab, beside the device, may read ONNX graphs (its
    attacker interprets one in PyTorch: edge/lab/attacks/finetune.py) and imports torch only inside functions."""
    core = {str(p.relative_to(ROOT)): sorted(_roots(p) & {"onnx", "torch"}) for p in _device_core()}
    assert {k: v for k, v in core.items() if v} == {}
    outside = [p for p in _modules("edge") if p not in _device_core()]
    eager = {str(p.relative_to(ROOT)) for p in outside if "torch" in {n.split(".")[0] for n in _imports(p, True)}}
    assert eager == set()
    assert any("onnx" in _roots(p) for p in outside)  # the check sees what it should


def test_the_device_core_never_imports_the_lab_the_server_or_the_command_line():
    banned = ("edge.lab", "edge.server", "edge.cli")
    offenders = {str(p.relative_to(ROOT)): sorted(n for n in _imports(p) if n.startswith(banned))
                 for p in _device_core()}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_server_imports_only_the_wire_format_and_the_runtime_of_the_device():
    allowed = ("edge.server", "edge.wire", "edge.runtime", "edge.errors", "edge.restore", "edge.frame", "edge.seal")
    for path in _modules("edge/server"):
        inside = {n for n in _imports(path) if n.startswith("edge.")}
        assert all(n.startswith(allowed) for n in inside), (path, sorted(inside))


def test_only_the_command_line_the_lab_and_the_default_model_import_export_and_only_lazily():
    """The device never needs the compiler: the keyify and eval commands, the lab's fine-tuning, and the default
    job's first-run compile (edge/default.py) import export, inside functions."""
    allowed = [ROOT / "edge" / "cli", ROOT / "edge" / "lab", ROOT / "edge" / "default.py"]
    for path in _modules("edge"):
        assert "export" not in {n.split(".")[0] for n in _imports(path, top_level_only=True)}, path
        if not any(path == a or a in path.parents for a in allowed):
            assert "export" not in _roots(path), path


def test_only_the_picamera_source_imports_picamera2():
    allowed = ROOT / "edge" / "sources" / "picamera.py"
    users = [p for pkg in PACKAGES for p in _modules(pkg) if "picamera2" in _roots(p)]
    assert all(p == allowed for p in users)


def test_only_the_server_and_the_page_import_the_web_framework_and_nothing_imports_tritonclient():
    """Devices install neither Starlette nor uvicorn (the `server` extra) unless they serve the page; tritonclient is a
    test dependency."""
    rooms = (ROOT / "edge" / "server", ROOT / "edge" / "web")
    for pkg in PACKAGES:
        for path in _modules(pkg):
            found = _roots(path)
            assert "tritonclient" not in found, path
            if not any(room in path.parents for room in rooms):
                assert not found & {"starlette", "uvicorn"}, path


def test_the_device_core_reaches_the_page_only_lazily_and_the_page_reaches_no_other_room():
    """The [web] sink (edge/sinks/web.py) imports edge.web inside a function, when the page starts; the page reads the
    device core and nothing of the lab, the server, the command line or the compiler."""
    for path in _device_core():
        assert not [n for n in _imports(path, top_level_only=True) if n.startswith("edge.web")], path
    assert "edge.web" in _imports(ROOT / "edge" / "sinks" / "web.py")  # the check sees what it should
    banned = ("edge.lab", "edge.server", "edge.cli", "export", "onnx")
    for path in _modules("edge/web"):
        assert not [n for n in _imports(path) if n.split(".")[0] in banned or n.startswith(banned[:3])], path


def test_nothing_outside_the_tests_imports_the_tests():
    for folder in (*PACKAGES, "benchmarks", "training"):
        for path in _modules(folder):
            assert "tests" not in _roots(path), path


def test_no_import_cycles_between_modules():
    """Module-level imports inside the three packages form no cycle (lazy imports inside functions may)."""
    graph = {}
    for pkg in PACKAGES:
        for path in _modules(pkg):
            graph[_name(path)] = set()
    for pkg in PACKAGES:
        for path in _modules(pkg):
            for name in _imports(path, top_level_only=True):
                while name and name not in graph:
                    name = name.rpartition(".")[0]
                if name and name != _name(path) and not _name(path).startswith(name + "."):
                    graph[_name(path)].add(name)
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if nxt.startswith(node + "."):
                continue  # a package importing its own submodules
            assert state.get(nxt) != 1, " -> ".join(trail + [node, nxt])
            if nxt not in state:
                visit(nxt, trail + [node])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])


def test_no_module_is_over_400_lines():
    long = {str(p.relative_to(ROOT)): n for pkg in PACKAGES for p in _modules(pkg)
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


MAX_FUNCTION_LINES = 60


def test_no_function_is_over_60_lines():
    """Counted from its ``def`` to its last line, nested functions included in the one that holds them."""
    long = {}
    for pkg in PACKAGES:
        for path in _modules(pkg):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        long[f"{path.relative_to(ROOT)}:{node.lineno} {node.name}"] = length
    assert long == {}


def test_importing_the_device_core_loads_no_lab_server_command_line_or_onnx():
    code = ("import json, sys; import edge.loop, edge.pipeline, edge.sources, edge.sinks, edge.job; "
            "print(json.dumps(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    loaded = json.loads(done.stdout)
    banned = ("edge.lab", "edge.server", "edge.cli", "edge.web", "export", "onnx", "torch", "starlette", "uvicorn",
              "picamera2")
    assert [m for m in loaded if m.split(".")[0] in banned or m.startswith(banned[:4])] == []
    assert "onnxruntime" in loaded and "edge.sources.picamera" in loaded  # the check sees what it should


def test_the_wheel_ships_no_tests(tmp_path):
    from importlib.metadata import PackageNotFoundError, version

    try:  # pyproject.toml needs setuptools >= 77 (its licence field); an older one here: let pip isolate the build
        isolate = int(version("setuptools").split(".")[0]) < 77
    except PackageNotFoundError:
        isolate = True
    flags = [] if isolate else ["--no-build-isolation"]
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", *flags, "-q",
                           "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    import zipfile

    (wheel,) = tmp_path.glob("keycam-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "training/"))]
    assert "edge/assets/fashion_mnist_cnn.onnx" in names and "firmware_sim/vectors/golden.json" in names
    assert "edge/cli/__init__.py" in names and "export/zoo/networks.py" in names


def test_lint_is_clean():
    """ruff (pyflakes errors, bugbear) over the whole code base, with the settings in pyproject.toml."""
    import shutil

    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    done = subprocess.run([ruff, "check", "edge", "export", "firmware_sim", "tests", "benchmarks", "training"],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
