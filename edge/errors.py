"""Every error keycam reports to a user, drawn once::

    KeycamError                 firmware_sim.errors: the root
    ├── KeyFileError            firmware_sim.errors: a key file is missing, malformed, too open, or in the way
    ├── SpecError               firmware_sim.errors: a readout spec is invalid
    ├── FrameError              firmware_sim.errors: a frame does not match the spec
    ├── VectorsError            firmware_sim.errors: a golden-vectors file cannot be read or written
    ├── ModelError              firmware_sim.errors: a model file or manifest is missing, unreadable or not keyed
    │   └── UnsupportedModel    export.errors: the compiler declines a model (names the node, the op and why)
    ├── KeyMismatch             a keyed model, a key or a measurement belong to different keys
    ├── ImageFileError          an image, measurement or recording cannot be read or written
    ├── CameraError             a camera is missing, cannot be configured, or stopped delivering
    ├── ConfigError             a configuration file or command-line setting is invalid
    ├── SpoolError              the forwarding spool folder cannot be used, or an entry is damaged
    ├── WireError               talking to an inference server over the Open Inference Protocol
    │   ├── ProtocolError       a request or response breaks the protocol (``status``: the HTTP answer)
    │   ├── ServerUnavailable   the server cannot be reached or failed temporarily: retry later
    │   ├── ServerRejected      the server refused a request (4xx): ``final`` when it can never succeed
    │   └── AnswerError         an answer breaks the protocol or contradicts the server's own model
    ├── ServerError             ``keycam serve`` cannot start: a missing extra, a bad token file, an address in use
    └── LabError                an evaluation, preview or demo cannot run on what it was given
        └── DemoMismatch        firmware_sim and the edge transform disagreed (a bug: please report it)

Errors are defined where they are shared: the root and the errors that ``firmware_sim``, ``edge`` and
``export`` all raise live in ``firmware_sim.errors`` (which imports nothing), the compiler's own in
``export.errors`` (the device never imports ``export``), and every other one here.
``tests/test_errors.py`` checks that this drawing names every error class and its parent.

The command line prints any ``KeycamError`` as one line and exits with status 1.
"""

from __future__ import annotations

from firmware_sim.errors import FrameError, KeycamError, KeyFileError, ModelError, SpecError


class KeyMismatch(KeycamError):
    """A keyed model, a key file or a measurement carry different key fingerprints."""


class ImageFileError(KeycamError):
    """An image, measurement or recording file cannot be read, or cannot be written in the format asked for."""


class CameraError(KeycamError):
    """A camera cannot be opened or configured, or stopped delivering frames (the loop retries)."""


class ConfigError(KeycamError):
    """A configuration file, or a setting given on the command line, is invalid."""


class SpoolError(KeycamError):
    """The spool folder cannot be used, or one of its entries is damaged."""


class WireError(KeycamError):
    """Talking to an inference server over the Open Inference Protocol failed."""


class ProtocolError(WireError):
    """A request or response that breaks the protocol; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class ServerUnavailable(WireError):
    """The server cannot be reached or failed temporarily; retry later."""


class ServerRejected(WireError):
    """The server refused the request. ``final``: this request can never succeed (drop it, counted); otherwise
    the server or the device's settings are wrong for every request (keep them all, raise the alarm)."""

    def __init__(self, message: str, status: int, final: bool = True) -> None:
        super().__init__(message)
        self.status, self.final = status, final


class AnswerError(WireError):
    """A server's answer (metadata or inference) breaks the protocol, is over its size bound, or contradicts
    the server's own model metadata: the server is broken, the request is kept."""


class ServerError(KeycamError):
    """The server cannot start: a missing extra, a bad token file, an address in use."""


class LabError(KeycamError):
    """An evaluation, a preview or the demo cannot run on what it was given."""


class DemoMismatch(LabError):
    """firmware_sim and the edge transform disagreed (a bug: please report it)."""


__all__ = [
    "CameraError", "ConfigError", "DemoMismatch", "FrameError", "ImageFileError", "KeyFileError", "KeyMismatch",
    "KeycamError", "LabError", "ModelError", "ProtocolError", "ServerError", "ServerRejected", "ServerUnavailable",
    "SpecError", "SpoolError", "WireError",
]
