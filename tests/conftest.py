"""Shared fixtures: public test keys (they protect nothing) and key files on disk."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from firmware_sim.keys import MasterKey


@pytest.fixture
def key() -> MasterKey:
    return MasterKey(hashlib.sha256(b"keycam tests").digest())


@pytest.fixture
def other_key() -> MasterKey:
    return MasterKey(hashlib.sha256(b"keycam tests, another key").digest())


@pytest.fixture
def key_file(tmp_path: Path, key: MasterKey) -> Path:
    path = tmp_path / "test.key"
    key.save(path)
    return path
