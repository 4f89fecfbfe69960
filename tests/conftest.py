"""Shared fixtures: public test keys (they protect nothing) and key files on disk."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from firmware_sim.keys import MasterKey


@pytest.fixture(autouse=True, scope="session")
def default_folder(tmp_path_factory) -> Path:
    """The embedded default's key and compiled models: one folder for the whole session, never the user's own
    (``edge.places``; processes the tests start inherit it)."""
    folder = tmp_path_factory.mktemp("keycam-data")
    os.environ["KEYCAM_DATA"] = str(folder)
    return folder


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
