"""Argument types shared by the command groups: each refuses a bad value with one line (argparse: exit 2); and
the command line's exit statuses, defined once here for ``edge.cli`` and every group."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

EXIT_ERROR = 1  # a KeycamError (or an OSError, MemoryError) printed as one line; a check that failed
EXIT_USAGE = 2  # a bad argument (argparse's own status)
EXIT_INTERRUPTED = 130  # Ctrl-C: 128 + SIGINT, as shells report it


def epoch(text: str) -> int:
    try:
        value = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"epoch {text!r} is not an integer") from None
    if not 0 <= value < 1 << 64:
        raise argparse.ArgumentTypeError(f"epoch {value} must be in 0 .. 2**64-1")
    return value


def size(text: str) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size {text!r} is not HxW, e.g. 224x224") from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size {text!r} must be positive")
    return height, width


def floats(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"{text!r} holds a value that is not a finite number")
    return values


def positive_floats(text: str) -> tuple[float, ...]:
    values = floats(text)
    if not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be greater than 0")
    return values


def count(text: str) -> int:
    """An integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


MOST_THREADS = 64  # as the configuration's model.threads


def threads(text: str) -> int:
    """onnxruntime threads: 0 (its default) to 64, the configuration's bound."""
    value = count(text)
    if value > MOST_THREADS:
        raise argparse.ArgumentTypeError(f"{value} threads: give 0 (onnxruntime's default) to {MOST_THREADS}")
    return value


def positive(text: str) -> int:
    """An integer >= 1."""
    value = count(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number greater than 0")
    return value


def port(text: str) -> int:
    value = count(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1..65535)")
    return value


def path(text: str) -> Path:
    if not text:
        raise argparse.ArgumentTypeError("an empty path")
    return Path(text)
