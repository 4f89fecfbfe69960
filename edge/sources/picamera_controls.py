"""What keycam asks of a Raspberry Pi camera: the sensor mode, the controls it starts with, and how long to wait.

No picamera2 here (``edge/sources/picamera.py`` is the one module that imports it); the source lines are
picamera2 0.3.38's ``picamera2/picamera2.py`` (P2) and the Raspberry Pi fork of libcamera at 26bfadc (LC).

**Waits.** After ``start()`` the IPA marks the first frames of a cold start as start-up frames (LC ``ipa_base.cpp``
L356-394): ``max(AGC, AWB)``, where AGC is its convergence (6 frames, ``agc_channel.cpp`` L251) plus one
mistrusted frame unless exposure *and* gain are fixed, and AWB its convergence (3, ``awb.cpp`` L77) plus one unless
the colour gains are fixed; picamera2 drops every request that is not ``Success`` (P2 L1437-1444). So with
automatic exposure the first frame an application sees is about the 8th, and::

    first wait  = (start-up frames + 3) x frame duration + 1 s
    later waits = max(1 s, 5 x frame duration) + 1 s        (libcamera's own frontend watchdog: 5 frame
                                                             lengths, at least 1 s: LC vc4.cpp L951-963)

where the frame duration is the longest the controls allow (``FrameDurationLimits``' maximum: the exposure cannot
exceed it, ``ipa_base.cpp`` L1766-1796; 33333 us for a video configuration, P2 L938-942).

**Focus** (Camera Module 3; ``control_ids_core.yaml`` L793-850): ``manual`` holds ``lens_position``; ``auto`` scans
once when the camera starts (``AfTrigger`` = start in the start controls: in Auto mode libcamera moves the lens only
on a trigger, L812-837, and applies the AF mode before the trigger, ``ipa_base.cpp`` L801-816, L1397-1410);
``continuous`` refocuses by itself. ``default`` is what rpicam-apps does: continuous where the camera has autofocus,
manual at ``lens_position`` when one is given, nothing on a camera without a lens.

**Locked values** (``lock_after_frames``) are part of the start controls of every later open, so a camera that is
reopened after a fault starts with them (and, exposure, gain and colour gains all fixed, with no start-up frames).
"""

from __future__ import annotations

import logging

import numpy as np

from edge.sources.picamera_open import permanent

log = logging.getLogger(__name__)
AF_MODES = {"manual": 0, "auto": 1, "continuous": 2}  # libcamera.controls.AfModeEnum
AF_TRIGGER_START = 0  # controls::AfTriggerStart (control_ids_core.yaml L952-975)
AF_STATES = {0: "idle", 1: "scanning", 2: "focused", 3: "failed"}  # controls::AfStateEnum (L1058-1115)
VIDEO_FRAME_US = 33333  # create_video_configuration's FrameDurationLimits (P2 L938-942)
AGC_FRAMES, AWB_FRAMES, MISTRUSTED = 6, 3, 1  # agc_channel.cpp L251, awb.cpp L77, cam_helper.cpp L195-199
LOCKED = ("ExposureTime", "AnalogueGain", "ColourGains")


def _even_up(value: float) -> int:
    value = int(np.ceil(value))
    return value + value % 2


def stream_size(width: int, height: int, minimum: int) -> tuple[int, int]:
    """(w, h) at the model's aspect ratio, both at least ``minimum`` and even (a Pi 4 clamps each side to 64)."""
    scale = max(1.0, minimum / width, minimum / height)
    return _even_up(width * scale), _even_up(height * scale)


def lores_size(main: tuple[int, int], width: int, height: int, minimum: int) -> tuple[int, int]:
    """The lores stream beside ``main``: main's aspect ratio (it shares main's crop), covering the model."""
    main_w, main_h = main
    scale = max(width / main_w, height / main_h, minimum / main_w, minimum / main_h)
    return min(_even_up(main_w * scale), main_w), min(_even_up(main_h * scale), main_h)


def choose_mode(modes: list[dict], need: tuple[int, int], frame_rate: float | None, wanted: str) -> dict:
    """The sensor mode: ``wanted`` ('WxH' or 'WxH:bits'), or the full-field-of-view one with the fewest pixels
    covering ``need`` (w, h) at ``frame_rate``; a cropped mode only when no full one is fast enough."""
    modes = [m for m in modes if "size" in m]
    if not modes:
        raise permanent("the camera lists no raw sensor modes (not a Raspberry Pi camera?)")
    if wanted != "auto":
        size, _, bits = wanted.partition(":")
        found = [m for m in modes if f"{m['size'][0]}x{m['size'][1]}" == size and (not bits or m["bit_depth"] ==
                                                                                   int(bits))]
        if not found:
            listed = ", ".join(f"{m['size'][0]}x{m['size'][1]}:{m['bit_depth']}" for m in modes)
            raise permanent(f"source.sensor_mode = {wanted!r} is not one of this camera's modes ({listed})")
        return max(found, key=lambda m: m["bit_depth"])
    area = max(m["crop_limits"][2] * m["crop_limits"][3] for m in modes)
    fast = [m for m in modes if not frame_rate or m["fps"] >= frame_rate] or [max(modes, key=lambda m: m["fps"])]
    full = [m for m in fast if m["crop_limits"][2] * m["crop_limits"][3] == area] or fast
    covering = [m for m in full if m["size"][0] >= need[0] and m["size"][1] >= need[1]]
    pick = min(covering or full, key=lambda m: (m["size"][0] * m["size"][1] if covering else -m["size"][0],
                                                -m["bit_depth"]))
    if pick not in [m for m in modes if m["crop_limits"][2] * m["crop_limits"][3] == area]:
        log.info("sensor mode %s crops the field of view: no full-field mode reaches %s fps", pick["size"], frame_rate)
    return pick


def start_controls(settings, locked: dict, autofocus: bool) -> dict:
    """The controls the camera starts with: frame rate, exposure, gains, focus, crop, and any locked values."""
    controls: dict[str, object] = {}
    if settings.frame_rate:
        frame = int(1e6 / settings.frame_rate)
        controls["FrameDurationLimits"] = (frame, frame)
    elif settings.exposure_us and settings.exposure_us > VIDEO_FRAME_US:  # the default would cap the exposure
        controls["FrameDurationLimits"] = (VIDEO_FRAME_US, int(settings.exposure_us) + 1000)
    if settings.exposure_us:
        controls["ExposureTime"] = int(settings.exposure_us)
    if settings.analogue_gain:
        controls["AnalogueGain"] = float(settings.analogue_gain)
    if settings.colour_gains:
        controls["ColourGains"] = tuple(float(g) for g in settings.colour_gains)
    controls.update(locked)  # lock_after_frames: the values it froze, on every open after it fired
    controls.update(focus_controls(settings, autofocus))
    if settings.scaler_crop:
        controls["ScalerCrop"] = tuple(settings.scaler_crop)
    return controls


def focus_controls(settings, autofocus: bool) -> dict:
    """AfMode (and LensPosition, AfTrigger) for ``af_mode``; ``autofocus``: the camera advertises AfMode."""
    mode = settings.af_mode
    if mode == "default":
        if settings.lens_position is not None:
            mode = "manual"
        elif autofocus:
            mode = "continuous"  # rpicam-apps' default where the lens can focus
        else:
            return {}
    controls: dict[str, object] = {"AfMode": AF_MODES[mode]}
    if settings.lens_position is not None:
        controls["LensPosition"] = float(settings.lens_position)
    if mode == "auto":
        controls["AfTrigger"] = AF_TRIGGER_START  # one scan at start; without it Auto never moves the lens
    return controls


def frame_us(controls: dict) -> float:
    """The longest frame the controls allow, microseconds."""
    limits = controls.get("FrameDurationLimits") or (VIDEO_FRAME_US, VIDEO_FRAME_US)
    return float(max(limits))


def startup_frames(controls: dict) -> int:
    """Frames a cold start hides (picamera2 drops them): AGC's unless exposure and gain are fixed, AWB's unless the
    colour gains are; the larger of the two."""
    agc = 0 if "ExposureTime" in controls and "AnalogueGain" in controls else AGC_FRAMES + MISTRUSTED
    awb = 0 if "ColourGains" in controls else AWB_FRAMES + MISTRUSTED
    return max(agc, awb)


def first_wait_s(controls: dict) -> float:
    return (startup_frames(controls) + 3) * frame_us(controls) / 1e6 + 1.0


def later_wait_s(controls: dict) -> float:
    return max(1.0, 5 * frame_us(controls) / 1e6) + 1.0
