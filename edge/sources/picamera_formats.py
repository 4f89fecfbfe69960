"""Turning picamera2's arrays into frames: YUV420 in its colour space, and unpacked raw Bayer in its true format.

Pure numpy, no picamera2: ``edge/sources/picamera.py`` reads the stream's real size, stride, format and
colour space from the configuration the camera reports and passes them here.

**YUV420** (picamera2 ``make_array``: (h * 3 // 2, stride) uint8; Y rows first, then the U plane and the V
plane, each (h/2) rows of stride/2 bytes). Y'CbCr to R'G'B' per ITU-R BT.601 or BT.709 (``Kr``, ``Kb``)::

    limited range:  Y = (Y' - 16) / 219,   Cb = (Cb' - 128) / 224,   Cr = (Cr' - 128) / 224
    full range:     Y = Y' / 255,          Cb = (Cb' - 128) / 255,   Cr = (Cr' - 128) / 255
    R = Y + 2 (1 - Kr) Cr,   B = Y + 2 (1 - Kb) Cb,   G = (Y - Kr R - Kb B) / (1 - Kr - Kb)

with each chroma sample shared by its 2x2 pixels. picamera2 picks SMPTE170M (BT.601, limited) for video
below 1280x720 and Rec709 from there; stills and previews use sYCC (BT.601, full). ``YVU420`` is the same with
the V (Cr) plane before the U (Cb) plane: the planes are swapped before decoding (``Kr`` and ``Kb`` differ, so
swapping R and B afterwards is not the same thing).

**Raw** (``make_array("raw")``: uint8 (h, stride); unpacked formats are little-endian 16-bit words).
``S<order><bits>`` on a Pi 4 holds ``bits``-bit codes in the low bits, except 8-bit raw (``SBGGR8``: one byte
a photosite, libcamera ``vc4.cpp`` L481-490); a Pi 5 delivers ``S<order>16`` with the sensor's code in the top
bits; ``_CSI2P`` (packed) and ``_PISP_COMP1`` (compressed) are refused, as keycam asks for unpacked raw.
:func:`raw_words` returns the mosaic as 16-bit words with the code in the top bits, whatever the board;
:func:`to_spec_codes` then gives the codes a readout spec expects, and :func:`rephase` moves the mosaic to the
spec's Bayer phase by dropping one row and/or column. The words are on the same 16-bit scale as libcamera's
``SensorBlackLevels`` (``control_ids_core.yaml`` L627-636), which :func:`black_level_refusal` checks against the
spec's ``black_level``; a sensor whose depth differs from the spec's is rescaled by a power of two
(:func:`rescale_note` says so).
"""

from __future__ import annotations

import re

import numpy as np

from edge.errors import CameraError

KR_KB = {"Rec601": (0.299, 0.114), "Rec709": (0.2126, 0.0722), "Rec2020": (0.2627, 0.0593)}
RAW_FORMAT = re.compile(r"^(?:S(?P<order>[RGB]{4})|(?P<mono>R))(?P<bits>8|10|12|14|16)(?P<packing>_\w+)?$")


def yuv420_to_bgr(array: np.ndarray, width: int, height: int, encoding: str = "Rec601",
                  full_range: bool = False, v_first: bool = False) -> np.ndarray:
    """picamera2's YUV420 array (h * 3 // 2, stride) of a width x height stream as (h, w, 3) uint8 B,G,R
    (``v_first``: YVU420, the V plane first)."""
    if encoding not in KR_KB:
        raise CameraError(f"the lores stream's Y'CbCr encoding {encoding!r} is not one keycam decodes "
                          f"({', '.join(KR_KB)}); set the colour space explicitly")
    stride = array.shape[1]
    half_h, half_w, half_stride = height // 2, width // 2, stride // 2
    if array.shape[0] != height * 3 // 2 or stride < width:
        raise CameraError(f"YUV420 array of shape {array.shape} does not hold a {width}x{height} frame")
    luma = array[:height, :width].astype(np.float32)
    chroma = array[height:].reshape(-1)  # U then V, each (h/2) rows of stride/2 bytes
    plane = half_h * half_stride
    cb = chroma[:plane].reshape(half_h, half_stride)[:, :half_w].astype(np.float32)
    cr = chroma[plane: 2 * plane].reshape(half_h, half_stride)[:, :half_w].astype(np.float32)
    if v_first:
        cb, cr = cr, cb
    cb = np.repeat(np.repeat(cb, 2, axis=0), 2, axis=1)  # (h/2, w/2) -> (h, w): each sample covers 2x2 pixels
    cr = np.repeat(np.repeat(cr, 2, axis=0), 2, axis=1)
    if full_range:
        y, u, v = luma / 255.0, (cb - 128) / 255.0, (cr - 128) / 255.0
    else:
        y, u, v = (luma - 16) / 219.0, (cb - 128) / 224.0, (cr - 128) / 224.0
    kr, kb = KR_KB[encoding]
    red = y + 2 * (1 - kr) * v
    blue = y + 2 * (1 - kb) * u
    green = (y - kr * red - kb * blue) / (1 - kr - kb)
    bgr = np.stack([blue, green, red], axis=-1) * 255.0  # (h, w) x 3 -> (h, w, 3)
    return np.clip(np.rint(bgr), 0, 255).astype(np.uint8)


def parse_raw_format(name: str, sensor_bits: int) -> tuple[str, int, bool]:
    """(Bayer order or "" for mono, the code's bits, msb_aligned) of an unpacked raw format, or CameraError."""
    match = RAW_FORMAT.match(name)
    if match is None or "PISP" in name:
        raise CameraError(f"the camera's raw format {name!r} is not unpacked Bayer or mono; keycam asks for "
                          f"unpacked raw (S<order><bits>), and compressed PiSP raw cannot be read exactly")
    if match["packing"]:
        raise CameraError(f"the camera's raw format {name!r} is packed ({match['packing'][1:]}); keycam reads "
                          f"unpacked raw")
    bits = int(match["bits"])
    if bits == 16 and sensor_bits < 16:  # Pi 5: the sensor's code in the top bits of 16-bit words
        return match["order"] or "", sensor_bits, True
    return match["order"] or "", bits, False


def raw_words(array: np.ndarray, width: int, height: int, bits: int, msb_aligned: bool) -> np.ndarray:
    """The (h, w) mosaic as uint16 words with the code in the top ``bits`` bits."""
    one_byte = bits == 8 and not msb_aligned  # unpacked 8-bit raw: one byte a photosite
    if array.dtype != np.uint8 or array.ndim != 2 or array.shape[0] < height or \
            array.shape[1] < width * (1 if one_byte else 2):
        raise CameraError(f"raw array of shape {array.shape} {array.dtype} does not hold {width}x{height} "
                          f"{bits if one_byte else 16}-bit photosites")
    if one_byte:
        return array[:height, :width].astype(np.uint16) << 8
    words = np.ascontiguousarray(array[:height]).view("<u2")[:, :width]  # (h, stride) bytes -> (h, w) words
    if msb_aligned:
        return words.astype(np.uint16)
    return (words.astype(np.uint16) & ((1 << bits) - 1)) << (16 - bits)


def to_spec_codes(words: np.ndarray, input_bits: int, msb: bool) -> np.ndarray:
    """16-bit top-aligned words as a spec's input codes: kept as words (msb), or its ``input_bits`` low bits."""
    if msb or input_bits == 16:
        return words
    codes = words >> (16 - input_bits)
    return codes.astype(np.uint8 if input_bits == 8 else np.uint16)


def rephase(mosaic: np.ndarray, have: str, want: str) -> np.ndarray:
    """The mosaic shifted by one row and/or column so that its 2x2 cells read in ``want`` order (even size kept)."""
    if have == want:
        return mosaic
    for dy in (0, 1):
        for dx in (0, 1):
            cells = [have[((y + dy) % 2) * 2 + (x + dx) % 2] for y in (0, 1) for x in (0, 1)]
            if "".join(cells) == want:
                height, width = mosaic.shape[:2]
                return mosaic[dy: height - (height - dy) % 2, dx: width - (width - dx) % 2]  # even sizes kept
    raise CameraError(f"a {have} mosaic cannot be read as {want} by shifting it; its colours differ")


def black_level_refusal(levels16, spec_black: int, input_bits: int) -> str | None:
    """Why a spec's ``black_level`` (input codes) does not fit the black levels the sensor reports (R, Gr, Gb, B,
    out of 16 bits), or None. A spec that subtracts none (0) fits any: the pedestal stays in the codes."""
    if not spec_black or not levels16:
        return None
    reported = [int(level) >> (16 - input_bits) for level in levels16]  # the same 16-bit scale as raw_words
    if all(abs(level - spec_black) <= 1 for level in reported):
        return None
    return (f"the readout spec subtracts black level {spec_black} but the sensor reports "
            f"{'/'.join(map(str, reported))} (R/Gr/Gb/B, {input_bits}-bit codes); compile the model for a spec with "
            f"black_level = {round(sum(reported) / len(reported))}, or the tuning the spec was made for")


def rescale_note(sensor_bits: int, spec_bits: int) -> str | None:
    """What reading ``sensor_bits``-bit raw as ``spec_bits``-bit codes does to them, or None when the depths agree."""
    if sensor_bits == spec_bits:
        return None
    if sensor_bits < spec_bits:
        return (f"the sensor's {sensor_bits}-bit raw is read as {spec_bits}-bit codes (x{1 << (spec_bits - sensor_bits)}:"
                f" the same full scale, but only every {1 << (spec_bits - sensor_bits)}th code occurs)")
    return (f"the sensor's {sensor_bits}-bit raw is read as {spec_bits}-bit codes (its {sensor_bits - spec_bits} "
            f"lowest bits dropped)")
