"""The deploy files work together: the systemd unit passes `systemd-analyze verify`, and every path the example
configuration writes (its forwarding section included) is writable under the unit's sandbox."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from edge.config import Config

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "keycam.service"
EXAMPLE = ROOT / "deploy" / "keycam.toml"


def _unit() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _writable(settings: dict[str, list[str]]) -> list[PurePosixPath]:
    """The roots a service may write to under ProtectSystem=strict (systemd.exec(5))."""
    assert settings["ProtectSystem"] == ["strict"]
    roots = [PurePosixPath(p) for value in settings.get("ReadWritePaths", []) for p in value.split()]
    for key, base in (("StateDirectory", "/var/lib"), ("CacheDirectory", "/var/cache"), ("LogsDirectory", "/var/log"),
                      ("RuntimeDirectory", "/run")):
        roots += [PurePosixPath(base) / name for value in settings.get(key, []) for name in value.split()]
    if settings.get("PrivateTmp") == ["yes"]:
        roots += [PurePosixPath("/tmp"), PurePosixPath("/var/tmp")]
    return roots


def _example_with_forwarding() -> dict:
    """The example configuration with its commented-out [forward] section switched on."""
    text = EXAMPLE.read_text()
    lines = text.splitlines()
    start = lines.index("# [forward]")
    enabled = lines[:start] + [re.sub(r"^# ?", "", line) for line in lines[start:] if line.startswith("# ")]
    return tomllib.loads("\n".join(enabled))


def test_every_path_the_example_writes_is_writable_under_the_unit():
    settings = _unit()
    roots = _writable(settings)
    workdir = PurePosixPath(settings["WorkingDirectory"][0])
    config = Config.model_validate(_example_with_forwarding())
    data = next(v.split("=", 1)[1] for v in settings["Environment"] if v.startswith("KEYCAM_DATA="))
    written = [config.results.path, config.record.path, config.forward.spool, data]  # data: the default job's
    assert config.forward.url and config.forward.spool.startswith("/var/lib/keycam")  # the section was read
    for path in filter(None, written):
        if path == "-":
            continue
        absolute = workdir / path
        assert any(root == absolute or root in absolute.parents for root in roots), (path, roots)


def test_the_unit_runs_the_checked_configuration_and_stops_retrying_a_hopeless_failure():
    settings = _unit()
    assert any("validate-config" in v for v in settings["ExecStartPre"])
    assert settings["Restart"] == ["on-failure"] and int(settings["StartLimitBurst"][0]) >= 3
    assert settings["KillSignal"] == ["SIGTERM"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    """The unit as shipped, with the checkout's path standing in for /home/pi/keycam so the binaries exist."""
    unit = tmp_path / "keycam.service"
    unit.write_text(UNIT.read_text().replace("/home/pi/keycam", str(ROOT)))
    done = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keycam.service" not in done.stderr, done.stderr  # no warnings about the unit itself
