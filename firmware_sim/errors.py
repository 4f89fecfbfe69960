"""Errors raised by keycam, drawn once.

Every error keycam raises on bad input derives from :class:`KeycamError`, and
its message is one line that names the object, the value and the fix, so the
command line can print it as it is and exit non-zero::

    KeycamError
    ├── KeyFileError     a key file is missing, malformed, too open, or in the way
    ├── SpecError        a readout spec is invalid (bad file, unknown field, out of bounds)
    └── FrameError       a frame does not match the spec (shape, channels, dtype, code range)

``edge.errors`` extends this tree with the errors of the device side. Messages
never contain key material; keys are named by their fingerprint.
"""

from __future__ import annotations


class KeycamError(Exception):
    """Base class of every error keycam reports to a user."""


class KeyFileError(KeycamError):
    """A key file cannot be used: missing, wrong length, insecure mode, or already present."""


class SpecError(KeycamError):
    """A readout spec is invalid."""


class FrameError(KeycamError):
    """A frame does not match the readout spec."""
