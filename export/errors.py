"""Errors of the model compiler, extending ``firmware_sim.errors``::

    KeycamError                       (firmware_sim.errors)
    ├── ModelFileError                a model file is missing, unreadable or not the model expected
    └── UnsupportedModel              the compiler declines a model: names the node, the op and why

The compiler never writes a model it could not make exact: it raises instead.
"""

from __future__ import annotations

from firmware_sim.errors import KeycamError


class ModelFileError(KeycamError):
    """A model file cannot be read, or does not hold what the command needs."""


class UnsupportedModel(KeycamError):
    """The keyed compiler cannot make an exact twin of this model."""

    def __init__(self, node: str, op: str, reason: str) -> None:
        self.node, self.op, self.reason = node, op, reason
        super().__init__(f"node {node!r} ({op}): {reason}")
