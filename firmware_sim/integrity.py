"""A keyed model's own digest, in its manifest: a changed byte anywhere in the model file is noticed when it loads.

The manifest lives inside the model (ONNX metadata), so it cannot hold a plain digest of the file that holds
it. It holds the digest of the file in which that digest reads as 64 zeros::

    model_sha256 = SHA-256( the model file with the manifest's "model_sha256": "<64 hex>" read as 64 "0"s )

The writer (``export.package``) serialises the model with the placeholder, hashes those bytes and writes the
digest into the placeholder's place (the same length, so nothing else moves); a reader finds the one
``"model_sha256": "<64 hex>"`` in the file, puts the zeros back, hashes, and compares. Neither needs the
``onnx`` package: the manifest's JSON is stored verbatim in the protobuf. The epoch recipes beside a model
(``KEYED.epochs.npz``) are covered by ``epochs_sha256``, a plain SHA-256 of that file.
"""

from __future__ import annotations

import hashlib
import re

PLACEHOLDER = "0" * 64
_FIELD = re.compile(rb'"model_sha256": "([0-9a-f]{64})"')


def stamp(data: bytes) -> tuple[bytes, str]:
    """The model bytes ``data`` (holding the placeholder once) with their digest in its place, and the digest."""
    found = list(_FIELD.finditer(data))
    if len(found) != 1 or found[0].group(1) != PLACEHOLDER.encode():
        raise ValueError("a keyed model to stamp holds the digest placeholder exactly once")
    digest = hashlib.sha256(data).hexdigest()
    start, end = found[0].span(1)
    return data[:start] + digest.encode() + data[end:], digest


def digest_of(data: bytes) -> str | None:
    """The digest the model bytes ``data`` should have (its recorded one zeroed), or None without one recorded."""
    found = list(_FIELD.finditer(data))
    if len(found) != 1:
        return None
    start, end = found[0].span(1)
    return hashlib.sha256(data[:start] + PLACEHOLDER.encode() + data[end:]).hexdigest()


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
