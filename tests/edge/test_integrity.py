"""A keyed model carries its own digest and its epoch recipes' (firmware_sim.integrity): a changed byte anywhere in the
model, or any damage to its recipes, is refused in one line when it loads, on the device and on the server, never a
traceback and never a model that answers wrongly; key-equivalent files are written mode 0600 whatever the umask."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from edge.errors import ModelError
from edge.runtime import KeyedModel
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from firmware_sim.integrity import digest_of


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    import hashlib

    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"keycam tests").digest())
    folder = tmp_path_factory.mktemp("integrity")
    old = os.umask(0o022)
    try:
        paths = save(keyify(resnet20(), key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD)), folder / "m.onnx")
    finally:
        os.umask(old)
    return folder, key, paths


def test_the_model_and_its_recipes_are_written_private_and_carry_their_digests(written):
    folder, key, paths = written
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}
    assert modes == {"m.epochs.npz": 0o600, "m.onnx": 0o600, "m.manifest.json": 0o644}  # under umask 022
    model = KeyedModel(folder / "m.onnx", key, epoch=3)  # loads, rebuilds its tables from checked recipes
    assert model.manifest.model_sha256 == digest_of((folder / "m.onnx").read_bytes())
    assert len(model.manifest.epochs_sha256) == 64


@pytest.mark.parametrize("offset", [100, 5_000, 50_000, -200])
def test_a_changed_byte_anywhere_in_the_model_is_refused(written, tmp_path, offset):
    folder, key, _ = written
    data = bytearray((folder / "m.onnx").read_bytes())
    data[offset] ^= 0x10
    (tmp_path / "m.onnx").write_bytes(bytes(data))
    (tmp_path / "m.epochs.npz").write_bytes((folder / "m.epochs.npz").read_bytes())
    with pytest.raises(ModelError) as caught:
        KeyedModel(tmp_path / "m.onnx", key)
    assert "\n" not in str(caught.value)
    assert "is damaged" in str(caught.value) or "cannot be loaded by onnxruntime" in str(caught.value) or \
        "not a valid keycam manifest" in str(caught.value)


def _damaged(recipes: bytes, how: str, tmp_path) -> bytes:
    if how == "empty":
        return b""
    if how == "truncated":
        return recipes[: len(recipes) // 2]
    if how == "bit-flipped":
        damaged = bytearray(recipes)
        damaged[len(damaged) // 2] ^= 1
        return bytes(damaged)
    with np.load(tmp_path / "m.epochs.npz") as archive:  # well-formed archives holding wrong tables
        tables = {name: archive[name] for name in archive.files}
    first = sorted(tables)[0]
    tables[first] = {"shuffled": np.random.default_rng(0).permutation(tables[first].reshape(-1)).reshape(
        tables[first].shape), "zeroed": np.zeros_like(tables[first]), "negated": -tables[first],
        "float": tables[first].astype(np.float32)}[how]
    import io

    buffer = io.BytesIO()
    np.savez(buffer, **tables)
    return buffer.getvalue()


@pytest.mark.parametrize("how", ["empty", "truncated", "bit-flipped", "shuffled", "zeroed", "negated", "float"])
def test_damaged_recipes_are_refused_when_the_model_loads(written, tmp_path, how):
    folder, key, _ = written
    (tmp_path / "m.onnx").write_bytes((folder / "m.onnx").read_bytes())
    (tmp_path / "m.epochs.npz").write_bytes((folder / "m.epochs.npz").read_bytes())
    (tmp_path / "m.epochs.npz").write_bytes(_damaged((folder / "m.epochs.npz").read_bytes(), how, tmp_path))
    with pytest.raises(ModelError, match="epoch recipes .* (are damaged|cannot be read)") as caught:
        KeyedModel(tmp_path / "m.onnx", key)
    assert "\n" not in str(caught.value)


def test_the_server_refuses_a_damaged_model(written, tmp_path):
    from edge.server.repository import ModelRepository
    from export.package.triton import export_triton

    folder, _, _ = written
    export_triton(folder / "m.onnx", tmp_path / "repo", "m")
    model = tmp_path / "repo" / "m" / "1" / "model.onnx"
    assert stat.S_IMODE(model.stat().st_mode) == 0o600 and stat.S_IMODE(model.parent.parent.stat().st_mode) == 0o700
    data = bytearray(model.read_bytes())
    data[len(data) // 2] ^= 0x01  # a weight
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="is damaged"):
        ModelRepository(tmp_path / "repo")
