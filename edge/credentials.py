"""Secrets other than keys: bearer tokens for servers, in files only their owner can read.

A token file is read like a key file (``firmware_sim.keys``): it must be a file of mode 0600 (no
access for group or others) holding one printable token; the token itself is never printed.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import ConfigError


def read_token(path: str | Path) -> str:
    """A bearer token from a file that only its owner can read (like a key file)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"token file '{path}' does not exist")
    if path.stat().st_mode & 0o077:
        raise ConfigError(f"token file '{path}' is readable by group or others (mode "
                          f"{path.stat().st_mode & 0o777:o}); run: chmod 600 {path}")
    try:
        token = path.read_bytes().decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"token file '{path}' is not UTF-8 text; it must hold one printable token") from None
    except OSError as error:
        raise ConfigError(f"token file '{path}' cannot be read: {error.strerror}") from None
    if not token or any(c.isspace() for c in token) or not token.isprintable():
        raise ConfigError(f"token file '{path}' must hold one printable token without spaces")
    return token
