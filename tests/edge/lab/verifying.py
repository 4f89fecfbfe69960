"""Shared by the verify tests: what `keycam verify` printed, by column."""

from __future__ import annotations


def lines(done) -> dict[str, str]:
    """What `keycam verify` printed, by column: "raw NAME", "images", "answers", an answer kind, "verdict"."""
    found = {}
    for line in done.stdout.splitlines():
        column = line[:13].strip() if not line.startswith("raw ") else " ".join(line.split(" ", 2)[:2])
        found[column] = line[len(column):].strip()
    return found
