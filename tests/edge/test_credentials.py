"""Token files are read like key files: private (0600), one printable token, never printed."""

from __future__ import annotations

import pytest

from edge.credentials import read_token
from edge.errors import ConfigError


def test_token_files_are_private(tmp_path):
    token = tmp_path / "token"
    token.write_text("abc\n")
    token.chmod(0o644)
    with pytest.raises(ConfigError, match="readable by group or others .* chmod 600"):
        read_token(token)
    token.chmod(0o600)
    assert read_token(token) == "abc"
    token.write_text("two words")
    with pytest.raises(ConfigError, match="one printable token"):
        read_token(token)


def test_a_binary_or_missing_token_file_is_one_error(tmp_path):
    token = tmp_path / "token"
    token.write_bytes(b"\xff\xfe\x00token")
    token.chmod(0o600)
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        read_token(token)
    with pytest.raises(ConfigError, match="does not exist"):
        read_token(tmp_path / "missing")
