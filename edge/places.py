"""Where keycam keeps what it makes for itself, decided in one place.

- **The embedded default's folder** (:func:`default_folder`): the key and the compiled models of the
  default job (``keycam run`` with no configuration). A folder the user names (``[model] folder``), else
  ``$KEYCAM_DATA`` when set, else the platform's per-user data folder: ``$XDG_DATA_HOME/keycam``, which is
  ``~/.local/share/keycam`` when ``XDG_DATA_HOME`` is unset (the XDG Base Directory convention). Never
  the working directory: a run started elsewhere finds the same key.
- **The shipped face detector** (:func:`face_model`): ``$KEYCAM_FACE_MODEL`` when set, else where set-up
  put it in this environment (``<prefix>/share/keycam/face_detection_short_range.onnx``).

The environment is read here and nowhere else.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

FACE_MODEL_FILE = "face_detection_short_range.onnx"


def default_folder(named: str | Path | None = None) -> Path:
    """The embedded default's folder: ``named``, ``$KEYCAM_DATA``, or ``$XDG_DATA_HOME/keycam``."""
    if named:
        return Path(named).expanduser()
    if os.environ.get("KEYCAM_DATA"):
        return Path(os.environ["KEYCAM_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or ""
    if not os.path.isabs(base):  # the specification says to ignore a relative XDG_DATA_HOME
        base = str(Path.home() / ".local" / "share")
    return Path(base) / "keycam"


def face_model() -> Path:
    """Where the converted face detector is: ``$KEYCAM_FACE_MODEL``, or this environment's share folder."""
    return Path(os.environ.get("KEYCAM_FACE_MODEL") or Path(sys.prefix) / "share" / "keycam" / FACE_MODEL_FILE)
