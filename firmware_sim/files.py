"""Writing files so that an interrupted write never leaves a half-written file.

The payload goes to a temporary file beside the target, is flushed to disk, and is renamed over
the target in one step (``os.replace`` is atomic on POSIX file systems).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def write_atomic(path: str | Path, payload: bytes, mode: int | None = None) -> Path:
    """Write ``payload`` to ``path`` atomically; ``mode`` (e.g. 0o600) is set before the file appears."""
    path = Path(path)
    temp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "xb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
