"""The fake ``Picamera2``: picamera2's behaviour on a Pi 4 or Pi 5, for what a capture loop uses.

Line numbers are picamera2 0.3.38's ``picamera2/picamera2.py`` (P2) unless named (``version = (0, 3, 34)``
switches to 0.3.34's, Raspberry Pi OS trixie's); libcamera is the Raspberry Pi fork at 26bfadc (LC). The camera
system (when the tuning is read, the manager dropped, the IPA cold) is ``manager.py``; what the IPA decides per
start and frame (start-up frames, autofocus, crops) is ``ipa.py``. What is modelled here:

- construction (P2 L315-382): ``tuning`` sets ``$LIBCAMERA_RPI_TUNING_FILE`` (a str as it is; a dict through a
  temporary file that is **deleted** at the end of ``__init__`` with the variable left pointing at it: L327-338,
  L373-375; None unsets it) only now, after any earlier ``global_camera_info()`` started the manager (L311); the
  number indexes ``global_camera_info()``, sorted non-USB first and by Id in reverse (L296-313): past the end a
  ``RuntimeError('No camera number N found ...')`` (L345-348; 0.3.34: an ``IndexError``, 0.3.34 L341), a str a
  ``TypeError``; a camera another process holds fails ``acquire()`` (P2 L580; LC ``py_main.cpp`` L153-157,
  ``camera.cpp`` L1007-1023: "Failed to acquire camera: Device or resource busy") and picamera2 raises
  "Camera __init__ sequence did not complete." ``from`` it (L369-372; 0.3.34 L363-365: no ``from``, the cause
  only in ``__context__``); the camera joins the manager after a successful open (L376-377; 0.3.34 before it);
- ``create_video_configuration`` (L902-956): main defaults to XBGR8888 1280x720 preserve_ar, lores to YUV420
  at main's size with ``preserve_ar`` False (L924-928), sizes rounded down to even; ``raw={}`` adds a raw
  stream at the sensor format and main's size, only ``raw=None`` leaves it out (L929-931); the colour space
  is SMPTE170M below 1280x720 and Rec709 from there (L932-937); controls start from a fixed 33333 us frame
  duration (L938-942); an unknown stream key is a ``ValueError`` (L771-780);
- ``configure`` (L1180-1305): refused while started; streams checked and the mode chosen (``configuration.py``);
  libcamera's answer written back into the caller's stream dicts (size, stride, framesize, format; transform,
  colour space, sensor: L1151-1178), sizes and strides as the platform makes them (``sensors.py``), the raw
  stream at the mode's size and Bayer order for the flips (``pipeline_base.cpp`` L242-261); unadvertised
  controls raise ``RuntimeError("Control X is not advertised by libcamera")`` (``controls.py`` L32-33); with two
  outputs on a Pi 5 ``ScalerCrops`` is advertised and picamera2 sets it to the outputs' default crops
  (L1295-1301), which then override any ``ScalerCrop`` (``ipa.py``);
- ``start`` (L1315-1373): a non-zero ExposureTime / AnalogueGain sets its Mode control to manual (L1328-1337);
  ``AeEnable`` in the start controls only works from libcamera 0.5.2 (LC ``camera.cpp`` L1412-1416); the start-up
  frames the IPA marks are dropped by picamera2 before any job sees them (``ipa.py``);
- ``capture_request(wait=s)`` (L1529-1558, L1876-1886) and ``wait(job, timeout)`` (L1520-1527): a job on
  ``_job_list``; when no frame comes in time it raises an empty ``TimeoutError`` and **the job stays queued**; a
  later frame is taken by that stale job and its request is never released (counted in ``leaked``); frames
  arrive one frame duration apart (``ipa_base.cpp`` L1766-1796: the exposure cannot exceed the longest frame
  duration), the first after the start-up frames; time waited in vain counts (the camera keeps running);
- a late frame (``stall()``): it completes between a ``TimeoutError`` and ``cancel_all_and_flush``, so the
  abandoned job runs, is taken off the list (L1478-1484) and gets the request (signalled after, L1512-1513):
  ``cancel_all_and_flush`` cannot cancel it, and only its ``get_result`` gives the request back;
- ``stop`` (L1415-1426) queues ``stop_`` behind any stale job while the preview's event loop runs: on a camera
  that delivers nothing it blocks for ever; ``cancel_all_and_flush`` (L1375-1387) cancels the jobs;
  ``close`` (L725-755) stops the preview first and then calls ``stop_`` directly, so it never waits on the job
  list; it leaves the manager (L739);
- a frontend timeout (LC ``pipeline_base.cpp`` L1365-1417: pending requests cancelled, dropped by picamera2,
  L138-142) leaves the camera delivering nothing until it is stopped and started again; an unplugged camera
  is gone from ``global_camera_info`` and its ``release`` fails to queue;
- metadata: SensorTimestamp (ns, CLOCK_BOOTTIME: ``control_ids_core.yaml`` L778-791), FrameWallClock (ns,
  CLOCK_REALTIME, L1269-1283; from libcamera 0.4 on the Pi fork: ``pipeline_base.cpp`` L1513-1514, ``vc4.cpp``
  L829-834), ExposureTime, AnalogueGain, FrameDuration, ColourGains, SensorBlackLevels (out of 16 bits, R, Gr,
  Gb, B: ``ipa_base.cpp`` L1619-1625), AfState and LensPosition with a lens, and SensorTemperature where the
  sensor's embedded data has it (``cam_helper_imx708.cpp`` L251).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import tempfile
import threading
import time

from tests.edge.sources.fake_picamera2 import configuration, ipa
from tests.edge.sources.fake_picamera2.libcamera import ColorSpace, Transform
from tests.edge.sources.fake_picamera2.manager import TUNING_ENV, FakeCameraManager
from tests.edge.sources.fake_picamera2.request import FakeRequest
from tests.edge.sources.fake_picamera2.sensors import IMX708, Mode, Platform, Sensor, adjust_output, flipped, \
    raw_format, stride

TUNING_FILES = {"imx708.json", "imx708_noir.json", "imx708_wide.json", "imx708_wide_noir.json", "imx477.json",
                "imx477_noir.json", "ov9281_mono.json", "imx477_scientific.json"}


class _Job:
    """picamera2's ``Job`` (``job.py``): its result a future's (L78-93)."""

    def __init__(self, camera) -> None:
        self.camera, self.cancelled, self.done, self.result = camera, False, False, None

    def get_result(self, timeout=None):
        if self.cancelled:
            raise concurrent.futures.CancelledError()
        if self.done:
            return self.result
        return self.camera._run(self, timeout)

    def cancel(self) -> None:
        self.cancelled = True


class FakePicamera2:
    platform = Platform.VC4  # picamera2 decides it once, at import (platform.py)
    attached: tuple[Sensor, ...] = (IMX708,)
    libcamera_version = (0, 5, 2)
    version = (0, 3, 38)  # picamera2's: (0, 3, 34) is Raspberry Pi OS trixie's
    busy: frozenset = frozenset()  # camera Ids another process holds
    timeout_after: int | None = None  # the next camera opened has a frontend timeout after this many frames
    instances: list = []
    _cm = FakeCameraManager()

    def __init__(self, camera_num: int = 0, verbose_console=None, tuning=None, allocator=None) -> None:
        self.tuning_asked, tuning_file = tuning, None
        if isinstance(tuning, str):  # L327-338
            os.environ[TUNING_ENV] = tuning
        elif tuning is not None:
            tuning_file = tempfile.NamedTemporaryFile("w", suffix=".json")  # noqa: SIM115 - picamera2's own
            json.dump(tuning, tuning_file)
            tuning_file.flush()
            os.environ[TUNING_ENV] = tuning_file.name
        else:
            os.environ.pop(TUNING_ENV, None)
        self.is_open = self.started = False
        FakePicamera2.instances.append(self)
        try:
            self.camera_idx = self._open(camera_num)
        finally:
            if tuning_file is not None:
                tuning_file.close()  # L373-375: deleted; the variable still names it
        if self.version >= (0, 3, 38):
            self._cm.add(self.camera_idx, self)  # L376-377: only once the open succeeded
        self.timeout_after, FakePicamera2.timeout_after = FakePicamera2.timeout_after, None

    def _open(self, camera_num: int) -> int:
        cameras = self.global_camera_info()
        if self.version >= (0, 3, 38) and camera_num >= len(cameras):
            raise RuntimeError(f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to '
                               f"check connected cameras")
        number = cameras[camera_num]["Num"]  # 0.3.34: IndexError past the end (L341)
        if self.version < (0, 3, 38):
            self._cm.add(number, self)  # 0.3.34 L342: before the open can fail
        self.sensor = next(s for s in self.attached if s.id == cameras[camera_num]["Id"])
        self._reset()
        try:
            if self.sensor.id in FakePicamera2.busy:  # camera.cpp L1014-1023 through py_main.cpp L153-157
                raise RuntimeError("Failed to acquire camera: Device or resource busy")
        except RuntimeError as error:
            if self.version >= (0, 3, 38):
                raise RuntimeError("Camera __init__ sequence did not complete.") from error
            raise RuntimeError("Camera __init__ sequence did not complete.")  # noqa: B904 - 0.3.34 L363-365
        self.is_open = True
        self.tuning = self._cm.cms(self.attached).tuning[self.sensor.id]  # what the IPA loaded
        return number

    def _reset(self) -> None:
        self.camera_config: dict = {}
        self.controls: dict = {}
        self.crops: dict = {}
        self._default_crops: dict = {}
        self.raw_order = ""
        self.mode: Mode | None = None
        self._job_list: list[_Job] = []
        self.outstanding = self.released = self.leaked = self.cancelled = self.late = 0
        self.sequence = self.clock_ns = self.startup_frames = 0
        self.next_due_us = 0.0
        self.dead = self.device_gone = self.requeue_fails = self._stalled = self._late_pending = False
        self.skip_next = 0  # frames the next delivery skips (dropped inside picamera2's queue)
        self.stop_blocked = threading.Event()  # set while stop() waits behind a stale job
        self.warnings: list[str] = []
        self.focus = ipa.Focus()
        self._trigger: int | None = None

    # -- the camera system ------------------------------------------------------------------------------------

    @staticmethod
    def global_camera_info() -> list[dict]:
        registered = FakePicamera2._cm.cms(FakePicamera2.attached).registered  # L311: starts the manager
        cameras = [{"Model": s.model, "Location": s.location, "Rotation": s.rotation, "Id": s.id, "Num": n}
                   for n, s in enumerate(registered) if s in FakePicamera2.attached]
        return sorted(cameras, key=lambda c: ("/usb" not in c["Id"], c["Id"]), reverse=True)

    @staticmethod
    def load_tuning_file(tuning_file, dir=None) -> dict:
        if tuning_file not in TUNING_FILES:
            raise RuntimeError("Tuning file not found")
        return {"version": 2.0, "target": FakePicamera2.platform.name.lower(), "algorithms": [], "file": tuning_file}

    @property
    def camera_properties(self) -> dict:
        return {"Model": self.sensor.model, "PixelArraySize": self.sensor.pixel_array,
                "Rotation": self.sensor.rotation, "ColorFilterArrangement": 5 if self.sensor.mono else 0}

    @property
    def sensor_modes(self) -> list[dict]:
        if self.started:  # it reconfigures the camera for each mode (P2 L585-621)
            raise RuntimeError("Camera must be stopped before configuring")
        order = "R" if self.sensor.mono else "S" + self.sensor.native_order  # native, unflipped (LC sensor L209)
        return [{"format": f"{order}{m.bit_depth}" + ("" if m.bit_depth == 8 else "_CSI2P"),
                 "unpacked": f"{order}{m.bit_depth}", "bit_depth": m.bit_depth,
                 "size": m.size, "fps": m.fps, "crop_limits": m.crop,
                 "exposure_limits": (26, int(1e6 / m.fps * 50), 20000)} for m in self.sensor.modes]

    @property
    def sensor_format(self) -> str:
        best = max(self.sensor.modes, key=lambda m: (m.size[0] * m.size[1], m.bit_depth))  # L632-646
        order = "R" if self.sensor.mono else "S" + self.sensor.native_order
        return f"{order}{best.bit_depth}_CSI2P"

    @property
    def camera_controls(self) -> dict:
        """(min, max, default) of each control; ScalerCrop's max is the mode's field of view, and ScalerCrops
        is there only with two outputs on a Pi 5, from the outputs' default crops (pipeline_base.cpp L569-593)."""
        controls = {name: (None, None, None) for name in self.sensor.advertised}
        if self.mode is not None:
            controls["ScalerCrop"] = (None, self.mode.crop, self._default_crops.get("main"))
            outputs = [n for n in ("main", "lores") if n in self._default_crops]
            if self.platform is Platform.PISP and len(outputs) == 2:
                controls["ScalerCrops"] = tuple(self._default_crops[n] for n in outputs) + (controls["ScalerCrop"][2],)
        return controls

    # -- configurations ---------------------------------------------------------------------------------------

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=Transform(),  # noqa: B006, B008
                                   colour_space=None, buffer_count=6, controls={}, display="main",  # noqa: B006
                                   encode="main", queue=True, sensor={}, use_case="video") -> dict:  # noqa: B006
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = configuration.stream({"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, main)
        lores = configuration.stream({"format": "YUV420", "size": main["size"], "preserve_ar": False}, lores)
        raw = configuration.stream({"format": self.sensor_format, "size": main["size"]}, raw)
        if colour_space is None:
            small = main["size"][0] < 1280 or main["size"][1] < 720
            colour_space = ColorSpace.Smpte170m() if small else ColorSpace.Rec709()
        controls = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | dict(controls)
        return {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores, "raw": raw,
                "controls": controls, "sensor": sensor, "display": display, "encode": encode}

    def configure(self, camera_config=None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            raise TypeError("Invalid type for `camera_config` given")
        config = camera_config.copy()  # shallow: the stream dicts are the caller's, and are written back
        configuration.check(config, self.platform)
        mode = configuration.choose_mode(self.sensor.modes, config)
        flip = self.sensor.rotation == 180
        hflip, vflip = bool(config["transform"].hflip) != flip, bool(config["transform"].vflip) != flip
        self.raw_order = "" if self.sensor.mono else flipped(self.sensor.native_order, hflip, vflip)
        outputs = [n for n in ("main", "lores") if config.get(n)]
        for index, name in enumerate(outputs):
            fields = config[name]
            fields["size"] = adjust_output(self.platform, fields["size"], mode, index, len(outputs))
            fields["stride"] = stride(self.platform, fields["format"], fields["size"][0])
            fields["framesize"] = fields["stride"] * fields["size"][1] * (3 if fields["format"] in
                                                                         configuration.YUV else 2) // 2
        main = config["main"]
        self.crops = {"main": configuration.aspect_crop(mode, main["size"][0] / main["size"][1])
                      if main.get("preserve_ar", True) else mode.crop}
        if config.get("lores"):
            lores = config["lores"]
            own = self.platform is Platform.PISP and lores.get("preserve_ar")
            self.crops["lores"] = (configuration.aspect_crop(mode, lores["size"][0] / lores["size"][1]) if own
                                   else self.crops["main"])
        if config.get("raw"):
            raw = config["raw"]
            raw["format"], raw["stride"] = raw_format(self.platform, self.sensor, mode, self.raw_order, raw["format"])
            raw["size"] = mode.size
            raw["framesize"] = raw["stride"] * mode.size[1]
            self.crops["raw"] = mode.crop
        config["sensor"] = {"bit_depth": mode.bit_depth, "output_size": mode.size}
        self.mode, self._default_crops, self.controls = mode, dict(self.crops), {}
        self.set_controls(config.get("controls", {}))
        self.camera_config = config
        if "ScalerCrops" in self.camera_controls:  # L1295-1301
            par_crop, full_fov = self.camera_controls["ScalerCrops"], self.camera_controls["ScalerCrop"][1]
            crops = [par_crop[0] if main.get("preserve_ar", True) else full_fov]
            crops.append(par_crop[1] if config["lores"].get("preserve_ar") else crops[0])
            self.set_controls({"ScalerCrops": crops})

    def camera_configuration(self) -> dict:
        return self.camera_config

    def set_controls(self, controls) -> None:
        controls = dict(controls)
        for name, value in sorted(controls.items(), key=lambda item: item[0] != "AfMode"):  # AF mode first
            if name == "FrameRate":  # a picamera2 virtual control (controls.py L8-31)
                name, value = "FrameDurationLimits", (int(1e6 / value), int(1e6 / value))
            if name not in self.camera_controls:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            if name == "AfTrigger":  # an event, not a setting (direction: in)
                self._trigger = value
                if self.started:
                    self.focus.trigger(value)
                continue
            self.controls[name] = value
            if name == "AfMode" and self.started:
                self.focus.set_mode(value)
            if name in ("ExposureTime", "AnalogueGain"):  # request.py L125-143: the Mode follows the value
                self.controls[name + "Mode"] = 0 if not value else 1
            if name == "AeEnable" and self.started and self.libcamera_version >= (0, 5, 0):
                self.controls["ExposureTimeMode"] = self.controls["AnalogueGainMode"] = 0 if value else 1
            if name in ("ScalerCrop", "ScalerCrops") and self.started:
                self._apply_crops()

    def _apply_crops(self) -> None:
        names = [n for n in ("main", "lores") if n in self._default_crops]
        crops = ipa.output_crops(self.platform is Platform.PISP, names, self._default_crops, self.controls)
        self.crops.update({n: crops[n] for n in names})

    # -- running ----------------------------------------------------------------------------------------------

    def start(self, config=None, show_preview=False) -> None:
        if config is not None:
            self.configure(config)
        if not self.camera_config:
            self.configure(self.create_video_configuration())  # picamera2 falls back to a configuration of its own
        if self.started:
            return
        controls = self.controls
        for name in ("ExposureTime", "AnalogueGain"):
            if name in controls:
                controls[name + "Mode"] = 0 if not controls[name] else 1
        if "AeEnable" in controls:
            if self.libcamera_version >= (0, 5, 2):  # camera.cpp L1412-1416: patched in start() only from 0.5.2
                controls["ExposureTimeMode"] = controls["AnalogueGainMode"] = 0 if controls["AeEnable"] else 1
            else:
                self.warnings.append("Ctrl AeEnable is not handled.")
        self.started, self.dead, self.clock_ns = True, False, 0
        self._apply_crops()
        if self.sensor.lens:  # ipa_base.cpp L801-816, then the trigger in the control loop (L1397-1410)
            self.focus.set_mode(controls.get("AfMode", ipa.AF_MANUAL))
            if self._trigger is not None:
                self.focus.trigger(self._trigger)
        self.startup_frames = ipa.startup_frames(controls, self.sensor, self._cm.cms(self.attached).cold_start(
            self.sensor.id))
        self.next_due_us = (self.startup_frames + 1) * self._exposure_us()[0]
        self.wall_base_ns = time.time_ns()

    def _exposure_us(self) -> tuple[float, float, float]:
        """(frame duration, exposure, analogue gain) as the IPA would run them now."""
        limits = self.controls.get("FrameDurationLimits", (33333, 33333))
        shortest = max(limits[0], 1e6 / self.mode.fps)
        longest = max(limits[1], shortest)
        manual = self.controls.get("ExposureTimeMode") == 1
        exposure = min(self.controls["ExposureTime"] if manual else 20000, longest)
        gain = self.controls["AnalogueGain"] if self.controls.get("AnalogueGainMode") == 1 else 2.0
        return min(max(exposure, shortest), longest), exposure, gain

    def capture_request(self, wait=None, signal_function=None, flush=None):
        job = _Job(self)
        self._job_list.append(job)  # dispatch_functions L1547-1550
        if wait is False:
            return job
        return job.get_result(None if wait in (None, True) else wait)

    def wait(self, job, timeout=None):
        return job.get_result(timeout=timeout)

    def _run(self, job: _Job, timeout: float | None) -> FakeRequest:
        """The event loop until ``job`` has a frame: the frames come, the jobs queued first take them first."""
        if self.timeout_after is not None and self.sequence >= self.timeout_after:
            self.frontend_timeout()
        duration, exposure, gain = self._exposure_us() if self.started else (0, 0, 0)
        arrives = not self.dead and self.started and not self.device_gone and not self._stalled
        if not arrives or (timeout is not None and timeout * 1e6 < self.next_due_us):
            if self._stalled:
                self._stalled, self._late_pending = False, True
            elif arrives:
                self.next_due_us -= timeout * 1e6  # the time waited in vain passed: the camera kept running
            else:
                time.sleep(min(timeout or 0.05, 0.05))
            raise TimeoutError()  # Future.result(timeout): empty message; the job stays on _job_list
        while self._job_list and self._job_list[0] is not job:  # stale jobs take the frames first
            self._job_list.pop(0)
            self.leaked += 1
            self._deliver(duration, exposure, gain)
        self._job_list.remove(job)
        return self._deliver(duration, exposure, gain)

    def _deliver(self, duration: float, exposure: float, gain: float) -> FakeRequest:
        self.clock_ns += int(duration * 1000) * (1 + self.skip_next + self.startup_frames)
        self.skip_next = self.startup_frames = 0
        self.next_due_us = duration
        gains = self.controls.get("ColourGains") or (1.8, 1.5)
        metadata = {"ExposureTime": int(exposure), "AnalogueGain": float(gain), "FrameDuration": int(duration),
                    "DigitalGain": 1.0, "Lux": 400.0, "ColourGains": tuple(gains),
                    "SensorBlackLevels": (self.sensor.black_level,) * 4}
        if self.libcamera_version >= (0, 4, 0):
            metadata["FrameWallClock"] = self.wall_base_ns + self.clock_ns
        if self.sensor.temperature is not None:
            metadata["SensorTemperature"] = self.sensor.temperature
        if self.sensor.lens:
            metadata |= self.focus.frame(self.controls.get("LensPosition"))
        request = FakeRequest(self, self.sequence, 1_000_000_000 + self.clock_ns, metadata)
        self.sequence += 1
        return request

    def cancel_all_and_flush(self) -> None:
        if self._late_pending and self._job_list:  # the late frame ran the first job before the lock was taken
            job = self._job_list.pop(0)
            job.result, job.done = self._deliver(*self._exposure_us()), True
            self.late += 1
        self._late_pending = False
        for job in self._job_list:
            job.cancel()
            self.cancelled += 1
        self._job_list = []

    def stop(self) -> None:
        if not self.started:
            return  # "Camera was not started" (L1417-1419)
        if self._job_list:  # stop_ is queued behind the stale jobs (L1424) and waits for frames to run them
            if self.dead or self.device_gone:
                self.stop_blocked.set()
                threading.Event().wait()  # no frame will ever come: blocked for ever, as the real one is
            while self._job_list:
                self._job_list.pop(0)
                self.leaked += 1
        self.started = False

    def close(self) -> None:
        if not self.is_open:
            return
        self.started = False  # the preview loop stops first, then stop_ runs directly (L731-736)
        self.is_open = False
        self.camera_config = {}
        self._cm.cleanup(self.camera_idx)  # L739

    # -- failures a test injects --------------------------------------------------------------------------------

    def frontend_timeout(self) -> None:
        """libcamera's 'Camera frontend has timed out!': nothing arrives until the camera is stopped and started."""
        self.dead = True

    def stall(self) -> None:
        """The next frame comes too late for the wait, and completes just before ``cancel_all_and_flush``."""
        self._stalled = True

    @classmethod
    def unplug(cls, sensor: Sensor) -> None:
        cls.attached = tuple(s for s in cls.attached if s is not sensor)
        for camera in cls.instances:
            if getattr(camera, "sensor", None) is sensor:
                camera.device_gone = True
