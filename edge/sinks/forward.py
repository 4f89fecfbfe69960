"""The forwarding sink: each private measurement (or a split's scrambled features) goes to a v2 server,
and the server's answer becomes the frame's result, in frame order, exactly once.

::

    loop ──write()──► memory queue (inflight) ──► sender thread ──POST /infer──► server
                         │  server down                 │ answer ──► results sink (in order)
                         └────────────► spool (disk) ◄──┘ unreachable / 5xx: spill, back off, retry

- While the server answers, requests wait in a small memory queue; when it is full, ``write`` waits
  (back-pressure: a live source then drops frames at capture, counted there).
- When the server is unreachable, times out or answers 5xx/429, the sender spills the queue to the
  on-disk spool (``edge.wire.spool``) and every new frame goes there too, until the spool is empty
  again. The sender retries the oldest request with exponential backoff (``retry_min_s`` doubling
  to ``retry_max_s``). A spool left by an earlier run is delivered first.
- A full spool follows ``when_full``: ``drop_oldest`` deletes the oldest waiting request (never the
  one being sent); ``stop_capture`` makes ``write`` wait until there is room, which stops the loop
  taking frames. Both are counted.
- Each request carries an id (device, run, counter) that stays the same across retries and
  restarts, so a server that already answered it (``keycam serve`` keeps recent answers) answers
  again instead of computing twice; the device writes one result per request and removes the
  request only after that. A 4xx answer will not improve by retrying: the frame's result records
  the server's error, and the frame is not sent again, unless the server itself has changed.
- After any failure or refusal the server's model is checked again: keyed for another key, or
  another role, input, datatype or key epoch, it is *misconfigured*: every frame stays in the spool, the alarm is raised
  (``alarm``, the log, ``keycam_forward_misconfigured`` on the metrics endpoint), and the device
  retries with backoff until it is fixed. No frame is dropped for it.
- A damaged spool entry (its digest fails, or it is truncated) is moved to the spool's
  ``quarantine/`` and counted, never sent, and delivery goes on.
- ``close`` waits up to ``drain_s`` for the queue and spool to empty, then persists whatever is
  left to the spool for the next run. Results written by the sender carry the latency of the
  device's stages plus ``forward`` (the successful request's round trip).

Only measurements or features leave the device; the key never does. Before the first frame
(``edge.wire.client.connect``) the device checks that the server's model is keyed for its key. The
server's outputs become the frame's answer through the run's one answer stage (``edge.answers``:
restore in the frame's epoch, geometry, decode), as a local task stage's would. The ``[forward]``
settings and how a run is assembled around them: ``edge.sinks.forwarding``.
"""

from __future__ import annotations

import collections
import logging
import socket
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge.answers import Answers
from edge.errors import (ConfigError, FrameError, KeyMismatch, ServerRejected, ServerUnavailable, SpoolError,
                         WireError)
from edge.frame import Frame, Result
from edge.sinks.base import Sink
from edge.wire.client import RemoteModel, V2Client
from edge.wire.codec import encode_request
from edge.wire.spool import Spool

log = logging.getLogger(__name__)
POLICIES = ("drop_oldest", "stop_capture")


@dataclass
class _Item:
    counter: int
    meta: dict
    body: bytes | None  # None: the body is in the spool


@dataclass
class ForwardStats:
    answered: int = 0
    rejected: int = 0
    failures: int = 0  # attempts that met an unavailable server
    spooled: int = 0
    dropped: int = 0  # spool full, oldest dropped
    waited: int = 0  # spool full, capture waited
    quarantined: int = 0  # damaged spool entries moved aside, never sent
    misconfigured: int = 0  # times the server was found keyed for another key or serving another model
    lost: int = 0  # frames that could be neither sent nor spooled (the spool's disk full or failing)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ForwardSink(Sink):
    role = "forward"

    def __init__(self, client: V2Client, remote: RemoteModel, results: Sink, spool: Spool,
                 answers: Answers | None = None, *, when_full: str = "drop_oldest", inflight: int = 8, retry_min_s: float = 0.2,
                 retry_max_s: float = 10.0, drain_s: float = 30.0, device_id: str = "") -> None:
        if when_full not in POLICIES:
            raise ConfigError(f"forward.when_full {when_full!r}; use one of {', '.join(POLICIES)}")
        self.client, self.remote, self.results, self.spool = client, remote, results, spool
        # the run's answer stage: the server's outputs become the frame's answer (default: the server's task)
        self.answers = answers or Answers.for_manifest(remote.manifest)
        self.when_full, self.inflight = when_full, max(1, inflight)
        self.retry_min_s, self.retry_max_s, self.drain_s = retry_min_s, max(retry_min_s, retry_max_s), drain_s
        self.run_id = f"{device_id or socket.gethostname()}:{time.time_ns():x}"
        self.stats = ForwardStats()
        self._memory: collections.deque[_Item] = collections.deque()
        self._spooling = len(spool) > 0  # an earlier run's requests go first
        self._down = False
        self._sending: int | None = None
        self._closing = False
        self._verified = True  # the server was checked by connect(); checked again after every failure
        self.alarm = ""  # why the server is misconfigured, while it is
        self._abort = threading.Event()
        self._interrupted = threading.Event()  # a stop signal: no waiting for room, no draining at close
        self._cond = threading.Condition()
        self._next = spool.next
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._send_loop, name="keycam-forward", daemon=True)
        self._thread.start()

    # -- the loop's side ------------------------------------------------------------------------

    def write(self, result: Result) -> None:
        if self._failure is not None:
            raise self._failure
        payload = result.payload if result.payload is not None else result.measurement
        if payload.ndim == len(self.remote.input_shape) - 1:
            payload = payload[np.newaxis]  # one frame -> a batch of one
        with self._cond:
            counter = self._next
            self._next += 1
        request_id = f"{self.run_id}:{counter}"
        body, header_length = encode_request(
            {self.remote.input_name: payload}, request_id=request_id,
            parameters={"keycam_fingerprint": result.fingerprint, "keycam_epoch": result.epoch})
        frame = result.frame
        meta = {"id": request_id, "sequence": frame.sequence, "timestamp_ns": frame.timestamp_ns,
                "origin": frame.origin, "fingerprint": frame.fingerprint, "epoch": frame.epoch,
                "header_length": header_length, "latency_ms": result.latency_ms,
                "source_size": list(frame.source_size) if frame.source_size else None, "masks": frame.masks}
        item = _Item(counter, meta, body)
        with self._cond:
            while (not self._spooling and not self._down and len(self._memory) >= self.inflight
                   and not self._abort.is_set() and not self._interrupted.is_set()):
                self._cond.wait(0.1)  # back-pressure from a slow server
            if not self._spooling and not self._down:
                self._memory.append(item)
            else:
                self._spooling = True
                try:
                    self._to_spool(item)
                except SpoolError as error:
                    self._lose(error, 1)
                    raise
            self._cond.notify_all()

    def _to_spool(self, item: _Item) -> None:
        """Persist one request (lock held), applying the full-spool policy."""
        size = len(item.body) + 512
        while not self.spool.fits(size):
            if self.when_full == "stop_capture" and not self._abort.is_set() and not self._interrupted.is_set():
                if not self.stats.waited or self.stats.waited % 100 == 0:
                    log.warning("spool '%s' is full: capture waits for the server", self.spool.folder)
                self.stats.waited += 1
                self._cond.wait(0.5)
                continue
            oldest = self.spool.oldest(skip=self._sending)
            if oldest is None or self.when_full == "stop_capture":
                break  # a request larger than the spool, or stopping: keep it anyway (the bound, not a frame, gives)
            self.spool.remove(oldest)
            self.stats.dropped += 1
            log.warning("spool '%s' is full: dropped the oldest waiting frame", self.spool.folder)
        self.spool.put(item.counter, item.meta, item.body)
        self.stats.spooled += 1

    # -- the sender -----------------------------------------------------------------------------

    def _take(self) -> _Item | None:
        """The oldest waiting request (lock held)."""
        if self._memory:
            return self._memory[0]
        oldest = self.spool.oldest()
        if oldest is None:
            self._spooling = False
            return None
        self._sending = oldest
        return _Item(oldest, {}, None)

    def _spill(self) -> None:
        """The server is down: move the memory queue to the spool, in order (lock held).

        A spool that cannot be written (a full disk) loses the frames it could not take: they are counted
        in ``lost`` and the first error ends the run (raised at the next write, or at close)."""
        while self._memory:
            item = self._memory.popleft()
            try:
                self.spool.put(item.counter, item.meta, item.body)
            except SpoolError as error:
                self._lose(error, 1 + len(self._memory))
                self._memory.clear()
                break
            self.stats.spooled += 1
        self._spooling = True
        self._cond.notify_all()

    def _lose(self, error: SpoolError, count: int) -> None:
        self.stats.lost += count
        if self._failure is None:
            log.error("%s: %d frame(s) lost", error, count)
            self._failure = error

    def _send_loop(self) -> None:
        delay = self.retry_min_s
        try:
            while True:
                item = self._next_item()
                if item is None:
                    return
                delay = self._deliver(item, delay)
                if delay is None:
                    return
        except BaseException as error:  # surfaced to the loop at the next write or at close
            self._failure = error
            with self._cond:
                self._cond.notify_all()

    def _next_item(self) -> _Item | None:
        """The next request to send, its body read back from the spool if it was spooled; None: stop."""
        while True:
            with self._cond:
                item = self._take()
                while item is None and not self._closing:
                    self._cond.wait(0.5)
                    item = self._take()
                if item is None or self._abort.is_set():
                    return None
            if item.body is not None:
                return item
            try:
                meta, body = self.spool.read(item.counter)
            except SpoolError as error:
                with self._cond:
                    self.stats.quarantined += 1
                    where = self.spool.quarantine(item.counter)
                    self._sending = None
                log.error("%s; moved to %s, not sent", error, where)
                continue
            return _Item(item.counter, meta, body)

    def _deliver(self, item: _Item, delay: float) -> float | None:
        """Send one request and write its result; the next retry delay, or None to stop (the sink is closing)."""
        meta, body = item.meta, item.body
        if not self._verified:  # after any failure: is it still the server the device checked at start?
            reason = self._mismatch()
            if reason is not None:
                return None if self._hold(reason, delay) else min(delay * 2, self.retry_max_s)
        start = time.perf_counter()
        try:
            response = self.client.infer(self.remote.name, self.remote.version, body, meta["header_length"])
        except ServerUnavailable as error:
            with self._cond:
                self.stats.failures += 1
                if not self._down:
                    log.warning("%s; spooling to '%s' and retrying", error, self.spool.folder)
                self._down, self._verified = True, False
                self._sending = None
                self._spill()
            return None if self._abort.wait(delay) else min(delay * 2, self.retry_max_s)
        except ServerRejected as error:
            reason = self._mismatch()  # a refusal of every frame is a misconfigured server, not bad frames
            if reason is not None:
                return None if self._hold(reason, delay) else min(delay * 2, self.retry_max_s)
            self._emit(meta, None, str(error), 0.0)
            self._done(item, rejected=True)
            return delay
        if self._down:
            log.warning("server %s answers again; delivering %d spooled frames", self.client.url, len(self.spool))
        self._emit(meta, response.outputs, None, (time.perf_counter() - start) * 1e3)
        self._done(item)
        return self.retry_min_s

    def _mismatch(self) -> str | None:
        """Why the server's model is no longer the one the device checked at start, or None if it still is."""
        try:
            now = self.client.model(self.remote.name, self.remote.version)
        except ServerUnavailable:
            return None  # down, not misconfigured: the next send finds out again
        except (KeyMismatch, WireError) as error:
            return str(error)
        expected = self.remote.manifest
        if now.manifest.refusal(expected.key_fingerprint) is not None:
            return (f"the server's model '{now.name}' at {self.client.url} is now keyed for "
                    f"{now.manifest.key_fingerprint}, this device's key is {expected.key_fingerprint}")
        was = (expected.role, self.remote.input_shape, self.remote.input_datatype)
        seen = (now.manifest.role, now.input_shape, now.input_datatype)
        epochs = (expected.sensor_tables or now.manifest.sensor_tables) and now.manifest.epoch != expected.epoch
        if seen != was or epochs:
            return (f"the server's model '{now.name}' at {self.client.url} changed ({seen[0]} model, input "
                    f"{seen[1]} {seen[2]}, key epoch {now.manifest.epoch}; expected {was[0]}, {was[1]} {was[2]}, "
                    f"key epoch {expected.epoch})")
        with self._cond:
            self._verified = True
            if self.alarm:
                log.warning("server %s is keyed for this device again; delivering the spool", self.client.url)
            self.alarm = ""
        return None

    def _hold(self, reason: str, delay: float) -> bool:
        """A misconfigured server: keep every frame in the spool, raise the alarm, retry later. True: stop."""
        with self._cond:
            self.stats.misconfigured += 1
            if self.alarm != reason:
                log.error("%s; keeping every frame in '%s' until it is fixed", reason, self.spool.folder)
            self.alarm, self._down, self._verified = reason, True, False
            self._sending = None
            self._spill()
        return self._abort.wait(delay)

    def _done(self, item: _Item, rejected: bool = False) -> None:
        with self._cond:
            if item.body is not None and self._memory and self._memory[0] is item:
                self._memory.popleft()
            else:
                self.spool.remove(item.counter)
            self._sending = None
            self._down = False
            if rejected:
                self.stats.rejected += 1
            else:
                self.stats.answered += 1
            self._cond.notify_all()

    def _emit(self, meta: dict, outputs: dict | None, error: str | None, forward_ms: float) -> None:
        """Write the frame's result: its answer from the server's outputs (the run's answer stage), or the error."""
        source = tuple(meta["source_size"]) if meta.get("source_size") else None
        frame = Frame(None, meta["sequence"], meta["timestamp_ns"], meta["origin"], measured=True,
                      epoch=meta["epoch"], fingerprint=meta["fingerprint"], source_size=source,
                      masks=str(meta.get("masks") or ""))
        answer = {}
        if outputs is not None:
            try:
                answer = self.answers(outputs, frame)
            except FrameError as failure:  # the server's answer does not fit the model: this frame's error only
                log.warning("frame %d: %s", frame.sequence, failure)
                error = str(failure)
        latency = dict(meta.get("latency_ms") or {})
        latency["forward"] = forward_ms
        self.results.write(Result(frame, answer, latency, error=error))

    # -- closing --------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._memory) + len(self.spool)

    def watch(self, metrics) -> None:
        metrics.watch_forwarding(self)

    def summary(self) -> str:
        stats = self.stats
        line = (f"forwarded to {self.client.url}: {stats.answered} answered, {stats.rejected} refused, "
                f"{stats.failures} failed attempts, {stats.spooled} spooled, {stats.dropped} dropped (spool full), "
                f"{stats.quarantined} quarantined, {stats.lost} lost (spool not writable), {len(self.spool)} waiting "
                f"in '{self.spool.folder}'")
        return line + (f"; SERVER MISCONFIGURED: {self.alarm}" if self.alarm else "")

    def interrupt(self) -> None:
        self._interrupted.set()

    def start(self) -> None:
        self.results.start()

    def close(self) -> None:
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=0.5 if self._interrupted.is_set() else self.drain_s)
        if self._thread.is_alive():
            log.warning("server %s did not take every frame within %g s; %d wait in '%s' for the next run",
                        self.client.url, self.drain_s, self.pending, self.spool.folder)
        self._abort.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join()
        with self._cond:
            self._spill()  # whatever is still in memory survives in the spool
        self.results.close()
        self.client.close()
        if self._failure is not None:
            raise self._failure
