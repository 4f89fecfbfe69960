"""Secrets other than keys: bearer tokens for servers, in files only their owner can read; and where a secret
handed over by systemd is.

A token file is read like a key file (``firmware_sim.keys``): it must be a file of mode 0600 (no
access for group or others) holding one printable token; the token itself is never printed.

A path written ``credential:NAME`` (``[model] key = "credential:camera.key"``) names a systemd credential: the
file ``NAME`` in ``$CREDENTIALS_DIRECTORY``, which systemd sets for a unit with ``LoadCredential=NAME:PATH``
(systemd.exec(5), "Credentials"; mode 0400, readable by the unit's user only, on a memory file system).
"""

from __future__ import annotations

from pathlib import Path

import os

from edge.errors import ConfigError

CREDENTIAL = "credential:"


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


def credential_path(value: str) -> str:
    """``value``, or for ``credential:NAME`` the path of systemd's credential NAME (``$CREDENTIALS_DIRECTORY/NAME``)."""
    if not value.startswith(CREDENTIAL):
        return value
    name = value[len(CREDENTIAL):]
    if not name or "/" in name or name in (".", ".."):
        raise ConfigError(f"{value!r}: a credential is named by one file name, e.g. 'credential:camera.key'")
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        raise ConfigError(f"{value!r} names a systemd credential, but CREDENTIALS_DIRECTORY is not set: run it from a "
                          f"unit with LoadCredential={name}:/path/to/the/file, or give the file's path")
    return str(Path(folder) / name)
