"""The forwarding sink's alarm: is the server still the one the device checked at start?

After any failure, refusal or bad answer, the forwarding sink (``edge.sinks.forward``) asks the server for
its model again (:meth:`ServerWatch.mismatch`). A model keyed for another key, or changed in anything the
waiting frames depend on (``edge.wire.remote.RemoteModel.changes``: the readout spec, sealed or not, the
layout policy, the role, the key epoch, the input, the outputs, the decoding), a server that refuses every
request (401, 404, ...) or answers what its own model cannot (``AnswerError``) is *misconfigured*: the
sink keeps every frame, and the alarm (:attr:`ServerWatch.alarm`: the reason, in one line, logged once
per reason) stays raised until the server answers a frame well again.
"""

from __future__ import annotations

import logging

from edge.errors import KeyMismatch, ServerUnavailable, WireError
from edge.wire.client import V2Client
from edge.wire.remote import RemoteModel

log = logging.getLogger(__name__)


class ServerWatch:
    """The server's model as checked at start, and the alarm while the server is not that model."""

    def __init__(self, client: V2Client, remote: RemoteModel) -> None:
        self.client, self.remote = client, remote
        self.alarm = ""  # why the server is misconfigured, while it is
        self.verified = True  # the server was checked by connect(); checked again after every failure

    def mismatch(self) -> str | None:
        """Why the server's model is no longer the one the device checked at start, or None if it still is."""
        try:
            now = self.client.model(self.remote.name, self.remote.version)
        except ServerUnavailable:
            return None  # down, not misconfigured: the next send finds out again
        except (KeyMismatch, WireError) as error:
            return str(error)
        expected = self.remote.manifest
        where = f"the server's model '{now.name}' at {self.client.url}"
        if now.manifest.refusal(expected.key_fingerprint) is not None:
            return (f"{where} is now keyed for {now.manifest.key_fingerprint}, this device's key is "
                    f"{expected.key_fingerprint}")
        changes = self.remote.changes(now)
        if changes:
            return f"{where} changed: {'; '.join(changes)}"
        self.verified = True
        return None

    def raise_alarm(self, reason: str, folder) -> None:
        """The server is misconfigured: say why (once per reason), and check it again before the next send."""
        if self.alarm != reason:
            log.error("%s; keeping every frame in '%s' until it is fixed", reason, folder)
        self.alarm, self.verified = reason, False

    def answered(self) -> None:
        """The server answered a frame well: the alarm, if any, is over."""
        if self.alarm:
            log.warning("server %s answers this device's frames again; delivering the spool", self.client.url)
            self.alarm = ""
