"""Outputs never destroy inputs: a command's output files are checked against its inputs before any work.

An output that names the same file as an input (the same resolved path, or the same inode through
another name: a hard link, a symlink, ``./x`` against ``x``) is refused, as is an output that is a
folder, or one in a folder that does not exist or cannot be written; the error names both and the fix.
Commands call :func:`check_outputs` first, then read their inputs, then write (atomically where the
format allows), so a refusal leaves every file as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import ConfigError


def _same(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None], *,
                  folders_made: bool = False) -> None:
    """Refuse an output that is an input, a folder, or in a folder keycam cannot write to.

    ``outputs`` and ``inputs`` map a name the user knows (``--output``, ``SOURCE``) to a path; None, ""
    and "-" (standard output) are skipped. ``folders_made``: the command creates the outputs' folders.
    """
    def real(path) -> Path | None:
        return None if path in (None, "", "-") else Path(path)

    ins = {name: path for name, value in inputs.items() if (path := real(value)) is not None}
    for name, value in outputs.items():
        out = real(value)
        if out is None:
            continue
        for in_name, path in ins.items():
            if _same(out, path):
                raise ConfigError(f"{name} '{out}' is {in_name} '{path}': writing it would destroy the input; "
                                  f"choose another {name}")
        if out.is_dir():
            raise ConfigError(f"{name} '{out}' is a folder; name a file")
        parent = out.parent if str(out.parent) else Path(".")
        if folders_made and not parent.exists():
            continue
        if not parent.is_dir():
            raise ConfigError(f"{name} '{out}': folder '{parent}' does not exist; create it first")
        if not os.access(parent, os.W_OK):
            raise ConfigError(f"{name} '{out}': folder '{parent}' is not writable")
        if out.exists() and not os.access(out, os.W_OK):
            raise ConfigError(f"{name} '{out}' exists and is read-only")
