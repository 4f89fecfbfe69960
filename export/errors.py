"""Errors of the model compiler (the whole tree is drawn in ``edge/errors.py``).

``ModelError`` (``firmware_sim.errors``, shared with the device) is a model file that is missing,
unreadable or not the model expected; :class:`UnsupportedModel` is the compiler declining a model,
naming the node, the op and why. The compiler never writes a model it could not make exact: it
raises instead.
"""

from __future__ import annotations

from firmware_sim.errors import ModelError


class UnsupportedModel(ModelError):
    """The keyed compiler cannot make an exact twin of this model."""

    def __init__(self, node: str, op: str, reason: str) -> None:
        self.node, self.op, self.reason = node, op, reason
        super().__init__(f"node {node!r} ({op}): {reason}")


__all__ = ["ModelError", "UnsupportedModel"]
