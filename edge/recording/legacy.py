"""The first recording format, ``keycam.frame/1`` (read by replays; written only by the tests that prove it).

One channel, ``/keycam/measurement``, message encoding ``keycam.frame/1``, no schema; each message a header then
the (H, W, C) codes, C order, little-endian:

- ``KCF1`` (24 bytes): magic, key epoch u64, height u32, width u32, channels u16, bits u8, 0 u8;
- ``KCF2`` (32 bytes): KCF1's fields, then the width and height u32 of the camera frame the measurement was
  fitted from.

The channel's metadata held the spec, fingerprint, size, dtype, first epoch and masks' digest; a ``keycam``
metadata record the fingerprint and spec, as recordings of the second format still have.
"""

from __future__ import annotations

import struct

import numpy as np

from edge.errors import ImageFileError

ENCODING = "keycam.frame/1"
_HEADER = struct.Struct("<4sQIIHBB")  # KCF1: magic, epoch, height, width, channels, bits, reserved
_HEADER2 = struct.Struct("<4sQIIHBBII")  # KCF2: KCF1's fields, then the source frame's width and height
_MAGIC, _MAGIC2 = b"KCF1", b"KCF2"


def encode_frame(image: np.ndarray, epoch: int, bits: int, source_size: tuple[int, int] | None = None) -> bytes:
    """One message: KCF2 (with the source frame's size) or, without it, KCF1."""
    height, width, channels = image.shape
    little = np.ascontiguousarray(image.astype(image.dtype.newbyteorder("<"), copy=False)).tobytes()
    if source_size is None:
        return _HEADER.pack(_MAGIC, epoch, height, width, channels, bits, 0) + little
    return _HEADER2.pack(_MAGIC2, epoch, height, width, channels, bits, 0, *source_size) + little


def decode_recorded(data: bytes) -> tuple[np.ndarray, int, tuple[int, int] | None]:
    """(codes (H, W, C), key epoch, source frame size or None) of one message (KCF1 or KCF2)."""
    if len(data) < _HEADER.size:
        raise ImageFileError("recorded frame is shorter than its header")
    magic = data[:4]
    if magic == _MAGIC2 and len(data) >= _HEADER2.size:
        _, epoch, height, width, channels, bits, _, source_w, source_h = _HEADER2.unpack_from(data)
        offset, source = _HEADER2.size, (source_w, source_h)
    elif magic == _MAGIC:
        _, epoch, height, width, channels, bits, _ = _HEADER.unpack_from(data)
        offset, source = _HEADER.size, None
    else:
        raise ImageFileError(f"recorded frame has magic {magic!r}, expected {_MAGIC2!r} or {_MAGIC!r}")
    dtype = np.dtype("<u1" if bits <= 8 else "<u2")
    body = np.frombuffer(data, dtype=dtype, offset=offset)
    if body.size != height * width * channels:
        raise ImageFileError(f"recorded frame holds {body.size} codes, its header says {height}x{width}x{channels}")
    return body.reshape(height, width, channels).astype(dtype.newbyteorder("="), copy=False), epoch, source
