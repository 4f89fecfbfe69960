"""The sink interface, and the base of each sink's configuration section.

A sink receives each frame's :class:`~edge.frame.Result` in frame order (the measurement is
``result.measurement``) and is closed once. It checks its settings when it is made and opens its
files only in ``start``, which the loop calls once the source has opened. It must leave nothing half-written when closed, including
on SIGINT/SIGTERM: the loop always calls ``close``. A sink's ``role`` says what it is for:

- ``answers``: it consumes results (the results file, event publishers);
- ``frames``: it consumes measurements (the recorder);
- ``forward``: it sends measurements (or a split's features) to a server and hands the server's
  answers to the ``answers`` sinks itself.

Each sink kind has a configuration section (a :class:`SinkConfig`), registered in ``edge.sinks``
under its section name; ``build`` returns the sink, or None when the section leaves it off.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edge.frame import Result
from edge.schema import Section

if TYPE_CHECKING:
    from firmware_sim.keys import MasterKey
    from firmware_sim.manifest import Manifest


class Sink(ABC):
    role = "answers"
    wants_plain = False  # only a recorder started with the explicit debug flag asks for plain frames

    def start(self) -> None:  # noqa: B027 - optional hook
        """Open what the sink writes to; the loop calls it once the source has opened (nothing by default).

        Until then a sink has only checked its settings, so a run that cannot start touches no output."""

    @abstractmethod
    def write(self, result: Result) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release (nothing by default)."""

    def interrupt(self) -> None:  # noqa: B027 - optional hook
        """A stop signal arrived: stop waiting for anything slow and persist at close (nothing by default).

        Called from the signal handler, in the thread that may be inside ``write``: it must only set flags."""

    def summary(self) -> str | None:
        """One line for the run's summary, or None."""
        return None

    def watch(self, metrics) -> None:  # noqa: B027 - optional hook
        """Export this sink's own counters on the run's metrics endpoint (``edge.metrics``); nothing by default."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass
class SinkContext:
    """What a sink's settings are built against: the run's key, the manifest it reads out for, and more."""

    key: MasterKey
    manifest: Manifest
    replay: bool = False  # a replay writes deterministic results (no latency)
    force: bool = False  # replace an existing output file
    labels: list[str] | None = None
    answers: list[Sink] = field(default_factory=list)  # forwarding hands the server's answers to these
    forwarding: object | None = None  # edge.sinks.forwarding.Forwarding, when the run forwards
    decoder: object | None = None  # edge.tasks.Decoder: how the final outputs become answers


class SinkConfig(Section):
    """One sink kind's settings section."""

    def build(self, context: SinkContext) -> Sink | None:
        raise NotImplementedError
