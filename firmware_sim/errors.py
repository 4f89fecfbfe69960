"""The root of keycam's errors, and the errors of the sensor's reference model.

Every error keycam raises on bad input derives from :class:`KeycamError`, and its message is one
line that names the object, the value and the fix, so the command line can print it as it is and
exit non-zero. The whole tree, with the errors of ``edge`` and ``export``, is drawn once, in
``edge/errors.py``; this package defines the root and the errors that ``firmware_sim``, ``edge`` and
``export`` share. Messages never contain key material; keys are named by their fingerprint.
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


class ModelError(KeycamError):
    """A model file or its manifest cannot be used: missing, unreadable, not keyed, or fed the wrong input."""


class VectorsError(KeycamError):
    """A golden-vectors file cannot be read or written."""
