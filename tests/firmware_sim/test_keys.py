"""The master key file, the key schedule and the fingerprint."""

from __future__ import annotations

import copy
import os
import pickle
import stat

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from firmware_sim.errors import KeyFileError
from firmware_sim.keys import MasterKey, layer_info, sensor_info


def test_aes256_known_answer_fips197():
    """The primitive under the permutation is the AES-256 of FIPS-197 (appendix C.3)."""
    encryptor = Cipher(algorithms.AES(bytes(range(32))), modes.ECB()).encryptor()
    cipher = encryptor.update(bytes.fromhex("00112233445566778899aabbccddeeff"))
    assert cipher.hex() == "8ea2b7ca516745bfeafc49904b496089"


def test_hkdf_sha256_known_answer_rfc5869():
    """The KDF under the key schedule is the HKDF-SHA256 of RFC 5869 (test case 1)."""
    okm = HKDF(algorithm=SHA256(), length=42, salt=bytes(range(13)), info=bytes(range(0xF0, 0xFA))).derive(
        b"\x0b" * 22
    )
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )


def test_fingerprint_is_stable_and_public_format():
    key = MasterKey(bytes(range(32)))
    assert key.fingerprint == "kc1:49b1e94dfafcd9c3"  # pinned: changing the schedule changes every fingerprint
    assert MasterKey(bytes(32)).fingerprint != key.fingerprint


def test_info_strings_are_exactly_as_specified():
    assert sensor_info(480, 640, 0) == b"keycam/1/sensor/480x640/epoch/0"
    assert sensor_info(1, 1, 2**64 - 1) == b"keycam/1/sensor/1x1/epoch/18446744073709551615"
    assert layer_info("conv1.out", 16, 8) == b"keycam/1/layer/conv1.out/16x8"
    for bad in [(0, 5, 0), (5, 0, 0), (5, 5, -1), (5, 5, 2**64)]:
        with pytest.raises(ValueError):
            sensor_info(*bad)
    with pytest.raises(ValueError):
        layer_info("has/slash", 4, 4)


def test_derived_keys_separate_every_purpose(key):
    derived = {
        key.sensor_key(480, 640, 0),
        key.sensor_key(640, 480, 0),
        key.sensor_key(480, 640, 1),
        key.layer_key("a", 480, 640),
        key.layer_key("b", 480, 640),
    }
    assert len(derived) == 5
    assert all(len(d) == 32 for d in derived)
    assert key.sensor_key(480, 640, 0) == key.sensor_key(480, 640, 0)


def test_save_writes_mode_0600_and_loads_back(tmp_path, key):
    path = tmp_path / "k.key"
    os.umask(0o022)
    key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size == 32
    assert MasterKey.load(path) == key
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_save_refuses_to_overwrite_without_force(tmp_path, key, other_key):
    path = tmp_path / "k.key"
    key.save(path)
    with pytest.raises(KeyFileError, match="already exists; pass --force"):
        other_key.save(path)
    assert MasterKey.load(path) == key
    other_key.save(path, force=True)
    assert MasterKey.load(path) == other_key
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_into_missing_directory_is_a_clear_error(tmp_path, key):
    with pytest.raises(KeyFileError, match="does not exist"):
        key.save(tmp_path / "no" / "k.key")
    with pytest.raises(KeyFileError, match="is a directory"):
        key.save(tmp_path)


def test_load_missing_file_says_how_to_create_one(tmp_path):
    with pytest.raises(KeyFileError, match=r"does not exist; create one with `keycam keygen"):
        MasterKey.load(tmp_path / "missing.key")


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_load_wrong_length_is_refused_without_echoing_bytes(tmp_path, size):
    path = tmp_path / "k.key"
    content = bytes([0x41 + i % 26 for i in range(size)])
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="exactly 32 raw bytes") as caught:
        MasterKey.load(path)
    message = str(caught.value)
    assert "\n" not in message
    if size >= 4:
        assert content[:4].decode() not in message and content.hex()[:8] not in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o004])
def test_load_refuses_keys_open_to_group_or_others(tmp_path, key, mode):
    path = tmp_path / "k.key"
    key.save(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=rf"mode {mode:04o}.*chmod 600"):
        MasterKey.load(path)


def test_load_refuses_directories_and_symlinks(tmp_path, key):
    with pytest.raises(KeyFileError, match="directory"):
        MasterKey.load(tmp_path)
    real = tmp_path / "real.key"
    key.save(real)
    link = tmp_path / "link.key"
    link.symlink_to(real)
    with pytest.raises(KeyFileError):
        MasterKey.load(link)


def test_key_bytes_never_appear_in_repr_or_str(key):
    secret = key._secret
    for text in (repr(key), str(key), f"{key}", f"{key!r}"):
        assert secret.hex() not in text and str(secret) not in text
        assert key.fingerprint in text


def test_key_refuses_pickling_and_copies_are_the_same_object(key):
    with pytest.raises(TypeError, match="refuses to be pickled"):
        pickle.dumps(key)
    assert copy.copy(key) is key and copy.deepcopy(key) is key


def test_constructor_rejects_wrong_sizes():
    with pytest.raises(KeyFileError):
        MasterKey(bytes(31))
    with pytest.raises(KeyFileError):
        MasterKey("0" * 32)  # type: ignore[arg-type]


def test_generate_gives_distinct_keys():
    assert len({MasterKey.generate().fingerprint for _ in range(20)}) == 20
