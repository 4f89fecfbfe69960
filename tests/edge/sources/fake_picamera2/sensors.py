"""The fake's sensors and the two Raspberry Pi platforms, as the kernel drivers and libcamera describe them.

Sensors (raspberrypi/linux drivers, as read by the research for keycam's picamera source):

- **imx708** (Camera Module 3; ``drivers/media/i2c/imx708.c`` ``supported_modes_10bit_no_hdr``): 10-bit
  4608x2592 (full array, ~14.35 fps), 2304x1296 (2x2 binned, full field of view, ~56 fps) and 1536x864
  (2x2 binned *and cropped* to the centre 3072x1728 "for 720p", ~120 fps). Native Bayer order RGGB
  (``codes[]`` = RGGB, GRBG, GBRG, BGGR for no flip / hflip / vflip / both), mounted ``rotation = <180>``
  (``imx708.dtsi``), with a lens: the AF controls are advertised (``ipa_base.cpp`` L105-116).
- **imx477** (HQ camera; ``imx477.c``): 12-bit 4056x3040 (10 fps), 2028x1520 (binned, full field of
  view, 40 fps), 2028x1080 (binned, cropped, 50 fps) and the 10-bit 1332x990 (binned, cropped, ~120 fps)
  of newer drivers; native RGGB, mounted 180 degrees, no lens controls.
- **imx219** (Camera Module 2; ``imx219.c`` ``supported_modes`` and ``imx219_mbus_formats``): every mode in
  10-bit *and 8-bit* (``SRGGB8``: one byte a photosite, unpacked, ``vc4.cpp`` L481-490): 3280x2464 (full,
  ~21 fps), 1920x1080 (cropped, ~47 fps), 1640x1232 (2x2 binned, full field of view, ~41 fps), 640x480
  (binned and cropped, ~206 fps); native RGGB, mounted ``rotation = <180>`` (``imx219.dtsi``), no lens.

Black level (``black_level``, 16-bit scale as ``SensorBlackLevels`` reports it, ``control_ids_core.yaml``
L627-636; the tuning files' ``rpi.black_level``, 4096 for these sensors): the fake's sensors default to 0 so
that the raw tests compare codes with the scene directly; a test that needs the pedestal gives a sensor one
(``dataclasses.replace(IMX708, black_level=4096)``), and the raw codes then carry it.

Platforms (``Picamera2.platform``, picamera2 ``platform.py``: ``Platform.VC4`` or ``Platform.PISP``):

- **VC4** (Pi 4, bcm2835-isp): every output dimension clamped independently to [64, 16384] and the
  stride recomputed (``bcm2835-v4l2-isp.c`` MIN_DIM 64, ``get_bytesperline``): YUV420 ``ALIGN(w, 32)``,
  RGB888/BGR888 ``ALIGN(w, 32) * 3``, 32-bit formats ``ALIGN(w * 4, 64)``; lores must be YUV (picamera2
  ``check_camera_config`` L1011-1012); one ISP crop for both outputs, centred with output 0's aspect ratio
  (``vc4.cpp`` L744-759), so a lores of another aspect ratio is stretched; raw keeps the sensor's bit
  depth (``vc4.cpp`` L472-473), unpacked codes LSB-aligned in 16-bit words, rows aligned to 32 bytes
  (Unicam ``BPL_ALIGNMENT``).
- **PISP** (Pi 5): outputs may not be downscaled more than 16x from the sensor mode on Output0 nor 64x
  on Output1 (``pisp.cpp`` L1257-1291; a single output stream goes to Output1, L1248-1249) and too small
  sizes are enlarged preserving the requested aspect ratio; YUV420 strides are multiples of 128 and
  others of 64 bytes (``pisp.cpp`` L235-262, libpisp ``compute_optimal_stride``); lores may be RGB;
  unpacked raw is always 16-bit, the code in the most significant bits (``pisp.cpp`` L1203-1216: "signal
  the output as unpacked 16-bits"), and a packed request becomes the compressed ``<order>_PISP_COMP1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Platform(Enum):  # picamera2 platform.py
    VC4 = 0
    PISP = 1


@dataclass(frozen=True)
class Mode:
    size: tuple[int, int]  # (width, height) the sensor outputs
    bit_depth: int
    fps: float  # fastest frame rate
    crop: tuple[int, int, int, int]  # (x, y, w, h) of the pixel array the mode reads (its field of view)


COMMON_CONTROLS = frozenset({
    "AeEnable", "AeMeteringMode", "AeExposureMode", "ExposureTime", "ExposureTimeMode", "AnalogueGain",
    "AnalogueGainMode", "FrameDurationLimits", "ScalerCrop", "AwbEnable", "AwbMode", "ColourGains",
    "ColourTemperature", "Brightness", "Contrast", "Saturation", "Sharpness", "NoiseReductionMode",
    "ExposureValue", "HdrMode", "StatsOutputEnable", "SyncMode", "CnnEnableInputTensor",
})
LENS_CONTROLS = frozenset({"AfMode", "AfRange", "AfSpeed", "AfTrigger", "AfWindows", "AfPause", "LensPosition",
                           "AfMetering"})
COLOUR_ONLY = frozenset({"AwbEnable", "AwbMode", "ColourGains", "ColourTemperature", "Saturation"})


@dataclass(frozen=True)
class Sensor:
    model: str
    id: str  # libcamera's camera Id: the device-tree path
    native_order: str  # Bayer order with no flip ("" for a mono sensor)
    rotation: int  # mounting rotation (the device tree's `rotation`)
    pixel_array: tuple[int, int]
    modes: tuple[Mode, ...]
    lens: bool = False
    temperature: float | None = None  # SensorTemperature in the metadata, where the embedded data has it
    location: int = 2
    controls: frozenset = field(default=COMMON_CONTROLS)
    black_level: int = 0  # SensorBlackLevels, out of 16 bits (ipa_base.cpp L1619-1625); the raw codes' pedestal
    hide_frames: int = 0  # CamHelper::hideFramesStartup (cam_helper.cpp L180-187: 0; ov5647 2)

    @property
    def mono(self) -> bool:
        return not self.native_order

    @property
    def advertised(self) -> frozenset:
        names = self.controls | (LENS_CONTROLS if self.lens else frozenset())
        return names - COLOUR_ONLY if self.mono else names  # ipa_base.cpp L95-103: no colour controls on mono


IMX708 = Sensor(
    "imx708", "/base/axi/pcie@120000/rp1/i2c@88000/imx708@1a", "RGGB", 180, (4608, 2592),
    (Mode((1536, 864), 10, 120.13, (768, 432, 3072, 1728)),
     Mode((2304, 1296), 10, 56.03, (0, 0, 4608, 2592)),
     Mode((4608, 2592), 10, 14.35, (0, 0, 4608, 2592))),
    lens=True, temperature=31.0)
IMX708_WIDE_NOIR = Sensor(
    "imx708_wide_noir", "/base/axi/pcie@120000/rp1/i2c@80000/imx708@1a", "RGGB", 180, (4608, 2592),
    IMX708.modes, lens=True, temperature=29.0, location=2)
IMX477 = Sensor(
    "imx477", "/base/soc/i2c0mux/i2c@1/imx477@1a", "RGGB", 180, (4056, 3040),
    (Mode((1332, 990), 10, 120.05, (696, 528, 2664, 1980)),
     Mode((2028, 1080), 12, 50.03, (0, 440, 4056, 2160)),
     Mode((2028, 1520), 12, 40.01, (0, 0, 4056, 3040)),
     Mode((4056, 3040), 12, 10.0, (0, 0, 4056, 3040))),
    temperature=24.0)
IMX219 = Sensor(
    "imx219", "/base/soc/i2c0mux/i2c@1/imx219@10", "RGGB", 180, (3280, 2464),
    tuple(Mode(size, bits, fps, crop) for size, fps, crop in (
        ((640, 480), 206.65, (1000, 752, 1280, 960)), ((1640, 1232), 41.85, (0, 0, 3280, 2464)),
        ((1920, 1080), 47.57, (680, 692, 1920, 1080)), ((3280, 2464), 21.19, (0, 0, 3280, 2464)))
        for bits in (8, 10)))
OV9281 = Sensor(  # a global-shutter mono sensor: raw formats R8/R10, no colour controls
    "ov9281", "/base/soc/i2c0mux/i2c@1/ov9281@60", "", 0, (1280, 800),
    (Mode((640, 400), 10, 210.0, (0, 0, 1280, 800)), Mode((1280, 800), 10, 144.0, (0, 0, 1280, 800))))


def flipped(order: str, hflip: bool, vflip: bool) -> str:
    """The Bayer order read out with the sensor's flips set (the drivers' codes[] tables)."""
    cells = [order[0:2], order[2:4]]
    if hflip:
        cells = [row[::-1] for row in cells]
    if vflip:
        cells = cells[::-1]
    return "".join(cells)


def _align(value: int, to: int) -> int:
    return (value + to - 1) // to * to


def adjust_output(platform: Platform, size: tuple[int, int], mode: Mode, index: int, outputs: int) -> tuple[int, int]:
    """The output size libcamera gives back for a processed stream of ``size`` from ``mode``."""
    width, height = size
    if platform is Platform.VC4:
        return min(max(width, 64), 16384), min(max(height, 64), 16384)
    # PiSP: a lone output stream goes to Output1 (64x downscaler); with two, the larger is Output0 (16x).
    factor = 64 if outputs == 1 or index == 1 else 16
    mode_w, mode_h = mode.size
    scale = min(mode_w / width, mode_h / height)  # rawSize = sensorSize.boundedToAspectRatio(size)
    raw_w, raw_h = width * scale, height * scale
    min_w, min_h = -(-int(raw_w) // factor), -(-int(raw_h) // factor)
    if width < min_w or height < min_h:  # enlarged, keeping the requested aspect ratio
        grow = max(min_w / width, min_h / height)
        width, height = int(width * grow + 0.999), int(height * grow + 0.999)
    return width + width % 2, height + height % 2


def stride(platform: Platform, fmt: str, width: int) -> int:
    if platform is Platform.VC4:
        if fmt in ("YUV420", "YVU420"):
            return _align(width, 32)
        if fmt in ("RGB888", "BGR888"):
            return _align(width, 32) * 3
        return _align(width * 4, 64)
    if fmt in ("YUV420", "YVU420"):
        return 2 * _align(width // 2, 64)
    if fmt in ("RGB888", "BGR888"):
        return _align(width * 3, 64)
    return _align(width * 4, 64)


def raw_format(platform: Platform, sensor: Sensor, mode: Mode, order: str, requested: str) -> tuple[str, int]:
    """(format libcamera reports, row stride in bytes) for a raw stream asked as ``requested``."""
    packed = requested.endswith("_CSI2P")
    width = mode.size[0]
    if platform is Platform.VC4:
        base = f"R{mode.bit_depth}" if sensor.mono else f"S{order}{mode.bit_depth}"
        if mode.bit_depth == 8:  # vc4.cpp L481-490: no CSI2 packing of 8 bits, so unpacked: one byte a photosite
            return base, _align(width, 32)
        if packed:
            return base + "_CSI2P", _align(width * mode.bit_depth // 8, 32)
        return base, _align(width * 2, 32)
    if packed:
        return ("MONO" if sensor.mono else order) + "_PISP_COMP1", _align(width, 64)
    return ("R16" if sensor.mono else f"S{order}16"), _align(width * 2, 64)
