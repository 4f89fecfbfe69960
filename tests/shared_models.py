"""Models made once per test session and shared by every test module that asks for the same one.

Exporting an ultralytics model from its architecture file costs seconds to a minute (a child process imports
PyTorch and ultralytics, builds the random network, tweaks its weights, exports and simplifies it), keyifying a
detector about a second. What several modules need is made once, in the session's base temporary folder
(``tmp_path_factory.getbasetemp() / "shared"``), by the ``shared_models`` fixture (tests/conftest.py):

- :meth:`SharedModels.folder` names a folder by a digest of everything that decides what is made in it (the
  maker, its parameters and weight tweaks, the installed ultralytics, PyTorch, onnx and onnxslim versions) and
  holds a file lock on it while the caller makes what is missing there: makers skip a file that exists and put
  each file in place by renaming it, so a file that exists is complete. (Tests run in one process today; the lock
  keeps processes that share a base folder from making the same file at once. Under pytest-xdist each worker has
  a base folder of its own, so each makes its own.)
- The files there are shared: read them, never write beside or over them. A test that does takes its own copy
  (:func:`private_copy`).
- :meth:`SharedModels.keyified` is ``keyify(plain, key, options)`` made once per (model bytes, key, options): the
  result is kept pickled there and each caller unpickles a copy of its own.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pickle
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import onnx

VERSIONED = ("ultralytics", "torch", "onnx", "onnxslim")  # what decides an export's bytes besides its parameters


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """The installed versions of the packages an export depends on (None: not installed)."""
    from importlib import metadata

    found = {}
    for name in VERSIONED:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def digest(*parts) -> str:
    """A short digest of JSON-able parts (anything else by its repr)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:16]


def write_atomic(path: Path, data: bytes) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def private_copy(files: dict[str, Path], folder: Path) -> Path:
    """Copy shared files into ``folder`` (the caller's own), by the names given; returns ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        if not (folder / name).exists():
            shutil.copyfile(source, folder / name)
    return folder


class SharedModels:
    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def folder(self, kind: str, **params) -> Iterator[Path]:
        """The shared folder of ``kind`` made with ``params`` (and the installed versions), locked while the
        caller makes what is missing in it."""
        name = f"{kind}-{digest(kind, params, versions())}"
        folder = self.root / name
        with open(self.root / f"{name}.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if not folder.is_dir():
                    folder.mkdir()
                    (folder / "made-by.json").write_text(json.dumps(
                        {"kind": kind, "params": params, "versions": versions()}, indent=1, default=repr))
                yield folder
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def keyified(self, plain: onnx.ModelProto | str | Path, key, options):
        """``keyify(plain, key, options)``, made once per session for the same model bytes, key and options; a
        copy of the caller's own (a ModelProto is keyed by its bytes, a file by its contents)."""
        from export.keyify import keyify

        if isinstance(plain, onnx.ModelProto):
            model = ("model", hashlib.sha256(plain.SerializeToString()).hexdigest())
        else:
            model = ("file", hashlib.sha256(Path(plain).read_bytes()).hexdigest())
        key_tag = key.derive(b"keycam tests/shared models", 16).hex()  # the key itself, not its 64-bit fingerprint
        with self.folder("keyified") as folder:
            path = folder / f"{digest(model, key_tag, repr(options))}.pickle"
            if not path.exists():
                write_atomic(path, pickle.dumps(keyify(plain, key, options), protocol=pickle.HIGHEST_PROTOCOL))
            return pickle.loads(path.read_bytes())
