"""What the fake sensor sees, and how each stream format encodes it.

The scene is a smooth picture defined over the sensor's pixel array (so a crop, a binned mode or a
stretched stream each show the part of it they really would), rendered at pixel centres. Streams
encode it as the hardware does: ``RGB888`` is B,G,R in memory (picamera2 ``request.py`` L257 and
L363: PIL mode "BGR"); ``YUV420`` is I420 in the stream's colour space (BT.601 or BT.709, limited or
full range: libcamera's ``ColorSpace``), chroma averaged over 2x2 pixels, planes padded to the stride;
``YVU420`` the same with the V (Cr) plane first (libcamera ``formats.yaml`` L79-80: ``DRM_FORMAT_YVU420``,
which ``drm_fourcc.h`` describes as 3-plane YCrCb);
raw is the Bayer mosaic of the mode, each photosite keeping its filter's colour as an N-bit code above the
sensor's black level (the pedestal ``SensorBlackLevels`` reports), one byte a photosite for 8-bit unpacked
raw and a little-endian 16-bit word otherwise.
The encoders here are written from the standards' formulas, independently of keycam's decoders.
"""

from __future__ import annotations

import numpy as np

KR_KB = {"Rec601": (0.299, 0.114), "Rec709": (0.2126, 0.0722)}  # ITU-R BT.601 / BT.709 luma weights


def scene(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """R, G, B in 0..255 at normalised array coordinates (u across, v down, both in [0, 1])."""
    red = 128 + 90 * np.sin(2 * np.pi * u) * np.cos(np.pi * v)
    green = 30 + 200 * u + 0 * v
    blue = 40 + 180 * v + 0 * u
    return np.stack(np.broadcast_arrays(red, green, blue), axis=-1)


def render(size: tuple[int, int], crop: tuple[int, int, int, int], array: tuple[int, int]) -> np.ndarray:
    """The scene over ``crop`` (x, y, w, h of the pixel array), sampled at the centres of a ``size`` (w, h) grid:
    (h, w, 3) float R, G, B."""
    width, height = size
    x, y, crop_w, crop_h = crop
    u = (x + (np.arange(width) + 0.5) * crop_w / width) / array[0]
    v = (y + (np.arange(height) + 0.5) * crop_h / height) / array[1]
    return scene(u[None, :], v[:, None])


def bgr888(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb[..., ::-1]), 0, 255).astype(np.uint8)


def i420(rgb: np.ndarray, stride: int, encoding: str, full_range: bool, v_first: bool = False) -> np.ndarray:
    """(h * 3 // 2, stride) uint8: Y rows, then the U plane and the V plane (V first for YVU420), each
    (h/2, stride/2), packed."""
    height, width, _ = rgb.shape
    kr, kb = KR_KB[encoding]
    r, g, b = (rgb[..., i] / 255.0 for i in range(3))
    luma = kr * r + (1 - kr - kb) * g + kb * b
    cb, cr = (b - luma) / (2 * (1 - kb)), (r - luma) / (2 * (1 - kr))
    if full_range:
        y_code, cb_code, cr_code = 255 * luma, 128 + 255 * cb, 128 + 255 * cr
    else:
        y_code, cb_code, cr_code = 16 + 219 * luma, 128 + 224 * cb, 128 + 224 * cr

    def half(plane: np.ndarray) -> np.ndarray:
        return plane.reshape(height // 2, 2, width // 2, 2).mean(axis=(1, 3))  # (h, w) -> (h/2, w/2)

    out = np.zeros((height * 3 // 2, stride), np.uint8)
    out[:height, :width] = np.clip(np.rint(y_code), 0, 255)
    chroma = np.zeros((2, height // 2, stride // 2), np.uint8)
    first, second = (cr_code, cb_code) if v_first else (cb_code, cr_code)
    chroma[0, :, : width // 2] = np.clip(np.rint(half(first)), 0, 255)
    chroma[1, :, : width // 2] = np.clip(np.rint(half(second)), 0, 255)
    out[height:] = chroma.reshape(height // 2, stride)  # U then V, each h/2 rows of stride/2 bytes
    return out


def mosaic(rgb: np.ndarray, order: str, bits: int, black: int = 0) -> np.ndarray:
    """(h, w) codes: each photosite keeps the colour its filter passes (``order`` names a 2x2 cell), from the
    black level ``black`` (in ``bits``-bit codes) up to the full scale."""
    index = {"R": 0, "G": 1, "B": 2}
    out = np.empty(rgb.shape[:2], np.float64)
    for k, colour in enumerate(order):
        dy, dx = divmod(k, 2)
        out[dy::2, dx::2] = rgb[dy::2, dx::2, index[colour]]
    return np.rint(black + out / 255.0 * ((1 << bits) - 1 - black)).astype(np.uint16)


def raw_bytes(codes: np.ndarray, stride: int, msb_shift: int, one_byte: bool = False) -> np.ndarray:
    """Unpacked codes as picamera2's raw array: uint8 (h, stride), little-endian 16-bit words (or one byte a
    photosite: 8-bit unpacked raw), rows padded."""
    height, width = codes.shape
    out = np.zeros((height, stride), np.uint8)
    if one_byte:
        out[:, :width] = codes.astype(np.uint8)
        return out
    words = (codes.astype(np.uint32) << msb_shift).astype("<u2")
    out[:, : width * 2] = words.view(np.uint8).reshape(height, width * 2)
    return out
