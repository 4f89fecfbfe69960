"""The readout commands under a sealed spec: scramble and firmware-sim write the same sealed codes and the same seal
(beside them, NAME.seal), byte for byte; unscramble opens them with the key and gets the picture back; a changed code
or a missing seal is refused in one line, and nothing is written."""

from __future__ import annotations

import numpy as np
import pytest

from tests.inprocess import keycam

RUN = "00112233445566778899aabbccddeeff"


@pytest.fixture
def files(tmp_path, key_file):
    picture = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    np.save(tmp_path / "in.npy", picture)
    return tmp_path, key_file, picture


@pytest.mark.parametrize("spec", ["rgb8-sealed", "rgb8-sealed-chacha"])
def test_scramble_and_firmware_sim_seal_alike_and_unscramble_opens(files, spec):
    tmp, key, picture = files
    common = ["--key", str(key), "--spec", spec, "--frame", "7", "--run", RUN, str(tmp / "in.npy")]
    assert keycam("scramble", *common, str(tmp / "a.npy")).returncode == 0
    assert keycam("firmware-sim", *common, str(tmp / "b.npy")).returncode == 0
    assert (tmp / "a.npy").read_bytes() == (tmp / "b.npy").read_bytes()
    assert (tmp / "a.npy.seal").read_text() == (tmp / "b.npy.seal").read_text()
    assert not np.array_equal(np.load(tmp / "a.npy"), picture)
    done = keycam("unscramble", "--key", str(key), "--spec", spec, str(tmp / "a.npy"), str(tmp / "back.npy"))
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tmp / "back.npy"), picture)


def test_a_changed_code_or_a_missing_seal_is_refused_in_one_line(files):
    tmp, key, _ = files
    assert keycam("scramble", "--key", str(key), "--spec", "rgb8-sealed", str(tmp / "in.npy"),
                  str(tmp / "a.npy")).returncode == 0
    codes = np.load(tmp / "a.npy")
    codes[0, 0, 0] ^= 1
    np.save(tmp / "changed.npy", codes)
    (tmp / "changed.npy.seal").write_text((tmp / "a.npy.seal").read_text())
    for name, reason in (("changed.npy", "does not open (tag mismatch"), ("in.npy", "cannot be read")):
        done = keycam("unscramble", "--key", str(key), "--spec", "rgb8-sealed", str(tmp / name), str(tmp / "o.npy"))
        assert done.returncode == 1 and reason in done.stderr and len(done.stderr.strip().splitlines()) == 1
        assert not (tmp / "o.npy").exists()


def test_export_triton_of_a_sealed_model_says_triton_cannot_open_it(tmp_path, key_file):
    from edge.default import ASSET

    keyed = tmp_path / "keyed.onnx"
    for spec, sealed in (("gray8-sealed", True), ("gray8", False)):
        done = keycam("keyify", ASSET, "--key", key_file, "-o", keyed, "--spec", spec, "--mean", "72.94", "--std", "90",
                      "--force")
        assert done.returncode == 0, done.stderr
        done = keycam("export", "triton", keyed, "--name", "m", "--repository", tmp_path / spec)
        assert done.returncode == 0, done.stderr
        note = [line for line in done.stdout.splitlines() if "Triton cannot open seals" in line]
        assert len(note) == (1 if sealed else 0), done.stdout
        if sealed:
            assert "(aes-256-gcm)" in note[0] and "keycam serve --key" in note[0] and "--split-after" in note[0]
