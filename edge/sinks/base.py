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
under its section name; ``build`` returns the sink, or None when the section leaves it off. A run
builds its sinks in two phases, so that no sink depends on the order of the registry: first every
sink whose section does not ``receive_answers``, then those that do (the forwarding sink), given the
finished list of answer sinks in their :class:`SinkContext`.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from edge.frame import Result
from edge.schema import Section

if TYPE_CHECKING:
    from edge.answers import Answers
    from edge.events import Tracking
    from edge.switches import Switches
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

    def attach(self, run) -> None:  # noqa: B027 - optional hook
        """The run this sink belongs to (its ``edge.job.Job``), once it is built: for a sink that shows the whole
        run (the web page: the source's health, the other sinks, the masks). Nothing by default."""

    def watch(self, metrics) -> None:  # noqa: B027 - optional hook
        """Export this sink's own counters on the run's metrics endpoint (``edge.metrics``); nothing by default."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


@dataclass(frozen=True)
class SinkContext:
    """What a sink's settings are built against: the run's key, the manifest it reads out for, and more."""

    key: MasterKey
    manifest: Manifest
    replay: bool = False  # a replay writes deterministic results (no latency)
    force: bool = False  # replace an existing output file
    labels: tuple[str, ...] = ()  # the class names the answers use
    answers: Answers | None = None  # the run's answer stage (edge.answers), for sinks that answer frames themselves
    forwarding: object | None = None  # edge.sinks.forwarding.Forwarding, when the run forwards
    answer_sinks: tuple[Sink, ...] = ()  # phase two only: the answer sinks built in phase one
    tracking: Tracking | None = None  # the run's tracking stage (edge.events) when [events] is on: at close, a sink
    # that publishes events writes its finish() (the end events of the objects still in view)
    switches: Switches | None = None  # the run's switches (edge.switches): detection and recording on or off, which
    # the loop reads and a sink that takes commands (MQTT) sets

    def with_answer_sinks(self, sinks: list[Sink]) -> SinkContext:
        return dataclasses.replace(self, answer_sinks=tuple(sinks))


class SinkConfig(Section):
    """One sink kind's settings section."""

    receives_answers: ClassVar[bool] = False  # built in phase two, with the answer sinks (the forwarding sink)

    def build(self, context: SinkContext) -> Sink | None:
        raise NotImplementedError


def build_sinks(sections: list[SinkConfig], context: SinkContext) -> list[Sink]:
    """The run's sinks from its sections, in two phases (see the module's docstring), in the order the loop writes
    to them: the answer sinks (or, when the run forwards, the forwarding sink, which hands them its answers
    itself), then the frame sinks (the recorder)."""
    built = [(section, section.build(context)) for section in sections if not section.receives_answers]
    answer_sinks = [sink for _, sink in built if sink is not None and sink.role == "answers"]
    phase_two = context.with_answer_sinks(answer_sinks)
    senders = [sink for section in sections if section.receives_answers
               if (sink := section.build(phase_two)) is not None]
    frame_sinks = [sink for _, sink in built if sink is not None and sink.role != "answers"]
    if senders:  # the answer sinks are the senders' now: the loop writes to the senders and the frame sinks
        return senders + frame_sinks
    return answer_sinks + frame_sinks
