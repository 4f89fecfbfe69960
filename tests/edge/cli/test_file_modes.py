"""Every file keycam writes, under umask 022: what is the key, equals it (a keyed model, its epoch recipes, the
embedded default's compiled models, a Triton copy) or shows the scene (recordings, plain pictures, previews) is
mode 0600, in folders keycam makes 0700; what holds no secret (manifests, answers, Triton's config) may be read by
others. Each command runs in this process (tests/inprocess.py)."""

from __future__ import annotations

import os
import stat

import cv2
import numpy as np
import pytest

from tests.inprocess import keycam

PRIVATE, FOLDER = 0o600, 0o700


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_every_secret_keycam_writes_is_private_under_umask_022(tmp_path, umask_022, monkeypatch):
    from edge.default import ASSET

    data = tmp_path / "data"
    monkeypatch.setenv("KEYCAM_DATA", str(data))
    (tmp_path / "imgs").mkdir()
    rng = np.random.default_rng(4)
    for i in range(2):
        cv2.imwrite(str(tmp_path / "imgs" / f"{i}.png"), rng.integers(0, 256, (28, 28, 3), np.uint8))
    (tmp_path / "plain.onnx").write_bytes(ASSET.read_bytes())
    steps = [["keygen", "k.key"],
             ["keyify", "plain.onnx", "--key", "k.key", "-o", "kk.onnx", "--spec", "gray8", "--mean", "72.94",
              "--std", "90"],
             ["replay", "imgs", "--model", "kk.onnx", "--key", "k.key", "--output", "out.jsonl", "--record", "r.mcap"],
             ["replay", "imgs", "--model", "kk.onnx", "--key", "k.key", "--output", "out2.jsonl", "--record", "seg"],
             ["preview", "imgs", "-o", "p.png", "--model", "kk.onnx", "--key", "k.key"],
             ["unscramble", "--key", "k.key", "imgs/0.png", "u.png"],
             ["export", "triton", "kk.onnx", "--name", "m", "--repository", "repo"],
             ["replay", "imgs", "--output", "out3.jsonl"]]  # the embedded default, in its folder
    for argv in steps:
        done = keycam(*argv, cwd=tmp_path, timeout=300)
        assert done.returncode == 0, (argv, done.stderr)
    private = [tmp_path / name for name in ("k.key", "kk.onnx", "kk.epochs.npz", "r.mcap", "p.png", "u.png")]
    private += list((tmp_path / "seg").glob("*.mcap")) + [tmp_path / "repo" / "m" / "1" / "model.onnx"]
    private += [p for p in data.iterdir() if p.suffix in (".key", ".onnx", ".npz")]
    folders = [tmp_path / "seg", tmp_path / "repo" / "m", tmp_path / "repo" / "m" / "1", data]
    assert len(private) >= 11, private
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in private if _mode(p) != PRIVATE} == {}
    assert {str(p.relative_to(tmp_path)): oct(_mode(p)) for p in folders if _mode(p) != FOLDER} == {}
    # what holds no secret keeps the umask's mode: the manifest (layout coordinates only) and the answers
    assert _mode(tmp_path / "kk.manifest.json") == 0o644 and _mode(tmp_path / "out.jsonl") == 0o644
