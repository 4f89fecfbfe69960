"""Measurements as ``foxglove.RawImage``: codes a viewer shows as they are (noise), read back bit for bit.

A measurement is (H, W, C) codes of ``bits`` bits, 8-bit codes in bytes and wider ones in little-endian 16-bit
words. Foxglove's RawImage has no 16-bit colour encoding and no four-code cell, so the layout depends on both:

======== ======= ================== ============== =====================================================
channels bits    encoding           image size     the codes
======== ======= ================== ============== =====================================================
1        8       ``mono8``          W x H          as they are
1        > 8     ``mono16``         W x H          as they are
3        8       ``rgb8``/``bgr8``  W x H          as they are (the sensor's channel order names it)
3        > 8     ``mono16``         3W x H         interleaved: each position's three codes side by side
4        8       ``bayer_rggb8``    2W x 2H        mosaic: each cell R, Gr / Gb, B as the 2 x 2 it came from
4        > 8     ``mono16``         2W x 2H        the same mosaic, in grey
======== ======= ================== ============== =====================================================

so an image of the measurement is always its codes, losslessly, and :attr:`Layout.scale` says how many image
pixels a measurement position covers (x, y), which the annotations drawn over it (``edge.recording.annotations``)
follow. Reading back needs only the image and the channel's ``channels`` (its metadata).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage
from google.protobuf.message import DecodeError
from google.protobuf.timestamp_pb2 import Timestamp

from edge.errors import ImageFileError

FRAME_ID = "keycam"  # the coordinate frame Foxglove's 3D panel would place the image in
WIDE = ("mono16", "16UC1")


@dataclass(frozen=True)
class Layout:
    name: str  # "pixels", "interleaved" or "mosaic"
    encoding: str
    scale: tuple[int, int]  # image pixels per measurement position, x and y


def layout(channels: int, bits: int, order: str = "rgb") -> Layout:
    """How (H, W, ``channels``) codes of ``bits`` bits are laid out in a RawImage (the table above)."""
    wide = bits > 8
    if channels == 1:
        return Layout("pixels", "mono16" if wide else "mono8", (1, 1))
    if channels == 3:
        return Layout("interleaved", "mono16", (3, 1)) if wide else Layout("pixels", f"{order}8", (1, 1))
    if channels == 4:
        return Layout("mosaic", "mono16" if wide else "bayer_rggb8", (2, 2))
    raise ImageFileError(f"a measurement of {channels} channels has no image layout (1, 3 or 4)")


def timestamp(ns: int) -> Timestamp:
    return Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


def _mosaic(codes: np.ndarray) -> np.ndarray:
    """(H, W, 4) cells -> (2H, 2W): R at (0, 0), Gr at (0, 1), Gb at (1, 0), B at (1, 1) of each cell."""
    height, width, _ = codes.shape
    # (H, W, 4) -> (H, W, 2, 2) -> (H, 2, W, 2) -> (2H, 2W)
    return codes.reshape(height, width, 2, 2).transpose(0, 2, 1, 3).reshape(2 * height, 2 * width)


def _cells(mosaic: np.ndarray) -> np.ndarray:
    """(2H, 2W) -> (H, W, 4), the inverse of :func:`_mosaic`."""
    rows, cols = mosaic.shape
    # (2H, 2W) -> (H, 2, W, 2) -> (H, W, 2, 2) -> (H, W, 4)
    return mosaic.reshape(rows // 2, 2, cols // 2, 2).transpose(0, 2, 1, 3).reshape(rows // 2, cols // 2, 4)


def encode_image(codes: np.ndarray, bits: int, timestamp_ns: int, order: str = "rgb") -> bytes:
    """One serialized ``foxglove.RawImage`` of (H, W, C) codes (see the module's table)."""
    height, width, channels = codes.shape
    chosen = layout(channels, bits, order)
    little = codes.astype(codes.dtype.newbyteorder("<"), copy=False)
    if chosen.name == "mosaic":
        image = _mosaic(little)
    else:
        image = little.reshape(height, width * channels if chosen.name == "interleaved" else width, -1)
    rows, cols = image.shape[:2]
    step = image[0].nbytes
    return RawImage(timestamp=timestamp(timestamp_ns), frame_id=FRAME_ID, width=cols, height=rows,
                    encoding=chosen.encoding, step=step, data=np.ascontiguousarray(image).tobytes()).SerializeToString()


def decode_image(data: bytes, channels: int) -> np.ndarray:
    """(H, W, ``channels``) codes of one serialized RawImage that :func:`encode_image` wrote; ImageFileError for
    anything else (a damaged message, another layout)."""
    try:
        image = RawImage.FromString(data)
    except DecodeError:
        raise ImageFileError("a recorded image is not a foxglove.RawImage message") from None
    dtype = np.dtype("<u2" if image.encoding in WIDE else "<u1")
    per_row = {"rgb8": 3, "bgr8": 3}.get(image.encoding, 1) * image.width
    if image.step < per_row * dtype.itemsize or len(image.data) != image.step * image.height or not image.width:
        raise ImageFileError(f"a recorded {image.encoding} image of {image.width}x{image.height} holds "
                             f"{len(image.data)} bytes at {image.step} a row")
    rows = np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)[:, :per_row * dtype.itemsize]
    flat = np.ascontiguousarray(rows).view(dtype).astype(dtype.newbyteorder("="), copy=False)
    expected = layout(channels, 16 if dtype.itemsize == 2 else 8, image.encoding[:3])
    if image.encoding != expected.encoding:
        raise ImageFileError(f"a recorded image of {channels}-channel codes is {image.encoding}, "
                             f"not {expected.encoding}")
    if expected.name == "mosaic":
        if image.width % 2 or image.height % 2:
            raise ImageFileError(f"a recorded mosaic of {image.width}x{image.height} is not whole cells")
        return _cells(flat)
    if image.width % (channels if expected.name == "interleaved" else 1):
        raise ImageFileError(f"a recorded image of {image.width} columns does not hold {channels} codes a position")
    return flat.reshape(image.height, -1, channels)
