"""The error tree is drawn once (edge/errors.py) and the drawing is true: every error class keycam defines is in
it, under its real parent, and nothing drawn is missing from the code."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import edge.errors
from firmware_sim.errors import KeycamError

ROOT = Path(__file__).resolve().parent.parent


def _drawn() -> dict[str, str | None]:
    """{class name: parent name} from the drawing in edge/errors.py's docstring."""
    tree: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in edge.errors.__doc__.splitlines():
        match = re.match(r"^    ()((?:[│ ]   )*)(?:[├└]── )?([A-Z]\w+)\s", line)  # the drawing is indented 4
        if not match or not re.search(r"(Error|Mismatch|Unavailable|Rejected|Model)\b", match.group(3)):
            continue
        depth = len(match.group(2)) // 4 + (1 if "──" in line else 0)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        tree[match.group(3)] = stack[-1][1] if stack else None
        stack.append((depth, match.group(3)))
    return tree


def _defined() -> dict[str, str | None]:
    for package in ("edge", "export", "firmware_sim"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    found: dict[str, str | None] = {"KeycamError": None}
    todo = [KeycamError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in ("edge", "export", "firmware_sim"):
                found[sub.__name__] = cls.__name__
                todo.append(sub)
    return found


def test_the_drawing_names_every_error_and_its_parent():
    drawn = _drawn()
    assert len(drawn) > 10 and drawn["KeycamError"] is None  # the drawing was read
    assert drawn == _defined()


def test_every_error_is_defined_in_one_of_three_places():
    homes = {"firmware_sim.errors", "export.errors", "edge.errors"}
    todo, seen = [KeycamError], []
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.split(".")[0] in ("edge", "export", "firmware_sim"):
                seen.append(sub)
                todo.append(sub)
    assert seen and {cls.__module__ for cls in seen} <= homes
