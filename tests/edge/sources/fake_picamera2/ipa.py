"""What the Raspberry Pi IPA and pipeline handler decide per start and per frame, for the fake camera.

libcamera is the Raspberry Pi fork at 26bfadc (v0.7.1+rpt20260429); ``ipa_base.cpp`` is
``src/ipa/rpi/common/ipa_base.cpp``, ``pipeline_base.cpp`` is ``src/libcamera/pipeline/rpi/common/pipeline_base.cpp``.

- **start-up frames** (``ipa_base.cpp`` L356-394): on a cold start the IPA hides ``hideFramesStartup()`` frames
  (``cam_helper.cpp`` L180-187: 0 for most sensors) and marks ``max(AGC, AWB)`` more as start-up frames, where
  AGC is its ``convergence_frames`` (6, ``agc_channel.cpp`` L251) + 1 mistrusted frame (``cam_helper.cpp``
  L195-199) unless exposure *and* gain are fixed (``agc_channel.cpp`` L355-365: then 0), and AWB its
  ``convergence_frames`` (3, ``awb.cpp`` L77) + 1 unless the colour gains are fixed (``awb.cpp`` L192-202;
  ``ColourGains`` puts AWB in manual mode, ``ipa_base.cpp`` L890-913) or the sensor is mono (no AWB). A warm
  start (the same IPA started again) has none. The pipeline marks those buffers ``FrameError`` /
  ``FrameStartup`` (``pipeline_base.cpp`` L1431-1434) and picamera2 drops every request whose status is not
  ``Success`` (picamera2 0.3.38 ``picamera2.py`` L1437-1444): so with automatic exposure the first frame an
  application sees is the 8th the sensor made.
- **autofocus** (``control_ids_core.yaml`` L793-850, L952-975, L1058-1115; ``ipa_base.cpp`` L801-816: the AF
  mode is applied before the other controls, L1397-1410: ``AfTrigger`` only in Auto mode, else "Could not set
  AF_TRIGGER"): Manual never moves the lens of its own accord and reports Idle; Auto moves it only after
  ``AfTrigger`` = Start (Scanning, then Focused); Continuous starts scanning at once. Until then the lens sits
  at the tuning's default position (``ipa_base.cpp`` L339-351, ``af.cpp`` L877-880: 1.0 dioptre here).
- **crops** (``pipeline_base.cpp`` L1313-1359 ``applyScalerCrop``): ``rpi::ScalerCrops`` (one rectangle per
  output stream, in the order configured) wins over ``ScalerCrop``, which applies to every output; on a Pi 4
  both outputs share one ISP crop (``vc4.cpp`` L744-759), on a Pi 5 each has its own, and ``rpi::ScalerCrops``
  is advertised only when two outputs are configured (``pipeline_base.cpp`` L583-593). The minimum-size and
  enclosing adjustments are not modelled: tests ask for crops inside the mode's field of view.
"""

from __future__ import annotations

AGC_CONVERGENCE, AWB_CONVERGENCE, MISTRUSTED = 6, 3, 1
AF_MANUAL, AF_AUTO, AF_CONTINUOUS = 0, 1, 2  # controls::AfModeEnum
AF_IDLE, AF_SCANNING, AF_FOCUSED, AF_FAILED = 0, 1, 2, 3  # controls::AfStateEnum
AF_SCAN_FRAMES = 3  # frames a scan takes in the fake
FOCUSED_AT = 2.5  # dioptres: where the fake's scene is sharp
DEFAULT_LENS = 1.0  # the tuning's default lens position (dioptres)


def startup_frames(controls: dict, sensor, cold: bool) -> int:
    """Frames the IPA hides or marks as start-up frames after ``start()``: picamera2 drops them all."""
    if not cold:
        return 0  # hideFramesModeSwitch() is 0, and no convergence is waited for on a warm start
    fixed_exposure = controls.get("ExposureTimeMode") == 1 and controls.get("AnalogueGainMode") == 1
    agc = 0 if fixed_exposure else AGC_CONVERGENCE + MISTRUSTED
    manual_gains = bool(controls.get("ColourGains")) and all(controls["ColourGains"])
    awb = 0 if manual_gains or sensor.mono else AWB_CONVERGENCE + MISTRUSTED
    return sensor.hide_frames + max(agc, awb)


class Focus:
    """The AF algorithm's state as the metadata reports it (``AfState``, ``LensPosition``)."""

    def __init__(self) -> None:
        self.mode = AF_MANUAL
        self.state = AF_IDLE
        self.lens = DEFAULT_LENS
        self.scan_left = 0
        self.ignored_triggers = 0  # "Could not set AF_TRIGGER - no AF algorithm or not Auto"

    def set_mode(self, mode: int) -> None:
        if mode == self.mode:
            return
        self.mode, self.scan_left = mode, 0  # leaving Auto cancels a scan (control_ids_core.yaml L821-823)
        self.state = AF_IDLE
        if mode == AF_CONTINUOUS:  # "the system will immediately initiate a scan" (L845-846)
            self.state, self.scan_left = AF_SCANNING, AF_SCAN_FRAMES

    def trigger(self, value: int) -> None:
        if self.mode != AF_AUTO:
            self.ignored_triggers += 1
            return
        if value == 0 and self.state != AF_SCANNING:  # AfTriggerStart; ignored during a scan (L963-968)
            self.state, self.scan_left = AF_SCANNING, AF_SCAN_FRAMES
        elif value == 1 and self.state == AF_SCANNING:  # AfTriggerCancel
            self.state, self.scan_left = AF_IDLE, 0

    def frame(self, lens_control: float | None) -> dict:
        """One frame later: the metadata the IPA reports."""
        if self.mode == AF_MANUAL and lens_control is not None:
            self.lens = lens_control
        if self.state == AF_SCANNING:
            self.scan_left -= 1
            if self.scan_left <= 0:
                self.state, self.lens = AF_FOCUSED, FOCUSED_AT
        return {"AfState": self.state, "LensPosition": float(self.lens)}


def output_crops(platform_pisp: bool, names: list[str], defaults: dict, controls: dict) -> dict:
    """The crop each output stream reads, in native pixel-array coordinates, after ``applyScalerCrop``."""
    crops = dict(defaults)
    several = controls.get("ScalerCrops") if platform_pisp and len(names) == 2 else None
    single = controls.get("ScalerCrop")
    for index, name in enumerate(names):
        if several is not None and index < len(several):
            crops[name] = tuple(several[index])
        elif single is not None:
            crops[name] = tuple(single)
    return crops
