"""The deploy files work together on today's Raspberry Pi OS (no "pi" user): the unit runs under a dynamic user with
the key as a systemd credential, restarts for ever with backoff, passes `systemd-analyze verify` and rates OK in
`systemd-analyze security` where systemd-analyze is installed, every path the example configuration writes is
writable under its sandbox, and deploy/install.sh turns the README's configuration into the service's."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from edge.config import Config
from edge.credentials import credential_path
from edge.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "deploy" / "keycam.service"
BACKOFF = ROOT / "deploy" / "keycam.service.d" / "backoff.conf"
EXAMPLE = ROOT / "deploy" / "keycam.toml"
INSTALL = ROOT / "deploy" / "install.sh"
ANALYZE = shutil.which("systemd-analyze")


def _settings(path: Path) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def _writable(settings: dict[str, list[str]]) -> list[PurePosixPath]:
    """The roots a service may write to: DynamicUser= implies ProtectSystem=strict (systemd.exec(5))."""
    assert settings["DynamicUser"] == ["yes"] or settings.get("ProtectSystem") == ["strict"]
    roots = [PurePosixPath(p) for value in settings.get("ReadWritePaths", []) for p in value.split()]
    for key, base in (("StateDirectory", "/var/lib"), ("CacheDirectory", "/var/cache"), ("LogsDirectory", "/var/log"),
                      ("RuntimeDirectory", "/run")):
        roots += [PurePosixPath(base) / name for value in settings.get(key, []) for name in value.split()]
    if settings.get("PrivateTmp") == ["yes"] or settings.get("DynamicUser") == ["yes"]:
        roots += [PurePosixPath("/tmp"), PurePosixPath("/var/tmp")]
    return roots


def _example_with_forwarding() -> dict:
    """The example configuration with its commented-out [forward] section switched on."""
    lines = EXAMPLE.read_text().splitlines()
    start = lines.index("# [forward]")
    enabled = lines[:start] + [re.sub(r"^# ?", "", line) for line in lines[start:] if line.startswith("# ")]
    return tomllib.loads("\n".join(enabled))


def _systemd_version() -> int:
    done = subprocess.run([ANALYZE, "--version"], capture_output=True, text=True)
    return int(re.search(r"systemd (\d+)", done.stdout).group(1))


# -- defect 6: no "pi" user; a dynamic user, the key as a credential ----------------------------------------------

def test_the_unit_needs_no_user_account_and_gets_the_key_as_a_credential():
    settings, text = _settings(UNIT), UNIT.read_text()
    assert "User" not in settings and "/home/pi" not in text  # 217/USER on an image without "pi"
    assert settings["DynamicUser"] == ["yes"] and settings["SupplementaryGroups"] == ["video"]
    assert settings["StateDirectory"] == ["keycam"] and settings["ConfigurationDirectory"] == ["keycam"]
    assert settings["LoadCredential"] == ["camera.key:/etc/keycam/camera.key"]
    assert settings["UMask"] == ["0077"]
    assert settings["ExecStart"] == ["/opt/keycam/.venv/bin/keycam run --config /etc/keycam/keycam.toml"]
    data = next(v.split("=", 1)[1] for v in settings["Environment"] if v.startswith("KEYCAM_DATA="))
    assert PurePosixPath(data).is_relative_to("/var/lib/keycam")  # the embedded default's folder, in the state
    assert settings["WorkingDirectory"] == ["/var/lib/keycam"]


def test_the_sandbox_leaves_open_only_what_the_camera_and_the_network_sinks_need():
    settings = _settings(UNIT)
    assert settings["DevicePolicy"] == ["closed"]
    assert sorted(settings["DeviceAllow"]) == ["char-dma_heap rw", "char-media rw", "char-video4linux rw"]
    assert "PrivateDevices" not in settings  # it would hide /dev/video*, /dev/media* and /dev/dma_heap
    assert settings["CapabilityBoundingSet"] == [""] and settings["NoNewPrivileges"] == ["yes"]
    assert settings["SystemCallFilter"] == ["@system-service", "~@privileged"]


def test_every_path_the_example_writes_is_writable_under_the_unit():
    settings = _settings(UNIT)
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


def test_a_credential_path_is_found_in_the_credentials_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert credential_path("credential:camera.key") == str(tmp_path / "camera.key")
    assert credential_path("camera.key") == "camera.key" and credential_path("") == ""
    with pytest.raises(ConfigError, match="one file name"):
        credential_path("credential:../etc/shadow")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY is not set.*LoadCredential=camera.key:"):
        credential_path("credential:camera.key")


def test_the_installer_turns_the_readme_configuration_into_the_services(tmp_path, monkeypatch):
    """deploy/install.sh with its four places moved into tmp_path (no venv): the key goes to /etc/keycam (0600),
    the model and its sidecars to the state folder, and the service's configuration names the key as a credential;
    run as the unit runs it (working directory: the state folder; $CREDENTIALS_DIRECTORY), it builds the job."""
    from edge.config import load_config
    from edge.job import build_job
    from edge.default import ASSET, MEAN, POLICY, SPEC, STD
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from firmware_sim.keys import MasterKey

    checkout = tmp_path / "home" / "keycam"  # the README's steps ran here
    checkout.mkdir(parents=True)
    key = MasterKey.generate()
    key.save(checkout / "camera.key")
    save(keyify(ASSET, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, policy=POLICY)), checkout / "keyed.onnx")
    shutil.copyfile(EXAMPLE, checkout / "keycam.toml")
    places = {name: tmp_path / name for name in ("opt", "etc", "state", "units")}
    env = dict(os.environ, KEYCAM_PREFIX=str(places["opt"]), KEYCAM_ETC=str(places["etc"]),
               KEYCAM_STATE=str(places["state"]), KEYCAM_UNITS=str(places["units"]), KEYCAM_NO_VENV="1")
    done = subprocess.run(["bash", str(INSTALL), str(checkout / "keycam.toml")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (places["opt"] / "edge" / "job.py").is_file() and not (places["opt"] / "camera.key").exists()
    installed = places["etc"] / "keycam.toml"
    assert 'key = "credential:camera.key"' in installed.read_text()
    assert (places["etc"] / "camera.key").stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in places["state"].iterdir()) == sorted(
        p.name for p in checkout.glob("keyed.*"))  # the model and its sidecars
    unit = (places["units"] / "keycam.service").read_text()
    assert f"ExecStart={places['opt']}/.venv/bin/keycam run --config {places['etc']}/keycam.toml" in unit
    credentials = tmp_path / "credentials"  # what systemd makes of LoadCredential=camera.key:/etc/keycam/camera.key
    credentials.mkdir(mode=0o500)
    shutil.copyfile(places["etc"] / "camera.key", credentials / "camera.key")
    (credentials / "camera.key").chmod(0o400)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    monkeypatch.chdir(places["state"])
    job = build_job(load_config(installed))
    assert job.key.fingerprint == key.fingerprint


# -- defect 7: restart for ever, with backoff -----------------------------------------------------------------------

def test_the_unit_restarts_for_ever_with_backoff():
    settings = _settings(UNIT)
    assert settings["Restart"] == ["always"] and int(settings["RestartSec"][0]) >= 1
    assert settings["StartLimitIntervalSec"] == ["0"] and "StartLimitBurst" not in settings  # never "failed" for good
    assert "ExecStartPre" not in settings  # `keycam run` checks all validate-config checks before it opens anything
    backoff = _settings(BACKOFF)
    assert int(backoff["RestartSteps"][0]) >= 1 and int(backoff["RestartMaxDelaySec"][0]) >= 60
    assert "254" in INSTALL.read_text()  # installed only where systemd knows the two settings
    assert settings["KillSignal"] == ["SIGTERM"]


# -- Type=notify with a watchdog (edge/notify.py) ------------------------------------------------------------------

FFMPEG_READ_TIMEOUT_S = 30.0  # OpenCV's FFmpeg backend: LIBAVFORMAT_INTERRUPT_READ_TIMEOUT_MS, a stream's read
V4L2_SELECT_TIMEOUT_S = 10.0  # OpenCV's V4L2 backend: OPENCV_VIDEOIO_V4L_SELECT_TIMEOUT, a camera's read


def _seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(s|min)?", value)
    assert match, value
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def _longest_gap_s() -> float:
    """The longest gap between two frames that a healthy loop leaves before it either delivers a frame again or ends
    the run with its own error, from the code's defaults: a picamera that stops, reopened ``retries`` times with
    doubling backoff, each read waiting its timeout (30 fps) and each open about 1 s; an OpenCV camera or stream
    giving up after ``grab_retries`` reads of its backend's timeout."""
    import inspect

    from edge.loop import CaptureLoop
    from edge.sources.opencv import OpenCVSource
    from edge.sources.picamera_controls import first_wait_s, later_wait_s

    loop = inspect.signature(CaptureLoop).parameters
    retries, backoff = loop["retries"].default, loop["backoff_s"].default
    read_s = max(later_wait_s({}), first_wait_s({}))
    picamera = sum(backoff * 2 ** n for n in range(retries)) + (retries + 1) * read_s + retries * 1.0
    grabs = inspect.signature(OpenCVSource).parameters["grab_retries"].default
    return max(picamera, grabs * V4L2_SELECT_TIMEOUT_S, grabs * FFMPEG_READ_TIMEOUT_S)


def test_the_unit_is_notify_with_a_watchdog_longer_than_any_legitimate_gap():
    from edge.notify import OPEN_ALLOWANCE_S

    settings = _settings(UNIT)
    assert settings["Type"] == ["notify"] and settings["NotifyAccess"] == ["main"]
    watchdog = _seconds(settings["WatchdogSec"][0])
    assert watchdog > _longest_gap_s() == 90.0  # a stream's three reads: the longest (the unit's comment)
    assert _seconds(settings["TimeoutStartSec"][0]) >= 2 * FFMPEG_READ_TIMEOUT_S  # a stream's open + first frame
    assert OPEN_ALLOWANCE_S >= 2 * FFMPEG_READ_TIMEOUT_S  # what each retry of the first open adds to it
    assert "PYTHONFAULTHANDLER=1" in settings["Environment"]  # SIGABRT on a wedge: every thread's stack
    assert settings["LimitCORE"] == ["0"]  # and no core file holding the key
    assert "WatchdogSignal" not in settings and settings["Restart"] == ["always"]  # a watchdog kill restarts


# -- systemd-analyze, where it is installed --------------------------------------------------------------------------

def _unit_here(tmp_path: Path) -> Path:
    """The unit as shipped, with the checkout's path standing in for /opt/keycam so that its binary exists."""
    unit = tmp_path / "keycam.service"
    unit.write_text(UNIT.read_text().replace("/opt/keycam", str(ROOT)))
    return unit


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here (Debian: apt install systemd)")
def test_systemd_analyze_verifies_the_unit(tmp_path):
    unit = _unit_here(tmp_path)
    if _systemd_version() >= 254:  # the backoff drop-in too, as install.sh installs it there
        (tmp_path / "keycam.service.d").mkdir()
        shutil.copyfile(BACKOFF, tmp_path / "keycam.service.d" / "backoff.conf")
    done = subprocess.run([ANALYZE, "verify", "--man=no", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "keycam.service" not in done.stderr, done.stderr  # no warnings about the unit itself


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed here (Debian: apt install systemd)")
def test_systemd_analyze_security_rates_the_unit_ok(tmp_path):
    if _systemd_version() < 250:
        pytest.skip("systemd-analyze security --offline needs systemd 250")
    done = subprocess.run([ANALYZE, "security", "--offline=true", "--no-pager", str(_unit_here(tmp_path))],
                          capture_output=True, text=True)
    exposure = float(re.search(r"Overall exposure level for keycam.service: ([\d.]+)", done.stdout).group(1))
    assert exposure <= 2.0, done.stdout  # 8.7 EXPOSED with User=pi; what stays open: docs/raspberry-pi.md
