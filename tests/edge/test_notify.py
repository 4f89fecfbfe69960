"""Type=notify (edge.notify, edge.loop): what the service manager hears, on a real AF_UNIX datagram socket bound where
systemd would bind its notification socket (``$NOTIFY_SOCKET``: a path, or an abstract name written ``@name``).

- the protocol: one datagram per message, ``NAME=value`` lines, both kinds of address; silent without a socket;
  the watchdog only where ``$WATCHDOG_PID`` is ours; a socket that went away is said once and never raised;
- a real capture loop (a keyed ResNet-20, a live source the test paces frame by frame, the results sink): READY=1
  after the first frame, WATCHDOG=1 as frames go through, none while the loop is stalled (at the source) or wedged
  (in a sink, while the camera still delivers) for twice the watchdog's timeout, STOPPING=1 at the end;
- the first open retried: EXTEND_TIMEOUT_USEC= and a STATUS= line for each wait, then READY=1;
- ``keycam run`` of the embedded default's detector over a video, as the unit starts it: READY, WATCHDOG, STOPPING.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest

from edge.errors import CameraError
from edge.loop import CaptureLoop
from edge.notify import OPEN_ALLOWANCE_S, Notifier, socket_address, watchdog_seconds
from edge.pipeline import Pipeline
from edge.runtime import KeyedModel
from edge.sensor import Readout
from edge.sinks.results import ResultsSink
from edge.sources.base import Source
from edge.sources.virtual import VirtualSensor
from tests.inprocess import keycam

MEGAMIND = Path("/usr/share/doc/opencv-doc/examples/data/Megamind.avi")
WAIT_S = 30.0  # the longest any expected message is waited for (a bound, never an assertion on time)


class Manager:
    """The service manager's end: a real datagram socket, bound at ``address`` ($NOTIFY_SOCKET's spelling)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.socket.bind(socket_address(address))

    def next(self, timeout: float = WAIT_S) -> dict[str, str] | None:
        """The next message as NAME -> value, or None when none came within ``timeout``."""
        self.socket.settimeout(timeout)
        try:
            data = self.socket.recv(4096)
        except socket.timeout:
            return None
        return dict(line.split("=", 1) for line in data.decode().split("\n"))

    def until(self, name: str) -> list[dict[str, str]]:
        """Every message up to and including the first that carries ``name``."""
        seen = []
        while True:
            message = self.next()
            assert message is not None, f"no {name} after {seen}"
            seen.append(message)
            if name in message:
                return seen

    def close(self) -> None:
        self.socket.close()


@pytest.fixture
def manager():
    listener = Manager(f"@keycam-test-{uuid.uuid4().hex}")  # abstract: nothing on disk
    yield listener
    listener.close()


class SteppedClock:
    """Monotonic seconds that move one second at every reading: every beat the loop offers is due."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


# -- the protocol --------------------------------------------------------------------------------------------------

def test_messages_reach_a_path_and_an_abstract_socket(tmp_path, manager):
    on_disk = Manager(str(tmp_path / "notify"))
    try:
        for listener in (manager, on_disk):
            notifier = Notifier({"NOTIFY_SOCKET": listener.address})
            assert notifier.enabled and notifier.watchdog_s is None
            assert notifier.ready("running:\n 1 frame")
            assert listener.next() == {"READY": "1", "STATUS": "running: 1 frame"}  # STATUS= stays one line
            assert notifier.stopping("stopping (SIGTERM)")
            assert listener.next() == {"STOPPING": "1", "STATUS": "stopping (SIGTERM)"}
            notifier.close()
    finally:
        on_disk.close()
    assert socket_address("@x") == b"\0x" and socket_address("/run/x") == "/run/x"
    assert socket_address("") is None and socket_address("vsock:2:1") is None


def test_without_a_socket_nothing_is_sent_and_the_watchdog_is_ours_only_by_pid():
    quiet = Notifier({})
    assert not quiet.enabled and not quiet.ready("x") and not quiet.beat(lambda: "x") and not quiet.stopping("x")
    assert watchdog_seconds({"WATCHDOG_USEC": "120000000"}, 7) == 120.0
    assert watchdog_seconds({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "7"}, 7) == 120.0
    assert watchdog_seconds({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "8"}, 7) is None  # another process's
    assert watchdog_seconds({"WATCHDOG_USEC": "soon"}, 7) is None and watchdog_seconds({}, 7) is None


def test_beats_are_spaced_by_the_clock_and_carry_the_status(manager):
    now = [10.0]
    notifier = Notifier({"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": "2000000"}, clock=lambda: now[0])
    assert notifier.interval_s == 0.5  # a quarter of the watchdog's 2 s
    assert notifier.ready("running: 1 frames")
    assert manager.next() == {"READY": "1", "STATUS": "running: 1 frames", "WATCHDOG": "1"}
    assert not notifier.beat(lambda: "running: 2 frames")  # too soon after the last
    now[0] += 0.5
    assert notifier.beat(lambda: "running: 3 frames")
    assert manager.next() == {"WATCHDOG": "1", "STATUS": "running: 3 frames"}
    assert manager.next(timeout=0.2) is None


def test_a_socket_that_went_away_is_said_once_and_never_raised(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    with caplog.at_level(logging.WARNING, logger="edge.notify"):
        assert not notifier.status("opening the source") and not notifier.stopping("stopping")
    (line,) = [r.getMessage() for r in caplog.records]
    assert "notification socket" in line and "gone" in line


# -- the loop ------------------------------------------------------------------------------------------------------

class Paced(Source):
    """A live camera that delivers one frame for each ``allow()``; ``finish()`` ends it; ``fail_opens`` first
    opens fail as a camera still booting does."""

    live = True

    def __init__(self, fail_opens: int = 0) -> None:
        super().__init__()
        self.fail_opens, self.taken = fail_opens, 0
        self._allowed = threading.Semaphore(0)
        self._finished = False

    def allow(self, frames: int = 1) -> None:
        for _ in range(frames):
            self._allowed.release()

    def finish(self) -> None:
        self._finished = True
        self._allowed.release()

    def _open(self) -> None:
        if self.fail_opens:
            self.fail_opens -= 1
            raise CameraError("camera 'paced' is not there yet")

    def _read(self):
        self._allowed.acquire()
        if self._finished:
            return None
        self.taken += 1
        return self._frame(np.full((32, 32, 3), self.taken % 256, np.uint8), self.taken, "paced")


class Wedging(ResultsSink):
    """The results file, whose ``wedge_at``-th write hangs until ``release`` is set."""

    def __init__(self, path: Path, wedge_at: int = 0) -> None:
        super().__init__(path)
        self.wedge_at, self.written = wedge_at, 0
        self.wedged, self.release = threading.Event(), threading.Event()

    def write(self, result) -> None:
        if self.written + 1 == self.wedge_at:
            self.wedged.set()
            self.release.wait()
        super().write(result)
        self.written += 1


@pytest.fixture(scope="module")
def model(shared_models, tmp_path_factory):
    from export.keyify import KeyifyOptions
    from export.package.save import save
    from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
    from firmware_sim.keys import MasterKey

    key = MasterKey(bytes(range(32)))
    path = tmp_path_factory.mktemp("notify") / "keyed.onnx"
    save(shared_models.keyified(resnet20(), key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD)), path)
    return KeyedModel(path, key), key


def _loop(model, source: Source, sink: ResultsSink, notifier: Notifier, **options) -> CaptureLoop:
    keyed, key = model
    sensor = VirtualSensor(source, Readout.for_model(keyed.manifest, key, source_order=source.channel_order))
    return CaptureLoop(sensor, Pipeline(keyed, key), [sink], queue_size=2, notifier=notifier, **options)


def _start(loop: CaptureLoop) -> tuple[threading.Thread, list]:
    failure: list = []

    def run() -> None:
        try:
            loop.run()
        except BaseException as error:  # noqa: BLE001 - the test reports it
            failure.append(error)

    thread = threading.Thread(target=run, name="test-loop", daemon=True)
    thread.start()
    return thread, failure


def _environment(manager: Manager, watchdog_s: float) -> dict[str, str]:
    return {"NOTIFY_SOCKET": manager.address, "WATCHDOG_USEC": str(int(watchdog_s * 1e6)),
            "WATCHDOG_PID": str(os.getpid())}


def test_the_loop_beats_while_frames_flow_and_falls_silent_when_its_camera_stalls(model, manager, tmp_path):
    watchdog_s = 0.25  # short, so that a beat on a timer would show within the silence below
    notifier = Notifier(_environment(manager, watchdog_s), clock=SteppedClock())
    camera = Paced()
    loop = _loop(model, camera, ResultsSink(tmp_path / "r.jsonl"), notifier)
    thread, failure = _start(loop)
    assert manager.next() == {"STATUS": "opening the source"}
    camera.allow(1)  # one frame at a time: the live queue never drops one
    ready = manager.next()
    assert ready["READY"] == "1" and ready["STATUS"].startswith("running: 1 frames") and ready["WATCHDOG"] == "1"
    beats = []
    for _ in range(4):
        camera.allow(1)
        beats.append(manager.next())
    assert [b["STATUS"].split(",")[0] for b in beats] == [f"running: {n} frames" for n in (2, 3, 4, 5)]
    assert all(b["WATCHDOG"] == "1" and set(b) == {"WATCHDOG", "STATUS"} for b in beats)
    assert manager.next(timeout=2 * watchdog_s) is None  # the camera delivers nothing: no frame, no beat
    camera.allow(1)
    assert manager.next()["STATUS"].startswith("running: 6 frames")  # frames again: beats again
    camera.finish()
    stopping = manager.until("STOPPING")[-1]
    assert stopping == {"STOPPING": "1", "STATUS": "stopping (end of source) after 6 frames"}
    thread.join(WAIT_S)
    assert not thread.is_alive() and not failure
    assert manager.next(timeout=0.1) is None  # nothing after STOPPING=1


def test_a_loop_wedged_in_a_sink_sends_no_beat_although_the_camera_delivers(model, manager, tmp_path):
    watchdog_s = 0.25
    notifier = Notifier(_environment(manager, watchdog_s), clock=SteppedClock())
    camera, sink = Paced(), Wedging(tmp_path / "r.jsonl", wedge_at=3)
    loop = _loop(model, camera, sink, notifier)
    thread, failure = _start(loop)
    camera.allow(1)
    assert "READY" in manager.until("READY")[-1]
    camera.allow(1)
    assert manager.next()["STATUS"].startswith("running: 2 frames")
    camera.allow(1)
    assert sink.wedged.wait(WAIT_S)
    camera.allow(20)  # the camera goes on (a live source: the loop drops the oldest) while the sink hangs
    assert manager.next(timeout=2 * watchdog_s) is None  # wedged: systemd would restart the service
    assert camera.taken > 3 and thread.is_alive()  # the capture thread ran all along: it never beat
    sink.release.set()
    assert manager.next()["WATCHDOG"] == "1"
    camera.finish()
    assert manager.until("STOPPING")[-1]["STOPPING"] == "1"
    thread.join(WAIT_S)
    assert not failure and loop.metrics.frames == sink.written and loop.metrics.drops > 0


def test_the_first_open_retried_extends_the_start_timeout_then_the_first_frame_is_ready(model, manager, tmp_path):
    notifier = Notifier(_environment(manager, 120.0), clock=SteppedClock())
    camera = Paced(fail_opens=2)
    loop = _loop(model, camera, ResultsSink(tmp_path / "r.jsonl"), notifier, open_retries=3, open_backoff_s=0.01)
    thread, failure = _start(loop)
    camera.allow(1)
    start = manager.until("READY")
    assert start[0] == {"STATUS": "opening the source"}
    extended = [m for m in start if "EXTEND_TIMEOUT_USEC" in m]
    assert [int(m["EXTEND_TIMEOUT_USEC"]) for m in extended] == [int((d + OPEN_ALLOWANCE_S) * 1e6)
                                                                 for d in (0.01, 0.02)]
    assert extended[0]["STATUS"] == "camera 'paced' is not there yet; opening again in 0.0 s (attempt 1 of 3)"
    assert "attempt 2 of 3" in extended[1]["STATUS"] and "WATCHDOG" not in str(start[:-1])  # no beat before READY
    camera.finish()
    assert manager.until("STOPPING")
    thread.join(WAIT_S)
    assert not failure and loop.metrics.camera_failures == 2


def test_a_loop_that_never_opens_its_camera_says_stopping_and_never_ready(model, manager, tmp_path):
    notifier = Notifier(_environment(manager, 120.0), clock=SteppedClock())
    loop = _loop(model, Paced(fail_opens=5), ResultsSink(tmp_path / "r.jsonl"), notifier, open_retries=1,
                 open_backoff_s=0.01)
    with pytest.raises(CameraError, match="not there yet"):
        loop.run()
    seen = manager.until("STOPPING")
    assert not any("READY" in m or "WATCHDOG" in m for m in seen)


# -- keycam run, as the unit starts it -----------------------------------------------------------------------------

def test_keycam_run_under_a_notify_socket(manager, tmp_path, monkeypatch):
    if not MEGAMIND.is_file():
        pytest.skip(f"{MEGAMIND} is missing: scripts/setup-venv.sh test installs Debian's opencv-doc")
    (tmp_path / "keycam.toml").write_text(f'[source]\nkind = "video"\npath = "{MEGAMIND}"\n[loop]\nmax_frames = 8\n'
                                          f'[results]\npath = "{tmp_path / "results.jsonl"}"\n')
    for name, value in _environment(manager, 120.0).items():
        monkeypatch.setenv(name, value)
    done = keycam("run", "--config", tmp_path / "keycam.toml")
    assert done.returncode == 0, done.stderr
    seen = manager.until("STOPPING")
    names = [next(iter(k for k in ("READY", "STOPPING", "WATCHDOG") if k in m), "STATUS") for m in seen]
    assert names[0] == "STATUS" and names.count("READY") == 1 and names[-1] == "STOPPING"
    assert names.index("READY") < names.index("STOPPING")
    assert seen[-1]["STATUS"] == "stopping (max_frames) after 8 frames"
