"""The page's token: who may see the stream, the panels and the recordings.

Without a token (allowed on a loopback address only, ``edge.sinks.web``) everyone who reaches the page may.
With one, a request is let in when it carries ``Authorization: Bearer <token>`` (scripts, ``curl``), or the
session cookie the login sets (browsers: an ``<img>``, a download link or a stream cannot send a header).
The cookie holds an HMAC of the token, never the token; it is ``HttpOnly`` and ``SameSite=Strict`` (no
other site's page can make the browser send it), and it changes with the token. A wrong token is logged in
one line and answered after a pause. The page's own files (HTML, script, style) hold no secret and are
served to anyone; everything they show comes through the guarded endpoints.
"""

from __future__ import annotations

import hashlib
import hmac

COOKIE = "keycam_session"
SESSION_INFO = b"keycam web session 1"
REFUSED = "the page needs its token: log in on the page, or send 'Authorization: Bearer <token>'"


class Guard:
    def __init__(self, token: str | None) -> None:
        self.token = token.encode("utf-8") if token else None
        self.session = hmac.new(self.token, SESSION_INFO, hashlib.sha256).hexdigest() if self.token else None

    @property
    def required(self) -> bool:
        return self.token is not None

    def matches(self, token: str) -> bool:
        """``token`` is the page's token (compared in constant time)."""
        return self.token is not None and hmac.compare_digest(token.encode("utf-8"), self.token)

    def allows(self, headers, cookies) -> bool:
        """A request with these headers and cookies may see the page's data."""
        if self.token is None:
            return True
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and self.matches(credentials.strip()):
            return True
        cookie = cookies.get(COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode("utf-8"), self.session.encode("ascii"))
