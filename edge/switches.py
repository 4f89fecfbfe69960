"""The run's switches: detection and recording, turned on and off while the run runs (Frigate's ``detect`` and
``recordings`` switches).

One :class:`Switches` is made per run by ``edge.job``; the capture loop (``edge.loop``) consults it for each frame,
and whoever takes commands sets it: the MQTT sink's command topics (``<base>/detect/set`` and
``<base>/recordings/set``, ``ON`` or ``OFF``; ``edge.sinks.mqtt``), which it reaches through
``SinkContext.switches``. Neither the pipeline nor any sink changes for them:

- **detect off**: the loop runs neither the keyed model nor the answer stage for the frame (so no tracking and no
  forwarding either), and hands the frame's bare measurement to the frame sinks (the recorder) only. The answer
  sinks hear nothing: no results line, no event; the occupancy stays as it was last seen until detection is back
  on (then the objects no longer in view end after ``[events] end_after_s``, as usual).
- **recordings off**: the loop hands no result to the frame sinks (the recorder); every other sink as before.

Each frame is decided once: detection when the frame reaches the device stage, recording when it reaches the sinks,
so a switch flipped between the two applies from the next frame. Both start on, at every start of a run.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

NAMES = ("detect", "recordings")
PAYLOADS = {"ON": True, "OFF": False}  # Frigate's and Home Assistant's switch payloads


class Switches:
    """Named on/off switches (``NAMES``), safe to set from any thread (a network thread) and read from the loop's.

    ``offered`` are the switches that mean something in this run (``detect`` always; ``recordings`` once the job
    has a recorder: :meth:`offer`); only those are offered to users (Home Assistant's switch entities)."""

    def __init__(self, detect: bool = True, recordings: bool = True) -> None:
        self._on = {"detect": detect, "recordings": recordings}
        self._lock = threading.Lock()
        self._listeners: list[Callable[[str, bool], None]] = []
        self.offered: tuple[str, ...] = ("detect",)
        self.changes = 0  # switches flipped in this run

    @property
    def detect(self) -> bool:
        """Run the keyed model and the answer for new frames."""
        return self._on["detect"]

    @property
    def recordings(self) -> bool:
        """Hand results to the frame sinks (the recorder)."""
        return self._on["recordings"]

    def offer(self, name: str) -> None:
        _known(name)
        if name not in self.offered:
            self.offered = (*self.offered, name)

    def state(self) -> dict[str, bool]:
        with self._lock:
            return dict(self._on)

    def set(self, name: str, on: bool) -> bool:
        """Turn a switch on or off; True when that changed it (its listeners are told then, in the caller's thread)."""
        _known(name)
        with self._lock:
            changed = self._on[name] != on
            self._on[name] = on
            if changed:
                self.changes += 1
            listeners = list(self._listeners)
        if changed:
            log.info("keycam: %s turned %s", name, "on" if on else "off")
            for listener in listeners:
                listener(name, on)
        return changed

    def command(self, name: str, payload: str) -> bool | None:
        """An ``ON`` or ``OFF`` command (spaces and case aside); None, changing nothing, for any other payload."""
        on = PAYLOADS.get(payload.strip().upper())
        if on is None:
            log.warning("keycam: the %s switch takes ON or OFF, not %r; ignored", name, payload[:40])
            return None
        self.set(name, on)
        return on

    def watch(self, listener: Callable[[str, bool], None]) -> None:
        """Call ``listener(name, on)`` whenever a switch changes."""
        with self._lock:
            self._listeners.append(listener)


def _known(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"no switch named {name!r}; the switches are {', '.join(NAMES)}")
