"""The Raspberry Pi camera through picamera2: the only module that imports picamera2.

picamera2 ships with Raspberry Pi OS (``python3-picamera2``: 0.3.38 on bookworm, 0.3.34 on trixie) and cannot be
installed elsewhere (it needs libcamera), so it is imported when a camera is opened (:func:`load_backend`, the one
import), and the tests pass a behavioural fake as the backend (``tests/edge/sources/fake_picamera2``). What this
source does, checked against picamera2's source and libcamera's Raspberry Pi pipeline handlers and IPA
(docs/raspberry-pi.md has the table with the source lines):

- **import**: picamera2 imports simplejpeg at load time; Raspberry Pi OS's build of it is compiled against
  numpy 1.x, so beside the numpy 2.x a venv installs the import raises ``ValueError: numpy.dtype size
  changed``. Every import failure becomes one line that says what to do (``keycam[pi]`` installs simplejpeg
  into the venv).
- **opening** (``picamera_open``): the tuning resolved to a path and set before the camera manager starts (one
  tuning a process); a camera another program holds is said as such; errors that retrying cannot mend are
  marked ``permanent``; a mono sensor with a Bayer spec is refused here, not per frame.
- **streams**: the model's stream is ``main`` in ``RGB888`` (B,G,R in memory), or ``lores`` beside a larger
  ``main_size`` (``YUV420`` on a Pi 4, ``RGB888`` on a Pi 5), or, for a raw readout spec, the unpacked raw
  stream. Sizes are requested at the model's aspect ratio and then **read back** from the configuration the
  camera reports, and decoded at that size and stride; the readout stage then fits the frame to the model.
- **raw**: at the sensor mode's size, depth and Bayer order (``picamera_formats``: 8-bit raw one byte a photosite,
  a Pi 5's 16-bit words); ``SensorBlackLevels`` is checked against the spec's black level, and a depth that
  differs from the spec's is said once. ``scaler_crop`` does not crop raw (the ISP crops its outputs only), so a
  raw spec refuses it.
- **controls** (``picamera_controls``): values, not ``AeEnable``; frame duration limits that fit the exposure;
  focus (``auto`` triggers a scan, ``default`` is continuous where there is autofocus); ``scaler_crop`` also as
  ``ScalerCrops`` where a Pi 5 advertises it (it overrides ``ScalerCrop``); values locked by ``lock_after_frames``
  sent again on every open.
- **waits**: the first frame waits for the start-up frames libcamera hides, later ones about five frame durations
  (``timeout_s`` overrides those). A frame is taken through a job (``capture_request(wait=False)`` and
  ``wait(job, timeout)``); after a timeout the jobs are cancelled (``cancel_all_and_flush``) so that no later
  frame is handed to an abandoned one, and a frame that completed the job in between is released. ``close()``
  stops the camera directly (it never queues behind a job); the loop then reopens with backoff.
- per frame: ``make_array`` and ``get_metadata`` before ``release()``, which always runs and never hides the
  error that came first; the frame's time is ``FrameWallClock`` (CLOCK_REALTIME, ns) where libcamera reports it,
  else the time it was taken, and its monotonic time ``SensorTimestamp`` (CLOCK_BOOTTIME, ns); drops inside
  picamera2's queue are counted from timestamp gaps; temperature, black level and focus state go to ``health``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from types import SimpleNamespace
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edge.errors import CameraError, ConfigError
from edge.frame import Frame
from edge.sensor import fit_frame, fit_mosaic
from edge.sources import picamera_controls as controls_for
from edge.sources import picamera_open as opening
from edge.sources.base import Source, SourceConfig
from edge.sources.picamera_controls import choose_mode, stream_size
from edge.sources.picamera_formats import black_level_refusal, parse_raw_format, raw_words, rephase, rescale_note, \
    to_spec_codes, yuv420_to_bgr
from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec

log = logging.getLogger(__name__)
TIMEOUTS = (TimeoutError, concurrent.futures.TimeoutError)  # one class on Python >= 3.11
INSTALL = ("on Raspberry Pi OS: sudo apt install python3-picamera2, a venv made with --system-site-packages, and "
           "pip install -e '.[pi]' in it")


def load_backend() -> SimpleNamespace:
    """picamera2's ``Picamera2`` and libcamera's ``Transform``: the one import of picamera2 in keycam."""
    try:
        from libcamera import Transform
        from picamera2 import Picamera2
    except ModuleNotFoundError as error:
        raise opening.permanent(f"picamera2 is not available (no module {error.name!r}); {INSTALL}") from None
    except ValueError as error:  # simplejpeg built for numpy 1.x meeting the venv's numpy 2.x
        raise opening.permanent(f"picamera2 cannot be imported ({str(error).splitlines()[0]}): Raspberry Pi OS's "
                                f"simplejpeg was built for another numpy; install keycam's own into the venv: "
                                f".venv/bin/pip install -e '.[pi]' (or pip install --force-reinstall simplejpeg)") \
            from None
    except (ImportError, AttributeError, RuntimeError, OSError) as error:
        raise opening.permanent(f"picamera2 cannot be imported ({type(error).__name__}: {error}); update "
                                f"python3-picamera2 and python3-libcamera together (sudo apt full-upgrade)") from None
    return SimpleNamespace(Picamera2=Picamera2, Transform=Transform)


class PicameraConfig(SourceConfig):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS only)."""

    kind: Literal["picamera"] = "picamera"
    camera: int | str = Field(default=0, description="camera number (as rpicam-hello --list-cameras numbers "
                                                     "them), or its Id or model (e.g. 'imx708')")
    tuning: str = Field(default="", description="libcamera tuning file: a name (e.g. 'imx708_noir.json', "
                                                "'ov9281_mono.json') or a path (empty: the sensor's default); "
                                                "one tuning a process")
    frame_rate: float | None = Field(default=None, gt=0, le=240, description="frames per second (empty: 30)")
    exposure_us: int | None = Field(default=None, gt=0, le=200_000_000, description="fixed exposure, "
                                                                                    "microseconds (empty: automatic)")
    analogue_gain: float | None = Field(default=None, ge=1.0, le=64.0, description="fixed analogue gain "
                                                                                   "(empty: automatic)")
    colour_gains: tuple[float, float] | None = Field(default=None, description="fixed white balance: red and "
                                                                               "blue gains, each 0 to 32 (empty: auto)")
    lock_after_frames: int = Field(default=0, ge=0, le=100_000, description="after N frames, freeze exposure, "
                                                                            "gain and colour gains at their values, "
                                                                            "kept across reopens (stable model "
                                                                            "inputs; 0: never)")
    af_mode: Literal["default", "manual", "auto", "continuous"] = Field(
        default="default", description="autofocus (Camera Module 3): manual (at lens_position), auto (one scan "
                                       "at start), continuous; default: continuous where the camera can focus, "
                                       "manual with lens_position")
    lens_position: float | None = Field(default=None, ge=0, le=32, description="manual focus in dioptres "
                                                                               "(1/distance in metres; 0: infinity)")
    hflip: bool = Field(default=False, description="mirror the picture left to right")
    vflip: bool = Field(default=False, description="turn the picture upside down")
    sensor_mode: str = Field(default="auto", pattern=r"^(auto|\d+x\d+(:\d+)?)$",
                             description="sensor mode 'WxH' or 'WxH:bits' (auto: the full field of view)")
    scaler_crop: tuple[int, int, int, int] | None = Field(default=None, description="(x, y, width, height) of the "
                                                                                    "sensor's pixels to use (not "
                                                                                    "with a raw readout spec)")
    main_size: tuple[int, int] | None = Field(default=None, description="(width, height) of a larger main stream; "
                                                                        "the model then reads the lores stream")
    buffer_count: int = Field(default=4, ge=2, le=16, description="frame buffers per stream")
    timeout_s: float | None = Field(default=None, gt=0, le=3600, description="how long to wait for a frame once "
                                                                             "the camera runs, seconds (empty: 5 "
                                                                             "frame durations, at least 1 s, + 1 s; "
                                                                             "the first frame also waits for the "
                                                                             "start-up frames)")

    @model_validator(mode="after")
    def _consistent(self) -> PicameraConfig:
        if self.frame_rate and self.exposure_us and self.exposure_us > 1e6 / self.frame_rate:
            raise ValueError(f"source.exposure_us = {self.exposure_us} is longer than a frame at source.frame_rate "
                             f"= {self.frame_rate} ({1e6 / self.frame_rate:.0f} us); lower one of them")
        if self.colour_gains and not all(0 < g <= 32 for g in self.colour_gains):
            raise ValueError(f"source.colour_gains = {list(self.colour_gains)}: each gain must be in (0, 32]")
        if self.lens_position is not None and self.af_mode not in ("manual", "default"):
            raise ValueError("source.lens_position sets the focus by hand: use it with af_mode = \"manual\"")
        if isinstance(self.camera, int) and not 0 <= self.camera <= 16:
            raise ValueError(f"source.camera = {self.camera}: camera numbers are 0 to 16")
        return self

    def build(self, sensor) -> Source:
        return PicameraSource(sensor.height, sensor.width, sensor.spec, self)

    def describe(self) -> str:
        return f"picamera2 camera {self.camera}"


class PicameraSource(Source):
    live = True
    channel_order = "bgr"

    def __init__(self, height: int, width: int, spec: ReadoutSpec = DEFAULT_SPEC,
                 settings: PicameraConfig | None = None, *, backend: SimpleNamespace | None = None) -> None:
        super().__init__()
        self.height, self.width, self.spec = height, width, spec
        self.settings = settings or PicameraConfig()
        self._backend = backend
        self._camera = self._job = None
        self.raw = spec.is_bayer or (spec.channels == 1 and spec.input_bits > 8)
        if self.raw:
            self.channel_order = "raw"
            if self.settings.scaler_crop:
                raise ConfigError("source.scaler_crop has no effect on a raw readout spec: the ISP crops its outputs, "
                                  "and raw is the sensor mode's whole output; remove it, or pick a cropped "
                                  "source.sensor_mode")
        self.name = f"camera {self.settings.camera}"
        self.dropped = self.timeouts = self.frames = self.late_frames = 0
        self.temperature: float | None = None
        self.af_state: int | None = None
        self.black_level: float | None = None  # the sensor's, in the spec's input codes (raw only)
        self.notes: list[str] = []
        self._locked: dict = {}  # lock_after_frames' values, sent again on every open
        self._last_stamp: int | None = None
        self._stream: dict = {}
        self._checked_black = self._first = False
        self.timeout_s = self.settings.timeout_s or controls_for.later_wait_s(self._controls(False))
        self.first_timeout_s = self.timeout_s

    def _controls(self, autofocus: bool) -> dict:
        return controls_for.start_controls(self.settings, self._locked, autofocus)

    # -- opening -----------------------------------------------------------------------------------------------

    def _construct(self, backend):
        """``Picamera2(index, tuning=path)``, the tuning set before the camera manager starts."""
        settings = self.settings
        tuning = opening.find_tuning(settings.tuning, opening.platform_dir(backend)) if settings.tuning else None
        opening.set_tuning(tuning)
        index = opening.camera_index(settings.camera, backend.Picamera2.global_camera_info())
        try:
            return backend.Picamera2(index, tuning=tuning)
        except (RuntimeError, IndexError, TypeError) as error:
            raise opening.open_error(self.name, error) from None

    def _plan(self, camera, backend) -> dict:
        """The video configuration to ask for: streams, sensor mode, controls."""
        settings = self.settings
        pi5 = getattr(getattr(type(camera), "platform", None), "name", "VC4") == "PISP"
        minimum = 2 if pi5 else 64
        if self.raw:
            cells = 1 if self.spec.is_bayer else 2
            need = (self.width * 2 // cells, self.height * 2 // cells)  # photosites the mosaic must hold
            main, lores = {"format": "YUV420", "size": stream_size(64, 64, minimum)}, None
        elif settings.main_size:
            main_w, main_h = need = settings.main_size
            main = {"format": "RGB888", "size": (main_w - main_w % 2, main_h - main_h % 2)}
            lores = {"format": "RGB888" if pi5 else "YUV420",
                     "size": controls_for.lores_size(need, self.width, self.height, minimum)}
        else:
            need = stream_size(self.width, self.height, minimum)
            main, lores = {"format": "RGB888", "size": need}, None
        mode = choose_mode(list(camera.sensor_modes), need, settings.frame_rate, settings.sensor_mode)
        raw = {"format": mode["unpacked"], "size": tuple(mode["size"])} if self.raw else None
        start = self._controls("AfMode" in camera.camera_controls)
        self.first_timeout_s = max(controls_for.first_wait_s(start), self.timeout_s)
        return {"main": main, "lores": lores, "raw": raw, "controls": start,
                "sensor": {"output_size": tuple(mode["size"]), "bit_depth": mode["bit_depth"]},
                "transform": backend.Transform(hflip=int(settings.hflip), vflip=int(settings.vflip)),
                "buffer_count": settings.buffer_count}

    def _configure(self, camera, backend) -> None:
        if self.spec.is_bayer and camera.camera_properties.get("ColorFilterArrangement") == 5:  # MONO (P2 L1315)
            raise opening.permanent(f"{self.name} is a monochrome sensor; compile the model for a 1-channel raw "
                                    f"spec (raw10, raw12)")
        plan = self._plan(camera, backend)
        camera.configure(camera.create_video_configuration(**plan))
        if self.settings.scaler_crop and "ScalerCrops" in camera.camera_controls:  # a Pi 5 with two outputs
            crop = tuple(self.settings.scaler_crop)  # rpi::ScalerCrops wins over ScalerCrop (pipeline_base L1313)
            camera.set_controls({"ScalerCrops": [crop, crop]})
        actual = camera.camera_configuration()
        name = "raw" if self.raw else ("lores" if plan["lores"] else "main")
        bits = (actual.get("sensor") or {}).get("bit_depth", 16)
        self._stream = dict(actual[name], name=name, colour_space=actual.get("colour_space"), bit_depth=bits)
        if self.raw and (note := rescale_note(bits, self.spec.input_bits)):
            log.warning("%s: %s", self.name, note)
            self.notes = [note]

    def _open(self) -> None:
        backend = self._backend or load_backend()
        camera = self._construct(backend)
        try:
            self._configure(camera, backend)
            camera.start()
        except (RuntimeError, ValueError, TypeError, KeyError) as error:
            camera.close()
            raise opening.permanent(f"{self.name} refused the configuration: {error}") from None
        except CameraError:
            camera.close()
            raise
        self._camera, self._last_stamp, self._first = camera, None, True

    # -- reading -----------------------------------------------------------------------------------------------

    def _convert(self, request) -> np.ndarray:
        stream = self._stream
        width, height = stream["size"]
        array = request.make_array(stream["name"])
        if self.raw:
            return self._raw(array, width, height)
        if stream["format"] in ("YUV420", "YVU420"):
            space = stream["colour_space"]
            encoding = getattr(getattr(space, "ycbcrEncoding", None), "name", "Rec601")
            full = getattr(getattr(space, "range", None), "name", "Limited") == "Full"
            return yuv420_to_bgr(array, width, height, encoding, full, v_first=stream["format"] == "YVU420")
        return array[:, :, ::-1] if stream["format"] == "BGR888" else array  # RGB888 is B,G,R in memory

    def _raw(self, array: np.ndarray, width: int, height: int) -> np.ndarray:
        order, bits, msb = parse_raw_format(self._stream["format"], self._stream["bit_depth"])
        words = raw_words(array, width, height, bits, msb)
        bayer = self.spec.is_bayer
        want = self.spec.cfa if bayer else "RGGB"
        mosaic = rephase(words, order, want) if order else words
        codes = to_spec_codes(mosaic, self.spec.input_bits, self.spec.is_msb)
        if bayer:
            return codes[:, :, np.newaxis]  # (h, w) -> (h, w, 1): the readout stage fits the mosaic
        if order:  # a 1-channel raw spec: photosites binned per colour to the model's size, the mosaic kept
            return fit_mosaic(codes[:, :, np.newaxis], want, self.height // 2, self.width // 2)
        return fit_frame(codes[:, :, np.newaxis], self.height, self.width)

    def _take(self, camera):
        """The next request, through a job; after a timeout no job is left to take a later frame."""
        wait = self.first_timeout_s if self._first else self.timeout_s
        job = camera.capture_request(wait=False)
        try:
            return camera.wait(job, timeout=wait)
        except TIMEOUTS:
            self.timeouts += 1
            camera.cancel_all_and_flush()  # no later frame goes to the abandoned job
            self._release_late(job)
            raise CameraError(f"{self.name} delivered no frame in {wait:g} s (camera frontend timeout or a loose "
                              f"cable)") from None
        except RuntimeError as error:
            camera.cancel_all_and_flush()
            raise CameraError(f"{self.name} failed: {error}") from None

    def _release_late(self, job) -> None:
        """A frame that completed ``job`` between its timeout and the cancel (picamera2 L1478-1484, L1512-1513)."""
        try:
            request = job.get_result(timeout=1.0)
        except Exception:  # noqa: BLE001 - cancelled (no frame came), or the job failed: nothing to release
            return
        self.late_frames += 1
        try:
            request.release()
        except RuntimeError as error:
            log.warning("%s: releasing a late frame failed: %s", self.name, error)

    def _read(self) -> Frame | None:
        camera = self._camera
        if camera is None:
            return None
        request = self._take(camera)
        taken_ns = time.time_ns()
        failure: BaseException | None = None
        try:
            image = self._convert(request)
            metadata = request.get_metadata()
        except BaseException as error:  # noqa: BLE001 - released below, then raised
            failure = error
        try:
            request.release()
        except RuntimeError as error:
            if failure is None:
                raise CameraError(f"{self.name} failed to take its buffer back: {error}") from None
            log.warning("%s: releasing a request failed too: %s", self.name, error)
        if failure is not None:
            raise failure
        self._first = False
        monotonic_ns = self._account(metadata)
        wall_ns = int(metadata.get("FrameWallClock") or taken_ns)
        return self._frame(image, wall_ns, self.name, monotonic_ns=monotonic_ns)

    def _account(self, metadata: dict) -> int:
        """The frame's SensorTimestamp; counts drops inside picamera2's queue, reads temperature, focus and black
        level, and locks."""
        stamp = int(metadata.get("SensorTimestamp", 0))
        duration_ns = int(metadata.get("FrameDuration", 0)) * 1000
        if self._last_stamp is not None and duration_ns > 0 and stamp > self._last_stamp:
            self.dropped += max(0, round((stamp - self._last_stamp) / duration_ns) - 1)
        self._last_stamp = stamp
        if "SensorTemperature" in metadata:
            self.temperature = float(metadata["SensorTemperature"])
        self._focus(metadata.get("AfState"))
        if self.raw and metadata.get("SensorBlackLevels"):
            self._black(metadata["SensorBlackLevels"])
        self.frames += 1
        if self.settings.lock_after_frames and not self._locked and self.frames >= self.settings.lock_after_frames:
            self._locked = {name: metadata[name] for name in controls_for.LOCKED if name in metadata}
            self._camera.set_controls(self._locked)
            log.info("%s: exposure, gain and colour gains locked at %s", self.name, self._locked)
        return stamp

    def _focus(self, state) -> None:
        if state is not None and state != self.af_state and state in (2, 3):
            log.info("%s: autofocus %s", self.name, controls_for.AF_STATES[state])
        self.af_state = state if state is None else int(state)

    def _black(self, levels) -> None:
        self.black_level = sum(int(v) for v in levels) / len(levels) / (1 << (16 - self.spec.input_bits))
        if not self._checked_black:
            self._checked_black = True
            refusal = black_level_refusal(levels, self.spec.black_level, self.spec.input_bits)
            if refusal:  # the model does not fit this camera: no reopen mends that
                raise ConfigError(f"{self.name}: {refusal}")

    def health(self) -> dict[str, float]:
        values = {"camera_dropped_frames": float(self.dropped), "camera_timeouts": float(self.timeouts),
                  "camera_late_frames": float(self.late_frames)}
        for name, value in (("sensor_temperature_celsius", self.temperature), ("camera_af_state", self.af_state),
                            ("sensor_black_level", self.black_level)):
            if value is not None:
                values[name] = float(value)
        return values

    def summary(self) -> str | None:
        return "; ".join(self.notes) or None

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.cancel_all_and_flush()  # nothing is left queued for a frame that comes while it stops
            finally:
                camera.close()
