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
- Each request carries an id (device, run, counter), the same across retries and restarts, so a
  server that already answered it answers again instead of computing twice; the device writes one
  result per request and removes the request only after that. The answer's status decides (the
  table in ``edge.wire.client``): only a request that can never succeed (400, 413, 422, from a
  server whose model has not changed) is dropped for good, its result recording the server's error
  (``rejected``: "refused"); 408, 429, 5xx and lost connections are retried.
- After any failure, refusal or bad answer the server is checked again (``edge.sinks.forward_watch``);
  a *misconfigured* one (another key, a changed model, refusing every request, answering what its
  model cannot) gets nothing: every frame stays in the spool, the alarm is raised (``alarm``, the
  log, ``keycam_forward_alarm``), and the device retries with backoff until it is fixed.
- A damaged spool entry (digest, truncation, a field of the wrong type, not a regular file) is moved
  to the spool's ``quarantine/`` and counted, never sent, and delivery goes on.
- ``close`` waits up to ``drain_s`` for the queue and spool to empty (a stop signal, before or during
  the wait, cuts it to ``STOP_GRACE_S``), then persists what is left to the spool; every wait for the
  sender is bounded, so a server that never answers cannot hold the device. Results carry the
  latency of the device's stages plus ``forward`` (the successful request's round trip).

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
from edge.errors import AnswerError, ConfigError, FrameError, ServerRejected, ServerUnavailable, SpoolError
from edge.frame import Frame, Result
from edge.sinks.base import Sink
from edge.sinks.forward_watch import ServerWatch
from edge.wire.client import RemoteModel, V2Client
from edge.wire.codec import encode_request
from edge.wire.spool import Spool

log = logging.getLogger(__name__)
POLICIES = ("drop_oldest", "stop_capture")
STOP_GRACE_S = 0.5  # after a stop signal, how long close waits for the sender to finish what it holds
JOIN_S = 1.0  # then, how long it waits for a sender stuck in a request (it is abandoned after that)


@dataclass
class _Item:
    counter: int
    meta: dict
    body: bytes | None  # None: the body is in the spool


@dataclass
class ForwardStats:
    answered: int = 0
    rejected: int = 0  # refused for good: the request can never succeed (400, 413, 422), dropped
    failures: int = 0  # attempts that met an unavailable server
    spooled: int = 0
    dropped: int = 0  # spool full, oldest dropped
    waited: int = 0  # spool full, capture waited
    quarantined: int = 0  # damaged spool entries moved aside, never sent
    misconfigured: int = 0  # times the server was found misconfigured (edge.sinks.forward_watch): frames kept
    lost: int = 0  # frames that could be neither sent nor spooled (the spool's disk full or failing)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class ForwardSink(Sink):
    role = "forward"
    tracking = None  # the run's tracking stage (edge.events), set by the job: answers are tracked here, in order

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
        self.guard = ServerWatch(client, remote)  # the alarm, while the server is misconfigured
        self._abort = threading.Event()
        self._interrupted = threading.Event()  # a stop signal: no waiting for room, no draining at close
        self._cond = threading.Condition()
        self._next = spool.next
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._send_loop, name="keycam-forward", daemon=True)
        self._thread.start()

    @property
    def alarm(self) -> str:
        return self.guard.alarm

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
        frame = result.frame
        parameters = {"keycam_fingerprint": result.fingerprint, "keycam_epoch": result.epoch}
        if frame.seal is not None and not result.tensors:  # a sealed measurement leaves with its seal
            parameters["keycam_seal"] = frame.seal.to_hex()
        body, header_length = encode_request({self.remote.input_name: payload}, request_id=request_id,
                                             parameters=parameters)
        meta = {"id": request_id, "sequence": frame.sequence, "timestamp_ns": frame.timestamp_ns,
                "origin": frame.origin, "fingerprint": frame.fingerprint, "epoch": frame.epoch,
                "header_length": header_length, "rows": int(payload.shape[0]) if payload.ndim else 1,
                "latency_ms": result.latency_ms,
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
        if not self.guard.verified:  # after any failure: is it still the server the device checked at start?
            reason = self.guard.mismatch()
            if reason is not None:
                return self._hold(reason, delay)
        start = time.perf_counter()
        try:
            response = self.client.infer(self.remote, body, meta["header_length"], meta.get("rows", 1))
        except ServerUnavailable as error:
            with self._cond:
                self.stats.failures += 1
                if not self._down:
                    log.warning("%s; spooling to '%s' and retrying", error, self.spool.folder)
                self._down, self.guard.verified = True, False
                self._sending = None
                self._spill()
            return None if self._abort.wait(delay) else min(delay * 2, self.retry_max_s)
        except ServerRejected as error:  # a refusal of every frame is a misconfigured server, not bad frames
            reason = self.guard.mismatch() or (None if error.final else f"{error}; no frame can pass")
            if reason is not None:
                return self._hold(reason, delay)
            self._emit(meta, None, str(error), 0.0)
            self._done(item, rejected=True)
            return delay
        except AnswerError as error:  # the server answers what its own model cannot: it is broken, not the frame
            return self._hold(self.guard.mismatch() or str(error), delay)
        if self._abort.is_set():
            return None  # the sink closed meanwhile: the frame stays in the spool (its id makes a resend harmless)
        if self._down:
            log.warning("server %s answers again; delivering %d spooled frames", self.client.url, len(self.spool))
        self._emit(meta, response.outputs, None, (time.perf_counter() - start) * 1e3)
        self._done(item)
        self.guard.answered()
        return self.retry_min_s

    def _hold(self, reason: str, delay: float) -> float | None:
        """A misconfigured server: keep every frame in the spool, raise the alarm, retry later; the next delay, or
        None to stop."""
        with self._cond:
            self.stats.misconfigured += 1
            self.guard.raise_alarm(reason, self.spool.folder)
            self._down = True
            self._sending = None
            self._spill()
        return None if self._abort.wait(delay) else min(delay * 2, self.retry_max_s)

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
        result = Result(frame, answer, latency, error=error)
        if self.tracking is not None:  # this thread answers the run's frames, one at a time and in order
            self.tracking(result)
        self.results.write(result)

    # -- closing --------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._memory) + len(self.spool)

    def watch(self, metrics) -> None:
        metrics.watch_forwarding(self)
        self.results.watch(metrics)  # the answer sinks behind it (the MQTT sink's counters, the answers')

    def summary(self) -> str:
        stats = self.stats
        line = (f"forwarded to {self.client.url}: {stats.answered} answered, {stats.rejected} refused (dropped for "
                f"good: they can never succeed), "
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
        self._drain()
        self._abort.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=JOIN_S)  # a sender inside a request that never ends is left behind, a daemon
        stuck = self._thread.is_alive()
        if stuck:
            log.warning("server %s: a request is still unanswered; it waits in '%s' for the next run",
                        self.client.url, self.spool.folder)
        with self._cond:
            self._spill()  # whatever is still in memory survives in the spool
        self.results.close()
        if not stuck:  # closing the connection under a request in flight could wait for it
            self.client.close()
        self.spool.close()
        if self._failure is not None:
            raise self._failure

    def _drain(self) -> None:
        """Wait up to ``drain_s`` for the sender to deliver everything, cut to ``STOP_GRACE_S`` by a stop signal
        that comes before or during the wait."""
        deadline, grace = time.monotonic() + self.drain_s, None
        while self._thread.is_alive() and time.monotonic() < min(deadline, grace or deadline):
            if grace is None and self._interrupted.is_set():
                grace = time.monotonic() + STOP_GRACE_S
            self._thread.join(timeout=0.1)
        if self._thread.is_alive() and not self._interrupted.is_set():
            log.warning("server %s did not take every frame within %g s; %d wait in '%s' for the next run",
                        self.client.url, self.drain_s, self.pending, self.spool.folder)
