"""The capture loop: source (read out at capture) -> keyed or feature model -> answer -> sinks, stages joined
by bounded queues, a frame moving one way.

- A capture thread reads the source (the virtual sensor reads each frame out as it is taken) into a
  bounded queue. For live sources a full queue drops its oldest frame (counted in ``drops``) rather
  than build latency; recorded sources (files, folders, recordings) wait, so a replay never drops.
- A device thread runs the keyed (or feature) model into a second bounded queue; the calling thread
  runs the task stage (a split's task model, the answer stage) and hands each result to every sink,
  in order. Stages after capture never drop: they only slow capture down.
- One per-frame error policy, whichever stage raised it: a frame that fails (``FrameError``: in the
  readout, the model, or the answer) is counted in ``errors`` and logged in one line, and the run goes
  on (``on_frame_error = "skip"``) or ends with that error (``"stop"``).
- SIGINT and SIGTERM stop the loop cleanly and soon: capture stops, queued frames are finished,
  sinks stop waiting (``Sink.interrupt``: a forwarding sink waiting for room in a full spool keeps the
  frame anyway and persists its queue at once instead of draining), every sink is closed
  (recordings finished, nothing half-written). ``stopped_by`` names the signal.
- A camera that fails (``CameraError``) is reopened with exponential backoff, up to ``retries`` times,
  and each failure is counted and logged.
- ``realtime`` replays recorded sources at their recorded speed (frame timestamps); otherwise as fast
  as possible.
- The service manager (``edge.notify``, where ``$NOTIFY_SOCKET`` is set): ``READY=1`` once the first frame has gone
  through every stage, ``WATCHDOG=1`` from the task stage as frames go through (never from a timer: a wedged loop
  sends none), ``STATUS=`` lines, ``EXTEND_TIMEOUT_USEC=`` while the first open is retried, ``STOPPING=1`` at the end.
- The run's switches (``edge.switches``): while detection is off, a frame skips the keyed model and the answer
  and goes to the frame sinks (the recorder) only, counted in ``undetected``; while recording is off, no result
  goes to the frame sinks.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field

from edge.errors import CameraError, ConfigError, FrameError
from edge.frame import Result
from edge.notify import OPEN_ALLOWANCE_S, Notifier
from edge.pipeline import Pipeline
from edge.sinks.base import Sink
from edge.sources.base import Source
from edge.switches import Switches

log = logging.getLogger(__name__)
_END = object()
FRAME_ERROR_POLICIES = ("skip", "stop")


@dataclass
class Metrics:
    frames: int = 0
    drops: int = 0
    errors: int = 0
    skipped: int = 0
    camera_failures: int = 0
    undetected: int = 0  # frames that met the switch ``detect`` off: recorded (when recording), not answered
    seconds: float = 0.0
    stage_ms: dict = field(default_factory=dict)
    stopped_by: str = "end of source"

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> dict:
        return {"frames": self.frames, "fps": round(self.fps, 2), "drops": self.drops, "errors": self.errors,
                "skipped": self.skipped, "camera_failures": self.camera_failures, "undetected": self.undetected,
                "stage_ms_mean": {k: round(v / max(self.frames, 1), 3) for k, v in self.stage_ms.items()},
                "stopped_by": self.stopped_by}


@dataclass
class _Undetected:
    """A frame that met the switch ``detect`` off in the device stage: its bare result, for the frame sinks only."""

    result: Result

    @property
    def sequence(self) -> int:
        return self.result.sequence


class CaptureLoop:
    def __init__(self, source: Source, pipeline: Pipeline, sinks: list[Sink], *, queue_size: int = 4,
                 max_frames: int = 0, realtime: bool = False, retries: int = 5, backoff_s: float = 0.5,
                 progress=None, metrics_server=None, on_frame_error: str = "skip", open_retries: int = 0,
                 open_backoff_s: float = 1.0, switches: Switches | None = None,
                 notifier: Notifier | None = None) -> None:
        if on_frame_error not in FRAME_ERROR_POLICIES:
            raise ConfigError(f"on_frame_error {on_frame_error!r}; use one of {', '.join(FRAME_ERROR_POLICIES)}")
        self.on_frame_error = on_frame_error
        self.source, self.pipeline, self.sinks = source, pipeline, sinks
        self.switches = switches or Switches()  # detection and recording on or off (edge.switches)
        self.queue: queue.Queue = queue.Queue(maxsize=max(1, queue_size))  # capture -> device stage
        self.staged: queue.Queue = queue.Queue(maxsize=max(1, queue_size))  # device stage -> task stage
        self.max_frames = max_frames
        self.realtime = realtime
        self.retries, self.backoff_s = retries, backoff_s
        self.open_retries, self.open_backoff_s = open_retries, open_backoff_s
        self.progress = progress
        self.server = metrics_server  # an edge.metrics.MetricsServer, or None
        self.notifier = notifier if notifier is not None else Notifier()  # systemd's ($NOTIFY_SOCKET), else silent
        self._exported: dict[str, int] = {}
        self._consuming = False
        self.metrics = Metrics()
        self.stop_event = threading.Event()
        self._failure: BaseException | None = None

    def stop(self, reason: str = "stopped") -> None:
        self.metrics.stopped_by = reason
        self.stop_event.set()

    def _frame_failed(self, error: FrameError) -> None:
        """One frame failed in some stage: count it, say so in one line, and go on or stop (``on_frame_error``)."""
        self.metrics.errors += 1
        if self.server is not None:
            self.server.errors.inc()
        if self.on_frame_error == "stop":
            log.error("%s; stopping (on_frame_error = stop)", error)
            self._failure = self._failure or error
            self.stop("error")
        else:
            log.warning("%s; frame skipped", error)

    def _signalled(self, number: int) -> None:
        """SIGINT/SIGTERM: stop, and tell every sink to stop waiting (a full spool, a slow server)."""
        self.stop(signal.Signals(number).name)
        for sink in self.sinks:
            sink.interrupt()

    # -- capture --------------------------------------------------------------

    def _put(self, item) -> None:
        if self.source.live:
            while True:
                try:
                    self.queue.put_nowait(item)
                    return
                except queue.Full:
                    try:
                        self.queue.get_nowait()  # drop the oldest frame, not the newest
                        self.metrics.drops += 1
                    except queue.Empty:
                        pass
        while not self.stop_event.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _capture(self) -> None:
        failures = 0
        first_stamp = None
        started = time.monotonic()
        try:
            while not self.stop_event.is_set():
                try:
                    frame = self.source.read()
                except FrameError as error:  # the readout could not take it: that frame only
                    self._frame_failed(error)
                    continue
                except CameraError as error:
                    failures += 1
                    self.metrics.camera_failures += 1
                    if failures > self.retries:
                        raise
                    delay = self.backoff_s * 2 ** (failures - 1)
                    log.warning("%s; reopening in %.1f s (attempt %d of %d)", error, delay, failures, self.retries)
                    self.source.close()
                    if self.stop_event.wait(delay):
                        break
                    try:
                        self.source.open()
                    except CameraError as reopen_error:
                        log.warning("%s", reopen_error)
                    continue
                failures = 0
                if frame is None:
                    break
                if self.realtime and not self.source.live:
                    first_stamp = frame.timestamp_ns if first_stamp is None else first_stamp
                    due = started + (frame.timestamp_ns - first_stamp) / 1e9
                    if self.stop_event.wait(max(0.0, due - time.monotonic())):
                        break
                self._put(frame)
        except BaseException as error:  # surfaced in the calling thread
            self._failure = error
        finally:
            self.metrics.skipped = self.source.skipped
            self._put_end()

    def _put_end(self) -> None:
        while True:
            try:
                self.queue.put(_END, timeout=0.1)
                return
            except queue.Full:
                if self.source.live:
                    try:
                        self.queue.get_nowait()
                        self.metrics.drops += 1
                    except queue.Empty:
                        pass

    # -- the loop ---------------------------------------------------------------

    def _export(self, result) -> None:
        server, metrics = self.server, self.metrics
        server.frames.inc()
        for stage, ms in result.latency_ms.items():
            server.stage.labels(stage).observe(ms / 1e3)
        for name, value in (("drops", metrics.drops), ("skipped", self.source.skipped),
                            ("camera_failures", metrics.camera_failures)):
            getattr(server, name).inc(max(0, value - self._exported.get(name, 0)))
            self._exported[name] = value
        server.rate.tick()  # keycam_fps: the frames of the last seconds, read at each scrape

    def _device_stage(self) -> None:
        try:
            while True:
                item = self.queue.get()
                if item is _END:
                    break
                if not self.switches.detect:  # no model and no answer: the measurement goes to the recorder only
                    self._hand_on(_Undetected(Result(item, latency_ms={"transform": item.readout_ms})))
                    continue
                try:
                    staged = self.pipeline.front(item)  # a Result whose tensors the task stage answers
                except FrameError as error:
                    self._frame_failed(FrameError(f"frame {item.sequence}: {error}"))
                    continue
                self._hand_on(staged)
        except BaseException as error:  # surfaced in the calling thread
            self._failure = self._failure or error
            self.stop_event.set()
        finally:
            self._hand_on(_END)

    def _hand_on(self, item) -> None:
        """Queue for the task stage; once the calling thread has stopped consuming, discard."""
        while self._consuming:
            try:
                self.staged.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def _task_stage(self) -> None:
        """The calling thread's stage: each result answered and handed to every sink, in order, until the end."""
        while True:
            item = self.staged.get()
            if item is _END:
                return
            answered = not isinstance(item, _Undetected)
            try:
                result = self.pipeline.back(item) if answered else item.result
            except FrameError as error:
                self._frame_failed(FrameError(f"frame {item.sequence}: {error}"))
                if self.stop_event.is_set():
                    return
                continue
            self.metrics.frames += 1  # handed to the sinks (one that fails accounts for it: spooled or lost)
            self.metrics.undetected += not answered
            recording = self.switches.recordings
            for sink in self.sinks:  # the plain frame (debug recording only) goes to no other sink
                if recording if sink.role == "frames" else answered:  # the switches (edge.switches)
                    sink.write(result if sink.wants_plain else result.without_plain())
            for stage, ms in result.latency_ms.items():
                self.metrics.stage_ms[stage] = self.metrics.stage_ms.get(stage, 0.0) + ms
            if self.server is not None:
                self._export(result)
            if self.progress is not None:
                self.progress.update(1)
            self._alive()
            if self.max_frames and self.metrics.frames >= self.max_frames:
                self.stop("max_frames")
                return

    def _alive(self) -> None:
        """A frame went through every stage: READY=1 for the first, then the watchdog's beats (``edge.notify``)."""
        if self.notifier.ready_sent:
            self.notifier.beat(self._running)
        else:
            self.notifier.ready(self._running())

    def _running(self) -> str:
        m = self.metrics
        return f"running: {m.frames} frames, {m.drops} dropped, {m.errors} errors, {self.source.skipped} skipped"

    def _finish(self, threads: list[threading.Thread], start: float) -> None:
        """Stop the stage threads, close the source and every sink (whatever happened); raise a sink's error."""
        self.notifier.stopping(f"stopping ({self.metrics.stopped_by}) after {self.metrics.frames} frames")
        self.stop_event.set()
        self._consuming = False  # the stage threads discard what is left and finish
        for thread in threads:
            if thread.is_alive():
                thread.join(timeout=5)
        self.metrics.seconds = time.perf_counter() - start
        self.source.close()
        errors = []
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as error:  # noqa: BLE001 - keep closing the others
                errors.append(error)
        self.notifier.close()
        if errors:
            raise errors[0]

    def _open_source(self) -> None:
        """Open the source; a live one (a camera still booting, or held by another program) that fails with a
        ``CameraError`` is tried again ``open_retries`` times, after ``open_backoff_s``, doubled each time (at most
        60 s). An error the source marks ``permanent`` (a configuration the camera refuses) is raised at once; a
        stop (SIGTERM) during a wait ends the run without an error."""
        self.notifier.status("opening the source")
        for attempt in range(self.open_retries + 1):
            try:
                self.source.open()
                return
            except CameraError as error:
                if not self.source.live or getattr(error, "permanent", False) or attempt >= self.open_retries:
                    raise
                delay = min(60.0, self.open_backoff_s * 2 ** attempt)
                self.metrics.camera_failures += 1
                log.warning("%s; opening again in %.1f s (attempt %d of %d)", error, delay, attempt + 1,
                            self.open_retries)
                self.notifier.extend(delay + OPEN_ALLOWANCE_S, f"{error}; opening again in {delay:.1f} s (attempt "
                                                               f"{attempt + 1} of {self.open_retries})")
                if self.stop_event.wait(delay):
                    return

    def run(self) -> Metrics:
        handlers = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                handlers[sig] = signal.signal(sig, lambda number, _: self._signalled(number))
        capture = threading.Thread(target=self._capture, name="keycam-capture", daemon=True)
        device = threading.Thread(target=self._device_stage, name="keycam-device", daemon=True)
        start = time.perf_counter()
        self._consuming = True
        try:
            self._open_source()
            for sink in self.sinks:  # outputs are opened only once the source is there
                sink.start()
            capture.start()
            device.start()
            self._task_stage()
            if self._failure is not None:
                if self.metrics.stopped_by == "end of source":
                    self.metrics.stopped_by = "error"
                raise self._failure
        finally:
            try:
                self._finish([capture, device], start)
            finally:
                for sig, handler in handlers.items():
                    signal.signal(sig, handler)
        return self.metrics
