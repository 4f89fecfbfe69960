"""Shared fixtures: public test keys (they protect nothing), key files on disk, and the models made once per
session (``shared_models``)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from firmware_sim.keys import MasterKey
from tests.shared_models import SharedModels


@pytest.fixture(autouse=True, scope="session")
def default_folder(tmp_path_factory) -> Path:
    """The embedded default's key and compiled models: one folder for the whole session, never the user's own
    (``edge.places``; processes the tests start inherit it)."""
    folder = tmp_path_factory.mktemp("keycam-data")
    os.environ["KEYCAM_DATA"] = str(folder)
    return folder


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> SharedModels:
    """Exports and keyed models made once per session and shared by the modules that ask for the same one
    (tests/shared_models.py): read their files, copy them to change them."""
    return SharedModels(tmp_path_factory.getbasetemp() / "shared")


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
