"""Files written so that an interrupted write never leaves a half-written file, and read so that a special file
never hangs the reader.

- :func:`write_atomic`: the payload goes to a temporary file beside the target (mode set before the first
  byte), is flushed to disk, and is renamed over the target in one step (``os.replace`` is atomic on POSIX
  file systems). A link at the target is replaced, never followed.
- :func:`write_together`: files that belong together (a model, its manifest and its recipes) are all
  written into a private staging folder beside them first, then renamed into place: a full disk or a
  failed write leaves none of them, never a model without the sidecar it names.
- :func:`remove_leftovers`: the temporary files and staging folders a killed writer left beside a target
  (each private, mode 0600 or 0700), removed by the next write of that target.
- :func:`read_regular`: an input file's bytes, opened without blocking and refused in one line unless it is a
  regular file (a FIFO would block the open, a device such as ``/dev/zero`` would never end).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import stat
from pathlib import Path

from firmware_sim.errors import KeycamError


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")


def _write(temp: Path, payload: bytes, mode: int | None) -> None:
    with open(temp, "xb") as handle:
        if mode is not None:
            os.fchmod(handle.fileno(), mode)
        handle.write(payload)
        handle.flush()
        os.fsync(handle.fileno())


def write_atomic(path: str | Path, payload: bytes, mode: int | None = None) -> Path:
    """Write ``payload`` to ``path`` atomically; ``mode`` (e.g. 0o600) is set before the file holds a byte."""
    path = Path(path)
    temp = _temporary(path)
    try:
        _write(temp, payload, mode)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path


def write_together(files: list[tuple[Path, bytes, int | None]]) -> list[Path]:
    """Write ``(path, payload, mode)`` files that belong together (one folder): each into a staging folder (mode
    0700) beside them, then each renamed into place in the order given; returns the paths. A failure while
    writing (a full disk) leaves every target as it was."""
    if not files:
        return []
    staging = _temporary(Path(files[0][0]))
    staging.mkdir(mode=0o700)
    try:
        staged = []
        for path, payload, mode in files:
            temp = staging / Path(path).name
            _write(temp, payload, mode)
            staged.append((temp, Path(path)))
        for temp, path in staged:
            os.replace(temp, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return [Path(path) for path, _, _ in files]


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove what an interrupted :func:`write_atomic` or :func:`write_together` of ``path`` left beside it
    (``.NAME.<8 hex>.tmp``, a file or a staging folder); returns what was removed."""
    path = Path(path)
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.[0-9a-f]{{8}}\.tmp$")
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        if not pattern.match(entry.name):
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            Path(entry.path).unlink(missing_ok=True)
        removed.append(Path(entry.path))
    return removed


def _kind(mode: int) -> str:
    return "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else \
        "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file"


def check_regular(path: str | Path, what: str, error: type[KeycamError] = KeycamError) -> Path:
    """``path``, when it is a regular file (through links); else ``error``, one line naming ``what``, the path and
    what it is: missing, a folder, a FIFO, a device or a socket (a reader of it would fail or wait for ever)."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist; check the path") from None
    except OSError as failure:
        raise error(f"{what} '{path}' cannot be read ({failure.strerror}); check the path") from None
    if not stat.S_ISREG(mode):
        raise error(f"{what} '{path}' is {_kind(mode)}; name a regular file")
    return path


def read_regular(path: str | Path, what: str, error: type[KeycamError] = KeycamError,
                 limit: int | None = None) -> bytes:
    """The bytes of the regular file ``path``; ``error`` (one line naming ``what`` and the path) for a file that
    is missing, a folder, a FIFO, a device or a socket, unreadable, or larger than ``limit`` bytes."""
    path = Path(path)
    try:  # O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused below)
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} '{path}' does not exist; check the path") from None
    except IsADirectoryError:
        raise error(f"{what} '{path}' is a folder; name a file") from None
    except OSError as failure:
        raise error(f"{what} '{path}' cannot be opened ({failure.strerror}); check the path") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or (limit is not None and info.st_size > limit):
        os.close(fd)
        if stat.S_ISREG(info.st_mode):
            raise error(f"{what} '{path}' holds {info.st_size} bytes, more than the {limit} it may; check the path")
        raise error(f"{what} '{path}' is {_kind(info.st_mode)}; name a regular file")
    os.set_blocking(fd, True)
    with os.fdopen(fd, "rb") as handle:
        try:
            return handle.read()
        except OSError as failure:
            raise error(f"{what} '{path}' cannot be read ({failure.strerror}); check the path") from None
