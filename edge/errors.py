"""Errors of the device side, extending ``firmware_sim.errors``::

    KeycamError                       (firmware_sim.errors)
    ├── KeyFileError                  key file missing, malformed, too open, or in the way
    ├── SpecError                     readout spec invalid
    ├── FrameError                    frame does not match the spec
    ├── ImageFileError                an image or measurement file cannot be read or written
    ├── CameraError                   a camera is missing, cannot be configured, or stopped delivering
    ├── ModelError                    a model file is missing, not keyed, or fed the wrong input
    └── KeyMismatch                   a keyed model, a key or a measurement belong to different keys

The command line prints any ``KeycamError`` as one line and exits with status 1.
"""

from __future__ import annotations

from firmware_sim.errors import FrameError, KeycamError, KeyFileError, SpecError


class ImageFileError(KeycamError):
    """An image or measurement file cannot be read, or cannot be written in the format asked for."""


class CameraError(KeycamError):
    """A camera cannot be opened or configured, or stopped delivering frames (the loop retries)."""


class ModelError(KeycamError):
    """A model cannot be loaded or run: missing, not a keyed model, or an input of the wrong shape or dtype."""


class KeyMismatch(KeycamError):
    """A keyed model, a key file or a measurement carry different key fingerprints."""


__all__ = ["CameraError", "FrameError", "ImageFileError", "KeyFileError", "KeyMismatch", "KeycamError", "ModelError", "SpecError"]
