"""The fake's configuration checks and sensor mode choice, as picamera2 0.3.38 (P2: ``picamera2/picamera2.py``)
and libcamera make them.

- ``check(config, platform)``: ``check_camera_config`` (P2 L986-1014): formats known, sizes even tuples, only
  ``bit_depth`` and ``output_size`` in the sensor dict, lores no larger than main and YUV on a Pi 4;
- ``choose_mode(...)``: the mode scored as picamera2 scores it (P2 L1065-1103) unless ``sensor`` names its size;
- ``aspect_crop(...)``: the ISP crop that keeps an output's aspect ratio, centred in the mode's field of view
  (``vc4.cpp`` L744-759, ``pisp.cpp`` L1570-1574: ``boundedToAspectRatio(...).centeredTo(...)``).
"""

from __future__ import annotations

from tests.edge.sources.fake_picamera2.sensors import Mode, Platform

STREAM_KEYS = ("format", "size", "stride", "preserve_ar")
YUV = {"NV21", "NV12", "YUV420", "YVU420", "YVYU", "YUYV", "UYVY", "VYUY"}
RGB = {"BGR888", "RGB888", "XBGR8888", "XRGB8888", "RGB161616", "BGR161616"}


def stream(defaults: dict | None, updates: dict | None) -> dict | None:
    """A stream's configuration: picamera2's defaults with the caller's keys (P2 L771-780), sizes made even."""
    if updates is None:
        return None
    made = dict(defaults)
    for key, value in updates.items():
        if key not in STREAM_KEYS:
            raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {STREAM_KEYS}")
        made[key] = value
    width, height = made["size"]
    made["size"] = (width - width % 2, height - height % 2)  # align_stream(optimal=False)
    return made


def check(config: dict, platform: Platform) -> None:
    for name in ("main", "lores", "raw"):
        fields = config.get(name)
        if fields is None:
            continue
        fmt, size = fields["format"], fields["size"]
        if name == "raw" and fmt[:1] not in ("S", "R") and "PISP" not in fmt:
            raise RuntimeError("Unrecognised raw format " + fmt)
        if name != "raw" and fmt not in YUV | RGB:
            raise RuntimeError("Bad format " + fmt + " in stream " + name)
        if type(size) is not tuple or len(size) != 2:
            raise RuntimeError("size in " + name + " stream should be (width, height)")
        if size[0] % 2 or size[1] % 2:
            raise RuntimeError("width and height should be even")
    bad = set(config.get("sensor") or {}) - {"bit_depth", "output_size"}
    if bad:
        raise RuntimeError(f"Unexpected keys {bad} in sensor configuration")
    lores = config.get("lores")
    if lores is not None:
        if lores["size"][0] > config["main"]["size"][0] or lores["size"][1] > config["main"]["size"][1]:
            raise RuntimeError("lores stream dimensions may not exceed main stream")
        if platform is Platform.VC4 and lores["format"] not in YUV:
            raise RuntimeError("lores stream must be YUV")


def choose_mode(modes: tuple[Mode, ...], config: dict) -> Mode:
    sensor = config.get("sensor") or {}
    raw = config.get("raw")
    bits = sensor.get("bit_depth") or (int("".join(c for c in raw["format"].split("_")[0] if c.isdigit()) or 0)
                                      if raw else 0) or max(m.bit_depth for m in modes)
    size = sensor.get("output_size") or (raw["size"] if raw else config["main"]["size"])

    def score(mode: Mode) -> float:  # P2 L1084-1098, as libcamera scores modes
        def part(desired, actual):
            gap = desired - actual
            return -gap / 4 if gap < 0 else gap * 2

        return (part(size[0], mode.size[0]) + part(size[1], mode.size[1])
                + 1500 * part(size[0] / size[1], mode.size[0] / mode.size[1])
                + 500 * abs(bits - mode.bit_depth))

    mode = min(modes, key=score)
    if sensor.get("output_size") and tuple(sensor["output_size"]) != mode.size:
        raise RuntimeError(f"Invalid camera configuration: no sensor mode {sensor['output_size']}")
    return mode


def aspect_crop(mode: Mode, aspect: float) -> tuple[int, int, int, int]:
    x, y, w, h = mode.crop
    if w / h > aspect:
        keep = round(h * aspect)
        return x + (w - keep) // 2, y, keep, h
    keep = round(w / aspect)
    return x, y + (h - keep) // 2, w, keep
