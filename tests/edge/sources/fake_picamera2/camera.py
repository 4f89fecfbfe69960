"""The fake ``Picamera2``: picamera2 0.3.38's behaviour on a Pi 4 or Pi 5, for what a capture loop uses.

Line numbers are picamera2 0.3.38's ``picamera2/picamera2.py`` (P2) unless named; libcamera is the
Raspberry Pi fork at 26bfadc (LC). What is modelled, and where it comes from:

- construction (P2 L315-382): the number indexes ``global_camera_info()``, which is sorted non-USB first
  and by Id in reverse (L296-313); a number past the end raises ``RuntimeError('No camera number N found
  ...')`` (L345-348), a string a ``TypeError``; ``tuning`` is recorded (L315-338);
- ``create_video_configuration`` (L902-956): main defaults to XBGR8888 1280x720 preserve_ar, lores to YUV420
  at main's size with ``preserve_ar`` False (L924-928), sizes rounded down to even; ``raw={}`` adds a raw
  stream at the sensor format and main's size, only ``raw=None`` leaves it out (L929-931); the colour space
  is SMPTE170M below 1280x720 and Rec709 from there (L932-937); controls start from a fixed 33333 us frame
  duration (L938-942); an unknown stream key is a ``ValueError`` (L771-780);
- ``configure`` (L1180-1305): refused while started; streams checked (``check_camera_config``, L986-1014:
  lores no larger than main, YUV on a Pi 4); the sensor mode scored as picamera2 does (L1065-1103) unless
  ``sensor`` names it; libcamera's answer written back into the caller's stream dicts (size, stride,
  framesize, format; transform, colour space, sensor: L1151-1178), sizes and strides as the platform makes
  them (``sensors.py``), the raw stream at the mode's size (``vc4.cpp`` L492-498, ``pisp.cpp`` L1218-1224)
  and Bayer order for the flips (``pipeline_base.cpp`` L242-261: requested orientation against the mounting
  rotation); unadvertised controls raise ``RuntimeError("Control X is not advertised by libcamera")``
  (``controls.py`` L32-33);
- ``start`` (L1315-1373): a non-zero ExposureTime / AnalogueGain sets its Mode control to manual (L1328-1337);
  ``AeEnable`` in the start controls only works from libcamera 0.5.2 (LC ``camera.cpp`` L1412-1416);
- ``capture_request(wait=s)`` (L1529-1558, L1876-1886): a job on ``_job_list``; when no frame comes in time it
  raises an empty ``TimeoutError`` and **the job stays queued**; a later frame is taken by that stale job and
  its request is never released (counted in ``leaked``); frames arrive one frame duration apart (the
  duration as the IPA sets it from FrameDurationLimits and the exposure, ``ipa_base.cpp`` L1766-1796: the
  exposure cannot exceed the longest frame duration);
- ``stop`` (L1415-1426) queues ``stop_`` behind any stale job: on a camera that delivers nothing it blocks for
  ever; ``cancel_all_and_flush`` (L1375-1387) cancels the jobs so that it does not; ``close`` (L725-755)
  stops the preview loop first and then the camera directly, so it never waits on the job list;
- a frontend timeout (LC ``pipeline_base.cpp`` L1365-1417: pending requests cancelled, dropped by picamera2,
  L138-142) leaves the camera delivering nothing until it is stopped and started again; an unplugged camera
  is gone from ``global_camera_info`` and its ``release`` fails to queue;
- metadata: SensorTimestamp (ns), ExposureTime, AnalogueGain, FrameDuration, ColourGains, and
  SensorTemperature where the sensor's embedded data has it (``cam_helper_imx708.cpp`` L251).
"""

from __future__ import annotations

import threading
import time

from tests.edge.sources.fake_picamera2.libcamera import ColorSpace, Transform
from tests.edge.sources.fake_picamera2.request import FakeRequest
from tests.edge.sources.fake_picamera2.sensors import (IMX708, Mode, Platform, Sensor, adjust_output, flipped,
                                                       raw_format, stride)

STREAM_KEYS = ("format", "size", "stride", "preserve_ar")
YUV = {"NV21", "NV12", "YUV420", "YVU420", "YVYU", "YUYV", "UYVY", "VYUY"}
RGB = {"BGR888", "RGB888", "XBGR8888", "XRGB8888", "RGB161616", "BGR161616"}
TUNING_FILES = {"imx708.json", "imx708_noir.json", "imx708_wide.json", "imx708_wide_noir.json", "imx477.json",
                "imx477_noir.json", "ov9281_mono.json", "imx477_scientific.json"}


class _Job:
    def __init__(self) -> None:
        self.cancelled = False


class FakePicamera2:
    platform = Platform.VC4  # picamera2 decides it once, at import (platform.py)
    attached: tuple[Sensor, ...] = (IMX708,)
    libcamera_version = (0, 5, 2)
    timeout_after: int | None = None  # the next camera opened has a frontend timeout after this many frames
    instances: list = []

    def __init__(self, camera_num: int = 0, verbose_console=None, tuning=None, allocator=None) -> None:
        cameras = self.global_camera_info()
        if camera_num >= len(cameras):  # a str here raises TypeError, as in picamera2
            raise RuntimeError(f'No camera number {camera_num} found - use "rpicam-hello --list-cameras" to '
                               f"check connected cameras")
        wanted = cameras[camera_num]["Id"]
        self.sensor = next(s for s in self.attached if s.id == wanted)
        self.tuning = tuning
        self.camera_config: dict = {}
        self.controls: dict = {}
        self.crops: dict = {}
        self.raw_order = ""
        self.mode: Mode | None = None
        self.started = False
        self.is_open = True
        self._job_list: list[_Job] = []
        self.outstanding = self.released = self.leaked = self.cancelled = 0
        self.sequence = 0
        self.dead = False  # a frontend timeout: nothing until stopped and started again
        self.device_gone = False
        self.requeue_fails = False  # the buffers cannot be queued again (the device is going away)
        self.skip_next = 0  # frames the next delivery skips (dropped inside picamera2's queue)
        self.stop_blocked = threading.Event()  # set while stop() waits behind a stale job
        self.warnings: list[str] = []
        self.timeout_after, FakePicamera2.timeout_after = FakePicamera2.timeout_after, None
        FakePicamera2.instances.append(self)

    # -- the camera system ------------------------------------------------------------------------------------

    @staticmethod
    def global_camera_info() -> list[dict]:
        cameras = [{"Model": s.model, "Location": s.location, "Rotation": s.rotation, "Id": s.id, "Num": n}
                   for n, s in enumerate(FakePicamera2.attached)]
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
        order = self.sensor.native_order  # the modes list the native, unflipped order (LC sensor L209-226)
        return [{"format": f"{'R' if self.sensor.mono else 'S' + order}{m.bit_depth}_CSI2P",
                 "unpacked": f"{'R' if self.sensor.mono else 'S' + order}{m.bit_depth}", "bit_depth": m.bit_depth,
                 "size": m.size, "fps": m.fps, "crop_limits": m.crop,
                 "exposure_limits": (26, int(1e6 / m.fps * 50), 20000)} for m in self.sensor.modes]

    @property
    def sensor_format(self) -> str:
        best = max(self.sensor.modes, key=lambda m: (m.size[0] * m.size[1], m.bit_depth))  # L632-646
        order = "R" if self.sensor.mono else "S" + self.sensor.native_order
        return f"{order}{best.bit_depth}_CSI2P"

    @property
    def camera_controls(self) -> dict:
        return {name: (None, None, None) for name in self.sensor.advertised}

    # -- configurations ---------------------------------------------------------------------------------------

    @staticmethod
    def _stream(defaults: dict | None, updates: dict | None) -> dict | None:
        if updates is None:
            return None
        stream = dict(defaults)
        for key, value in updates.items():
            if key not in STREAM_KEYS:
                raise ValueError(f"Bad key {key!r}: valid stream configuration keys are {STREAM_KEYS}")
            stream[key] = value
        width, height = stream["size"]
        stream["size"] = (width - width % 2, height - height % 2)  # align_stream(optimal=False)
        return stream

    def create_video_configuration(self, main={}, lores=None, raw={}, transform=Transform(),  # noqa: B006, B008
                                   colour_space=None, buffer_count=6, controls={}, display="main",  # noqa: B006
                                   encode="main", queue=True, sensor={}, use_case="video") -> dict:  # noqa: B006
        if not self.is_open:
            raise RuntimeError("Camera not opened")
        main = self._stream({"format": "XBGR8888", "size": (1280, 720), "preserve_ar": True}, main)
        lores = self._stream({"format": "YUV420", "size": main["size"], "preserve_ar": False}, lores)
        raw = self._stream({"format": self.sensor_format, "size": main["size"]}, raw)
        if colour_space is None:
            small = main["size"][0] < 1280 or main["size"][1] < 720
            colour_space = ColorSpace.Smpte170m() if small else ColorSpace.Rec709()
        controls = {"NoiseReductionMode": 1, "FrameDurationLimits": (33333, 33333)} | dict(controls)
        return {"use_case": use_case, "transform": transform, "colour_space": colour_space,
                "buffer_count": buffer_count, "queue": queue, "main": main, "lores": lores, "raw": raw,
                "controls": controls, "sensor": sensor, "display": display, "encode": encode}

    def _check(self, config: dict) -> None:
        for name in ("main", "lores", "raw"):
            stream = config.get(name)
            if stream is None:
                continue
            fmt, size = stream["format"], stream["size"]
            if name == "raw" and not fmt[:1] in ("S", "R") and "PISP" not in fmt:
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
            if self.platform is Platform.VC4 and lores["format"] not in YUV:
                raise RuntimeError("lores stream must be YUV")

    def _choose_mode(self, config: dict) -> Mode:
        sensor = config.get("sensor") or {}
        raw = config.get("raw")
        bits = sensor.get("bit_depth") or (int("".join(c for c in raw["format"].split("_")[0] if c.isdigit()) or 0)
                                          if raw else 0) or max(m.bit_depth for m in self.sensor.modes)
        size = sensor.get("output_size") or (raw["size"] if raw else config["main"]["size"])

        def score(mode: Mode) -> float:  # P2 L1084-1098, as libcamera scores modes
            def part(desired, actual):
                gap = desired - actual
                return -gap / 4 if gap < 0 else gap * 2

            return (part(size[0], mode.size[0]) + part(size[1], mode.size[1])
                    + 1500 * part(size[0] / size[1], mode.size[0] / mode.size[1])
                    + 500 * abs(bits - mode.bit_depth))

        mode = min(self.sensor.modes, key=score)
        if sensor.get("output_size") and tuple(sensor["output_size"]) != mode.size:
            raise RuntimeError(f"Invalid camera configuration: no sensor mode {sensor['output_size']}")
        return mode

    @staticmethod
    def _crop(mode: Mode, aspect: float) -> tuple[int, int, int, int]:
        x, y, w, h = mode.crop
        if w / h > aspect:
            keep = round(h * aspect)
            return x + (w - keep) // 2, y, keep, h
        keep = round(w / aspect)
        return x, y + (h - keep) // 2, w, keep

    def configure(self, camera_config=None) -> None:
        if self.started:
            raise RuntimeError("Camera must be stopped before configuring")
        if not isinstance(camera_config, dict):
            raise TypeError("Invalid type for `camera_config` given")
        config = camera_config.copy()  # shallow: the stream dicts are the caller's, and are written back
        self._check(config)
        mode = self._choose_mode(config)
        transform = config["transform"]
        flip = self.sensor.rotation == 180
        self.raw_order = "" if self.sensor.mono else flipped(self.sensor.native_order, bool(transform.hflip) != flip,
                                                             bool(transform.vflip) != flip)
        outputs = [n for n in ("main", "lores") if config.get(n)]
        for index, name in enumerate(outputs):
            stream = config[name]
            stream["size"] = adjust_output(self.platform, stream["size"], mode, index, len(outputs))
            stream["stride"] = stride(self.platform, stream["format"], stream["size"][0])
            rows = stream["size"][1] * (3 if stream["format"] in YUV else 2) // 2
            stream["framesize"] = stream["stride"] * rows
        main = config["main"]
        self.crops = {"main": self._crop(mode, main["size"][0] / main["size"][1]) if main.get("preserve_ar", True)
                      else mode.crop}
        if config.get("lores"):
            lores = config["lores"]
            own = self.platform is Platform.PISP and lores.get("preserve_ar")
            self.crops["lores"] = self._crop(mode, lores["size"][0] / lores["size"][1]) if own else self.crops["main"]
        if config.get("raw"):
            raw = config["raw"]
            raw["format"], raw["stride"] = raw_format(self.platform, self.sensor, mode, self.raw_order, raw["format"])
            raw["size"] = mode.size
            raw["framesize"] = raw["stride"] * mode.size[1]
            self.crops["raw"] = mode.crop
        config["sensor"] = {"bit_depth": mode.bit_depth, "output_size": mode.size}
        self.mode = mode
        self.controls = {}
        self.set_controls(config.get("controls", {}))
        self.camera_config = config

    def camera_configuration(self) -> dict:
        return self.camera_config

    def set_controls(self, controls) -> None:
        for name, value in dict(controls).items():
            if name == "FrameRate":  # a picamera2 virtual control (controls.py L8-31)
                name, value = "FrameDurationLimits", (int(1e6 / value), int(1e6 / value))
            if name not in self.sensor.advertised:
                raise RuntimeError(f"Control {name} is not advertised by libcamera")
            self.controls[name] = value
            if name in ("ExposureTime", "AnalogueGain"):  # request.py L125-143: the Mode follows the value
                self.controls[name + "Mode"] = 0 if not value else 1
            if name == "AeEnable" and self.started and self.libcamera_version >= (0, 5, 0):
                self.controls["ExposureTimeMode"] = self.controls["AnalogueGainMode"] = 0 if value else 1

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
        self.started = True
        self.dead = False
        self.clock_ns = 0

    def _exposure_us(self) -> tuple[float, float, float]:
        """(frame duration, exposure, analogue gain) as the IPA would run them now."""
        limits = self.controls.get("FrameDurationLimits", (33333, 33333))
        shortest = max(limits[0], 1e6 / self.mode.fps)
        longest = max(limits[1], shortest)
        manual = self.controls.get("ExposureTimeMode") == 1
        exposure = min(self.controls["ExposureTime"] if manual else 20000, longest)
        gain = self.controls["AnalogueGain"] if self.controls.get("AnalogueGainMode") == 1 else 2.0
        return min(max(exposure, shortest), longest), exposure, gain

    def capture_request(self, wait=None, signal_function=None, flush=None) -> FakeRequest:
        job = _Job()
        self._job_list.append(job)  # dispatch_functions L1547-1550
        if self.timeout_after is not None and self.sequence >= self.timeout_after:
            self.frontend_timeout()
        duration, exposure, gain = self._exposure_us() if self.started else (0, 0, 0)
        arrives = not self.dead and self.started and not self.device_gone
        if not arrives or (wait is not None and wait < duration / 1e6):
            if not arrives:
                time.sleep(min(wait or 0.05, 0.05))
            raise TimeoutError()  # Future.result(timeout): empty message; the job stays on _job_list
        while self._job_list and self._job_list[0] is not job:  # stale jobs take the frames first
            self._job_list.pop(0)
            self.leaked += 1
            self._deliver(duration, exposure, gain)
        self._job_list.remove(job)
        return self._deliver(duration, exposure, gain)

    def _deliver(self, duration: float, exposure: float, gain: float) -> FakeRequest:
        self.clock_ns += int(duration * 1000) * (1 + self.skip_next)
        self.skip_next = 0
        gains = self.controls.get("ColourGains") or (1.8, 1.5)
        metadata = {"ExposureTime": int(exposure), "AnalogueGain": float(gain), "FrameDuration": int(duration),
                    "DigitalGain": 1.0, "Lux": 400.0, "ColourGains": tuple(gains)}
        if self.sensor.temperature is not None:
            metadata["SensorTemperature"] = self.sensor.temperature
        if self.sensor.lens:
            metadata["LensPosition"] = float(self.controls.get("LensPosition", 1.0))
        request = FakeRequest(self, self.sequence, 1_000_000_000 + self.clock_ns, metadata)
        self.sequence += 1
        return request

    def cancel_all_and_flush(self) -> None:
        for job in self._job_list:
            job.cancelled = True
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
        self._job_list_before_close = len(self._job_list)
        self.started = False  # the preview loop stops first, then stop_ runs directly (L731-736)
        self.is_open = False
        self.camera_config = {}

    # -- failures a test injects --------------------------------------------------------------------------------

    def frontend_timeout(self) -> None:
        """libcamera's 'Camera frontend has timed out!': nothing arrives until the camera is stopped and started."""
        self.dead = True

    @classmethod
    def unplug(cls, sensor: Sensor) -> None:
        cls.attached = tuple(s for s in cls.attached if s is not sensor)
        for camera in cls.instances:
            if camera.sensor is sensor:
                camera.device_gone = True
