"""Outputs never destroy inputs: a command's output files are checked against its inputs before any work.

An output that names the same file as an input (the same resolved path, or the same inode through
another name: a hard link, a symlink, ``./x`` against ``x``) is refused, as is an output that is a
symbolic link (keycam never writes through one), a folder, a FIFO, socket or block device, in a folder that
does not exist or cannot be written, or the same file as another output of the same command; the error names
both and the fix.

What counts as an input is more than the paths a command names: a model's files beside it (its manifest,
epoch recipes, a split's feature and task models and theirs: ``firmware_sim.words.model_files``), and the
embedded default's key and compiled models in its folder (``edge.places``), which every command protects.
Commands call :func:`check_outputs` first, then read their inputs, then write (atomically where the format
allows), so a refusal leaves every file as it was.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from edge.errors import ConfigError
from firmware_sim.words import MODEL_SUFFIX, model_files

OWN_PREFIXES = ("default-", "face-")  # the default job's compiled models (edge.default), in its folder


def _same(a: Path, b: Path) -> bool:
    try:
        if a.resolve() == b.resolve():
            return True
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _real(value) -> Path | None:
    return None if value in (None, "", "-") else Path(value)


def sidecars(name: str, model: Path) -> dict[str, Path]:
    """The files beside the model ``model`` that belong to it, by a name the user knows: its manifest and epoch
    recipes, and a split's feature and task models with theirs."""
    files = model_files(model)
    found = {f"{name}'s manifest": files.manifest, f"{name}'s epoch recipes": files.epochs}
    for role, path in (("feature model", files.feature), ("task model", files.task)):
        found[f"{name}'s {role}"] = path
        found[f"{name}'s {role}'s manifest"] = model_files(path).manifest
        found[f"{name}'s {role}'s epoch recipes"] = model_files(path).epochs
    return found


def own_files(folder: str | Path | None = None) -> dict[str, Path]:
    """The embedded default's key (whether or not it exists yet) and the compiled models and sidecars in its
    folder (``folder``, else ``edge.places.default_folder``): inputs of every command."""
    from edge.default import KEY_FILE
    from edge.places import default_folder

    where = default_folder(folder)
    found = {"the default job's key": where / KEY_FILE}
    try:
        names = sorted(entry.name for entry in os.scandir(where) if entry.name.startswith(OWN_PREFIXES))
    except OSError:  # no folder yet (nothing in it to protect), or one keycam cannot list
        names = []
    for name in names:
        found[f"the default job's file {name}"] = where / name
    return found


def _expanded(inputs: dict, own_folder) -> dict[str, Path]:
    found = {}
    for name, value in inputs.items():
        path = _real(value)
        if path is None:
            continue
        found[name] = path
        if path.name.endswith(MODEL_SUFFIX):
            for side, beside in sidecars(name, path).items():
                found.setdefault(side, beside)
    for name, path in own_files(own_folder).items():
        found.setdefault(name, path)
    return found


def check_outputs(outputs: dict[str, str | Path | None], inputs: dict[str, str | Path | None], *,
                  folders_made: bool = False, own_folder: str | Path | None = None) -> None:
    """Refuse an output that is an input (or a file of one, see the module's docstring), another output, a link,
    a folder, or in a folder keycam cannot write to.

    ``outputs`` and ``inputs`` map a name the user knows (``--output``, ``SOURCE``) to a path; None, ""
    and "-" (standard output) are skipped. ``folders_made``: the command creates the outputs' folders.
    ``own_folder``: the embedded default's folder when the configuration names one (``[model] folder``).
    """
    ins = _expanded(inputs, own_folder)
    seen: dict[str, Path] = {}
    for name, value in outputs.items():
        out = _real(value)
        if out is None:
            continue
        if out.is_symlink():
            raise ConfigError(f"{name} '{out}' is a symbolic link (to '{os.readlink(out)}'); keycam never writes "
                              f"through a link: name the file itself")
        for in_name, path in ins.items():
            if _same(out, path):
                raise ConfigError(f"{name} '{out}' is {in_name} '{path}': writing it would destroy the input; "
                                  f"give {name} another path")
        for other_name, other in seen.items():
            if _same(out, other):
                raise ConfigError(f"{name} '{out}' is also {other_name} '{other}': one would write over the other; "
                                  f"give each its own file")
        seen[name] = out
        _check_place(name, out, folders_made)


SPECIAL = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISBLK, "a block device"))
"""Files keycam never writes to: opening a FIFO waits for a reader for ever; a disk would be overwritten."""


def _check_place(name: str, out: Path, folders_made: bool) -> None:
    if out.is_dir():
        raise ConfigError(f"{name} '{out}' is a folder; name a file")
    try:
        mode = out.stat().st_mode
    except OSError:
        mode = 0
    for test, what in SPECIAL:
        if mode and test(mode):
            raise ConfigError(f"{name} '{out}' is {what}, not a regular file; name a regular file")
    parent = out.parent if str(out.parent) else Path(".")
    if folders_made and not parent.exists():
        return
    if not parent.is_dir():
        raise ConfigError(f"{name} '{out}': folder '{parent}' does not exist; create it first")
    if not os.access(parent, os.W_OK):
        raise ConfigError(f"{name} '{out}': folder '{parent}' is not writable")
    if out.exists() and not os.access(out, os.W_OK):
        raise ConfigError(f"{name} '{out}' exists and is read-only")


def open_output(path: str | Path, append: bool = False, mode: int = 0o644):
    """A text output (results, events: JSON lines) opened for writing without following a symbolic link
    (``O_NOFOLLOW``): a link put at the path after :func:`check_outputs` ran is refused, never written through
    to its target. ``mode`` is the new file's (under the umask); the caller closes the stream."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | (os.O_APPEND if append else os.O_TRUNC)
    try:
        fd = os.open(path, flags, mode)
    except OSError:
        if path.is_symlink():
            raise ConfigError(f"'{path}' is a symbolic link (to '{os.readlink(path)}'); keycam never writes through "
                              f"a link: name the file itself") from None
        raise
    return os.fdopen(fd, "a" if append else "w", encoding="utf-8")
