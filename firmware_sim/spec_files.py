"""Readout specs by name or from a file: what ``--spec`` and a configuration's spec accept.

A spec is a preset's name (``firmware_sim.spec.PRESETS``) or a TOML file of the fields of
:class:`~firmware_sim.spec.ReadoutSpec`; a file that does not validate is refused in one line naming
each field, its value and what is wrong.
"""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import ValidationError

from firmware_sim.errors import SpecError
from firmware_sim.spec import DEFAULT_SPEC, PRESETS, ReadoutSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


def _format_validation_error(source: str, error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        path = ".".join(str(p) for p in item["loc"]) or "(top level)"
        value = item.get("input")
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(ReadoutSpec.model_fields)
            parts.append(f"unknown field {path!r} (allowed: {allowed})")
        elif not item["loc"]:  # a check across fields: its message names them
            parts.append(item["msg"].removeprefix("Value error, "))
        else:
            message = item["msg"].removeprefix("Value error, ")
            parts.append(f"{path} = {value!r}: {message}")
    return f"readout spec {source}: " + "; ".join(parts)


def spec_from_mapping(data: dict, source: str = "(mapping)") -> ReadoutSpec:
    """Build a spec from a mapping, turning validation failures into one-line :class:`SpecError`."""
    try:
        return ReadoutSpec.model_validate(data)
    except ValidationError as error:
        raise SpecError(_format_validation_error(source, error)) from None


def load_spec(name_or_path: str | Path | None) -> ReadoutSpec:
    """Resolve ``--spec``: ``None`` is the default, a preset name, or a TOML file."""
    if name_or_path is None:
        return DEFAULT_SPEC
    text = str(name_or_path)
    if text in PRESETS:
        return PRESETS[text]
    path = Path(text)
    if not path.is_file():
        raise SpecError(
            f"readout spec {text!r} is neither a preset ({', '.join(PRESETS)}) nor an existing TOML file"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"readout spec file '{path}' is not valid TOML: {error}") from None
    return spec_from_mapping(data, source=f"file '{path}'")
