"""Reading frames and writing measurements as files, losslessly and atomically.

Formats, chosen by the file name's suffix:

- ``.npy``: any frame or measurement (uint8 or uint16, (H, W) or (H, W, C)); the
  only way to keep 10/12/16-bit codes outside a PNG.
- ``.png``: 8-bit or 16-bit, 1 or 3 channels; lossless.
- reading also accepts anything OpenCV decodes (JPEG, BMP, TIFF, WebP, ...).

Colour images are read and written as OpenCV stores them, B,G,R; the readout
never reorders channels, so a round trip keeps the file's channel order. A write
goes to a temporary file beside the target and is renamed into place, so an
interrupted write never leaves a half-written file.
"""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np

from edge.errors import ImageFileError
from firmware_sim.files import write_atomic

WRITABLE = (".png", ".npy")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # keycam reports failures in one line of its own


def read_frame(path: str | Path) -> np.ndarray:
    """Read an image or .npy file as an (H, W, C) array, C in {1, 3}, keeping its dtype."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"input '{path}' does not exist or is not a file")
    try:
        data = path.read_bytes()  # bytes, then decoded: OpenCV's own file functions crash on non-UTF-8 names
    except OSError as error:
        raise ImageFileError(f"input '{path}' cannot be read: {error.strerror}") from None
    if path.suffix.lower() == ".npy":
        try:
            frame = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise ImageFileError(f"input '{path}' is not a readable .npy array ({str(error) or 'empty'})") from None
        if not isinstance(frame, np.ndarray) or frame.size == 0:
            raise ImageFileError(f"input '{path}' holds an empty array; give a frame of shape (H, W) or (H, W, C)")
    else:
        frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED) if data else None
        if frame is None:
            raise ImageFileError(f"input '{path}' is not an image OpenCV can decode; use PNG, JPEG, TIFF or .npy")
    if frame.ndim == 2:
        frame = frame[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    if frame.ndim != 3 or frame.shape[2] not in (1, 3):
        raise ImageFileError(
            f"input '{path}' has shape {frame.shape}; keycam reads 1-channel or 3-channel images "
            f"(drop the alpha channel of a 4-channel image first)"
        )
    if frame.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"input '{path}' has dtype {frame.dtype}; keycam reads uint8 or uint16 codes")
    return frame


def check_writable(path: str | Path) -> Path:
    """Fail early, before any work, if ``path`` names a format or folder keycam cannot write."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE:
        raise ImageFileError(
            f"output '{path}' has suffix {path.suffix!r}; measurements are written losslessly as "
            f".png (8 or 16-bit) or .npy (any depth)"
        )
    if not path.parent.is_dir():
        raise ImageFileError(f"cannot write '{path}': directory '{path.parent}' does not exist")
    return path


def write_image(path: str | Path, array: np.ndarray, private: bool = False) -> Path:
    """Write an (H, W, C) uint8/uint16 array losslessly (.png or .npy), atomically.

    ``private``: a plain picture (unscrambled, a preview): mode 0600, like a key file."""
    path = check_writable(path)
    suffix = path.suffix.lower()
    if array.dtype not in (np.uint8, np.uint16):
        raise ImageFileError(f"cannot write dtype {array.dtype} to '{path}'; expected uint8 or uint16")
    if suffix == ".png":
        image = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array  # (H, W, 1) -> (H, W)
        ok, encoded = cv2.imencode(".png", image)
        if not ok:
            raise ImageFileError(f"OpenCV could not encode shape {array.shape} as PNG for '{path}'")
        payload = encoded.tobytes()
    else:
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
        payload = buffer.getvalue()
    return write_atomic(path, payload, 0o600 if private else None)
