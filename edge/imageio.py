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
from firmware_sim.files import read_regular, write_atomic

WRITABLE = (".png", ".npy")
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)  # keycam reports failures in one line of its own


def read_frame(path: str | Path) -> np.ndarray:
    """Read an image or .npy file as an (H, W, C) array, C in {1, 3}, keeping its dtype."""
    path = Path(path)
    # bytes, then decoded: OpenCV's own file functions crash on non-UTF-8 names; a FIFO or a device is refused
    data = read_regular(path, "input", ImageFileError)
    if path.suffix.lower() == ".npy":
        frame = _npy(data, path)
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


def _npy(data: bytes, path: Path) -> np.ndarray:
    """The array of a .npy file's bytes; ImageFileError for a header numpy cannot parse, one that promises more
    or fewer bytes than the file holds (read before any allocation), or an empty array."""
    def refuse(why: str) -> ImageFileError:
        return ImageFileError(f"input '{path}' is not a readable .npy array ({why}); save a frame with numpy.save")

    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in readers:
            raise ValueError(f"format version {version[0]}.{version[1]}, not 1.0 or 2.0")
        shape, fortran, dtype = readers[version](stream)  # numpy's checked parser of the header
    except Exception as error:  # noqa: BLE001 - numpy raises ValueError, SyntaxError, tokenize.TokenError ...
        said = str(error).splitlines()[0] if isinstance(error, ValueError) and str(error) else ""
        raise refuse(said or ("empty" if not data else "a damaged header")) from None
    if dtype.hasobject or not all(isinstance(n, int) and n >= 0 for n in shape):
        raise refuse(f"header names dtype {dtype} of shape {shape}")
    promised = dtype.itemsize * int(np.prod(shape, dtype=object))
    held = len(data) - stream.tell()
    if promised != held:
        raise refuse(f"header promises {promised} bytes of {dtype} {shape}, the file holds {held}")
    if promised == 0:
        raise ImageFileError(f"input '{path}' holds an empty array; give a frame of shape (H, W) or (H, W, C)")
    frame = np.frombuffer(data, dtype, offset=stream.tell()).reshape(shape, order="F" if fortran else "C")
    return np.ascontiguousarray(frame).astype(dtype.newbyteorder("="), copy=False)


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
