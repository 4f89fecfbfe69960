"""The Raspberry Pi camera through picamera2: the only module that imports picamera2.

picamera2 ships with Raspberry Pi OS (``python3-picamera2``) and cannot be installed elsewhere (it
needs libcamera), so it is imported when a camera is opened (:func:`load_backend`, the one import), and
the tests pass a behavioural fake as the backend (``tests/edge/sources/fake_picamera2``). What this
source does, checked against picamera2 0.3.38's source and libcamera's Raspberry Pi pipeline handlers
(docs/raspberry-pi.md has the table with the source lines):

- **import**: picamera2 imports simplejpeg at load time; Raspberry Pi OS's build of it is compiled against
  numpy 1.x, so beside the numpy 2.x a venv installs the import raises ``ValueError: numpy.dtype size
  changed``. Every import failure becomes one line that says what to do (``keycam[pi]`` installs simplejpeg
  into the venv).
- **streams**: the model's stream is ``main`` in ``RGB888`` (B,G,R in memory), or ``lores`` beside a larger
  ``main_size`` (``YUV420`` on a Pi 4, ``RGB888`` on a Pi 5), or, for a raw readout spec, the unpacked raw
  stream. Sizes are requested at the model's aspect ratio and then **read back** from the configuration the
  camera reports (the Pi 4 ISP raises any dimension below 64 to 64, the Pi 5 has its own minimums, strides
  are padded), and decoded at that size and stride; the readout stage then fits the frame to the model
  (``edge.sensor``). A lores is asked at main's aspect ratio (it shares main's crop, so any other ratio would
  be stretched) and decoded in the colour space picamera2 chose (BT.601 below 1280x720, BT.709 above).
- **raw**: the raw stream comes at the sensor mode's size, depth and Bayer order (which follows the
  camera's mounting and flips); a Pi 5 gives 16-bit words with the code in the top bits. The mosaic is
  moved to the spec's phase, its codes to the spec's depth and alignment (``picamera_formats``).
- **sensor mode**: the full-field-of-view mode with the fewest pixels that covers the stream and the frame
  rate (Camera Module 3 would otherwise pick its 1536x864 centre crop), unless ``sensor_mode`` names one.
- **controls**: ``ExposureTime`` and ``AnalogueGain`` are sent as values (picamera2 sets their Mode controls;
  ``AeEnable`` is not sent: libcamera 0.5.0-0.5.1 ignore it at start and later ones also freeze the gain);
  the frame duration limits are raised to fit a long exposure; colour gains, autofocus, flips and the
  scaler crop as configured; ``lock_after_frames`` freezes exposure, gain and colour gains once settled.
- **timeouts**: ``capture_request(wait=...)`` waits three frame durations (at least 2 s); a timeout leaves
  picamera2's job queued, so it is cancelled (``cancel_all_and_flush``) at once, before the camera is
  closed, or closing would wait for ever behind it; the loop then reopens the camera with backoff.
- per frame: ``make_array`` and ``get_metadata`` before ``release()``, which always runs and never hides the
  error that came first; ``SensorTimestamp`` (ns) is the frame time; drops inside picamera2's queue are
  counted from timestamp gaps, and ``SensorTemperature`` is reported (``health``).
"""

from __future__ import annotations

import concurrent.futures
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from edge.errors import CameraError
from edge.frame import Frame
from edge.sensor import fit_frame, fit_mosaic
from edge.sources.base import Source, SourceConfig
from edge.sources.picamera_formats import parse_raw_format, raw_words, rephase, to_spec_codes, yuv420_to_bgr
from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec

log = logging.getLogger(__name__)
TIMEOUTS = (TimeoutError, concurrent.futures.TimeoutError)  # one class on Python >= 3.11
AF_MODES = {"manual": 0, "auto": 1, "continuous": 2}  # libcamera.controls.AfModeEnum
INSTALL = ("on Raspberry Pi OS: sudo apt install python3-picamera2, a venv made with --system-site-packages, and "
           "pip install -e '.[pi]' in it")


def load_backend() -> SimpleNamespace:
    """picamera2's ``Picamera2`` and libcamera's ``Transform``: the one import of picamera2 in keycam."""
    try:
        from libcamera import Transform
        from picamera2 import Picamera2
    except ModuleNotFoundError as error:
        raise CameraError(f"picamera2 is not available (no module {error.name!r}); {INSTALL}") from None
    except ValueError as error:  # simplejpeg built for numpy 1.x meeting the venv's numpy 2.x
        raise CameraError(f"picamera2 cannot be imported ({str(error).splitlines()[0]}): Raspberry Pi OS's "
                          f"simplejpeg was built for another numpy; install keycam's own into the venv: "
                          f".venv/bin/pip install -e '.[pi]' (or pip install --force-reinstall simplejpeg)") from None
    except (ImportError, AttributeError, RuntimeError, OSError) as error:
        raise CameraError(f"picamera2 cannot be imported ({type(error).__name__}: {error}); update python3-picamera2 "
                          f"and python3-libcamera together (sudo apt full-upgrade)") from None
    return SimpleNamespace(Picamera2=Picamera2, Transform=Transform)


class PicameraConfig(SourceConfig):
    """The Raspberry Pi camera through picamera2 (Raspberry Pi OS only)."""

    kind: Literal["picamera"] = "picamera"
    camera: int | str = Field(default=0, description="camera number (as rpicam-hello --list-cameras numbers "
                                                     "them), or its Id or model (e.g. 'imx708')")
    tuning: str = Field(default="", description="libcamera tuning file: a name (e.g. 'imx708_noir.json', "
                                                "'ov9281_mono.json') or a path (empty: the sensor's default)")
    frame_rate: float | None = Field(default=None, gt=0, le=240, description="frames per second (empty: 30)")
    exposure_us: int | None = Field(default=None, gt=0, le=200_000_000, description="fixed exposure, "
                                                                                    "microseconds (empty: automatic)")
    analogue_gain: float | None = Field(default=None, ge=1.0, le=64.0, description="fixed analogue gain "
                                                                                   "(empty: automatic)")
    colour_gains: tuple[float, float] | None = Field(default=None, description="fixed white balance: red and "
                                                                               "blue gains, each 0 to 32 (empty: auto)")
    lock_after_frames: int = Field(default=0, ge=0, le=100_000, description="after N frames, freeze exposure, "
                                                                            "gain and colour gains at their values "
                                                                            "(stable model inputs; 0: never)")
    af_mode: Literal["default", "manual", "auto", "continuous"] = Field(
        default="default", description="autofocus (Camera Module 3): manual (at lens_position), auto, continuous")
    lens_position: float | None = Field(default=None, ge=0, le=32, description="manual focus in dioptres "
                                                                               "(1/distance in metres; 0: infinity)")
    hflip: bool = Field(default=False, description="mirror the picture left to right")
    vflip: bool = Field(default=False, description="turn the picture upside down")
    sensor_mode: str = Field(default="auto", pattern=r"^(auto|\d+x\d+(:\d+)?)$",
                             description="sensor mode 'WxH' or 'WxH:bits' (auto: the full field of view)")
    scaler_crop: tuple[int, int, int, int] | None = Field(default=None, description="(x, y, width, height) of the "
                                                                                    "sensor's pixels to use")
    main_size: tuple[int, int] | None = Field(default=None, description="(width, height) of a larger main stream; "
                                                                        "the model then reads the lores stream")
    buffer_count: int = Field(default=4, ge=2, le=16, description="frame buffers per stream")
    timeout_s: float | None = Field(default=None, gt=0, le=3600, description="how long to wait for a frame, "
                                                                             "seconds (empty: 3 frame durations, "
                                                                             "at least 2 s)")

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


def _even_up(value: float) -> int:
    value = int(np.ceil(value))
    return value + value % 2


def stream_size(width: int, height: int, minimum: int) -> tuple[int, int]:
    """(w, h) at the model's aspect ratio, both at least ``minimum`` and even (a Pi 4 clamps each side to 64)."""
    scale = max(1.0, minimum / width, minimum / height)
    return _even_up(width * scale), _even_up(height * scale)


def choose_mode(modes: list[dict], need: tuple[int, int], frame_rate: float | None, wanted: str) -> dict:
    """The sensor mode: ``wanted`` ('WxH' or 'WxH:bits'), or the full-field-of-view one with the fewest pixels
    covering ``need`` (w, h) at ``frame_rate``; a cropped mode only when no full one is fast enough."""
    modes = [m for m in modes if "size" in m]
    if not modes:
        raise CameraError("the camera lists no raw sensor modes (not a Raspberry Pi camera?)")
    if wanted != "auto":
        size, _, bits = wanted.partition(":")
        found = [m for m in modes if f"{m['size'][0]}x{m['size'][1]}" == size and (not bits or m["bit_depth"] ==
                                                                                   int(bits))]
        if not found:
            listed = ", ".join(f"{m['size'][0]}x{m['size'][1]}:{m['bit_depth']}" for m in modes)
            raise CameraError(f"source.sensor_mode = {wanted!r} is not one of this camera's modes ({listed})")
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


class PicameraSource(Source):
    live = True
    channel_order = "bgr"

    def __init__(self, height: int, width: int, spec: ReadoutSpec = DEFAULT_SPEC,
                 settings: PicameraConfig | None = None, *, backend: SimpleNamespace | None = None) -> None:
        super().__init__()
        self.height, self.width, self.spec = height, width, spec
        self.settings = settings or PicameraConfig()
        self._backend = backend
        self._camera = None
        self.raw = spec.is_bayer or (spec.channels == 1 and spec.input_bits > 8)
        if self.raw:
            self.channel_order = "raw"
        self.name = f"camera {self.settings.camera}"
        self.timeout_s = self.settings.timeout_s or self._frame_timeout()
        self.dropped = self.timeouts = self.frames = 0
        self.temperature: float | None = None
        self._last_stamp: int | None = None
        self._stream: dict = {}

    def _frame_timeout(self) -> float:
        frame_us = 1e6 / self.settings.frame_rate if self.settings.frame_rate else 33333
        return max(2.0, 3 * max(frame_us, self.settings.exposure_us or 0) / 1e6)

    # -- opening -----------------------------------------------------------------------------------------------

    def _index(self, backend) -> int:
        wanted = self.settings.camera
        cameras = backend.Picamera2.global_camera_info()
        listed = "; ".join(f"{n}: {c.get('Model')} ({c.get('Id')})" for n, c in enumerate(cameras)) or "none"
        if isinstance(wanted, int):
            if wanted >= len(cameras):
                raise CameraError(f"camera {wanted} is not connected (cameras: {listed}); check the cable and "
                                  f"rpicam-hello --list-cameras")
            return wanted
        for key in ("Id", "Model"):
            found = [n for n, c in enumerate(cameras) if c.get(key) == wanted]
            if len(found) == 1:
                return found[0]
            if len(found) > 1:
                raise CameraError(f"source.camera = {wanted!r} names {len(found)} cameras ({listed}); use its Id")
        raise CameraError(f"source.camera = {wanted!r} is no connected camera's Id or model (cameras: {listed})")

    def _tuning(self, backend):
        name = self.settings.tuning
        if not name:
            return None
        if "/" in name:
            path = Path(name).expanduser()
            if not path.is_file():
                raise CameraError(f"source.tuning = {name!r} does not exist; give a tuning file's path or its name")
            return str(path.resolve())
        try:
            return backend.Picamera2.load_tuning_file(name)
        except RuntimeError:
            raise CameraError(f"source.tuning = {name!r} is not among libcamera's tuning files "
                              f"(/usr/share/libcamera/ipa/rpi/vc4 or pisp); give its name or path") from None

    def _plan(self, camera, backend) -> dict:
        """The video configuration to ask for: streams, sensor mode, controls."""
        settings = self.settings
        pi5 = getattr(getattr(type(camera), "platform", None), "name", "VC4") == "PISP"
        minimum = 2 if pi5 else 64
        if self.raw:
            cells = 1 if self.spec.is_bayer else 2
            need = (self.width * 2 // cells, self.height * 2 // cells)  # photosites the mosaic must hold
            main = {"format": "YUV420", "size": stream_size(64, 64, minimum)}
            lores = None
        elif settings.main_size:
            main_w, main_h = settings.main_size
            need = (main_w, main_h)
            scale = max(self.width / main_w, self.height / main_h, minimum / main_w, minimum / main_h)
            lores_size = (min(_even_up(main_w * scale), main_w), min(_even_up(main_h * scale), main_h))
            main = {"format": "RGB888", "size": (main_w - main_w % 2, main_h - main_h % 2)}
            lores = {"format": "RGB888" if pi5 else "YUV420", "size": lores_size}
        else:
            need = stream_size(self.width, self.height, minimum)
            main, lores = {"format": "RGB888", "size": need}, None
        mode = choose_mode(list(camera.sensor_modes), need, settings.frame_rate, settings.sensor_mode)
        raw = {"format": mode["unpacked"], "size": tuple(mode["size"])} if self.raw else None
        return {"main": main, "lores": lores, "raw": raw, "controls": self._controls(),
                "sensor": {"output_size": tuple(mode["size"]), "bit_depth": mode["bit_depth"]},
                "transform": backend.Transform(hflip=int(settings.hflip), vflip=int(settings.vflip)),
                "buffer_count": settings.buffer_count}

    def _controls(self) -> dict:
        settings = self.settings
        controls: dict[str, object] = {}
        if settings.frame_rate:
            frame = int(1e6 / settings.frame_rate)
            controls["FrameDurationLimits"] = (frame, frame)
        elif settings.exposure_us and settings.exposure_us > 33333:  # the default 33333 us would cap the exposure
            controls["FrameDurationLimits"] = (33333, int(settings.exposure_us) + 1000)
        if settings.exposure_us:
            controls["ExposureTime"] = int(settings.exposure_us)
        if settings.analogue_gain:
            controls["AnalogueGain"] = float(settings.analogue_gain)
        if settings.colour_gains:
            controls["ColourGains"] = tuple(float(g) for g in settings.colour_gains)
        if settings.af_mode != "default" or settings.lens_position is not None:
            controls["AfMode"] = AF_MODES["manual" if settings.af_mode == "default" else settings.af_mode]
            if settings.lens_position is not None:
                controls["LensPosition"] = float(settings.lens_position)
        if settings.scaler_crop:
            controls["ScalerCrop"] = tuple(settings.scaler_crop)
        return controls

    def _open(self) -> None:
        backend = self._backend or load_backend()
        index = self._index(backend)
        tuning = self._tuning(backend)
        try:
            camera = backend.Picamera2(index, tuning=tuning)
        except (RuntimeError, IndexError, TypeError) as error:
            raise CameraError(f"{self.name} cannot be opened: {error}") from None
        try:
            plan = self._plan(camera, backend)
            config = camera.create_video_configuration(**plan)
            camera.configure(config)
            actual = camera.camera_configuration()
            name = "raw" if self.raw else ("lores" if plan["lores"] else "main")
            self._stream = dict(actual[name], name=name, colour_space=actual.get("colour_space"),
                                bit_depth=(actual.get("sensor") or {}).get("bit_depth", 16))
            camera.start()
        except (RuntimeError, ValueError, TypeError, KeyError) as error:
            camera.close()
            raise CameraError(f"{self.name} refused the configuration: {error}") from None
        except CameraError:
            camera.close()
            raise
        self._camera, self._last_stamp = camera, None

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
            image = yuv420_to_bgr(array, width, height, encoding, full)
            return image[:, :, [2, 1, 0]] if stream["format"] == "YVU420" else image
        return array[:, :, ::-1] if stream["format"] == "BGR888" else array  # RGB888 is B,G,R in memory

    def _raw(self, array: np.ndarray, width: int, height: int) -> np.ndarray:
        order, bits, msb = parse_raw_format(self._stream["format"], self._stream["bit_depth"])
        words = raw_words(array, width, height, bits, msb)
        bayer = self.spec.is_bayer
        if bayer and not order:
            raise CameraError(f"{self.name} is a monochrome sensor; compile the model for a 1-channel raw spec "
                              f"(raw10, raw12)")
        want = self.spec.cfa if bayer else "RGGB"
        mosaic = rephase(words, order, want) if order else words
        codes = to_spec_codes(mosaic, self.spec.input_bits, self.spec.is_msb)
        if bayer:
            return codes[:, :, np.newaxis]  # (h, w) -> (h, w, 1): the readout stage fits the mosaic
        if order:  # a 1-channel raw spec: photosites binned per colour to the model's size, the mosaic kept
            return fit_mosaic(codes[:, :, np.newaxis], want, self.height // 2, self.width // 2)
        return fit_frame(codes[:, :, np.newaxis], self.height, self.width)

    def _read(self) -> Frame | None:
        camera = self._camera
        if camera is None:
            return None
        try:
            request = camera.capture_request(wait=self.timeout_s)
        except TIMEOUTS:
            self.timeouts += 1
            camera.cancel_all_and_flush()  # picamera2 leaves the job queued: cancel it, or closing waits for ever
            raise CameraError(f"{self.name} delivered no frame in {self.timeout_s:g} s (camera frontend timeout or "
                              f"a loose cable)") from None
        except RuntimeError as error:
            camera.cancel_all_and_flush()
            raise CameraError(f"{self.name} failed: {error}") from None
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
        return self._frame(image, self._account(metadata), self.name)

    def _account(self, metadata: dict) -> int:
        """The frame's time; counts frames dropped inside picamera2's queue, reads the temperature, locks."""
        stamp = int(metadata.get("SensorTimestamp", 0))
        duration_ns = int(metadata.get("FrameDuration", 0)) * 1000
        if self._last_stamp is not None and duration_ns > 0 and stamp > self._last_stamp:
            self.dropped += max(0, round((stamp - self._last_stamp) / duration_ns) - 1)
        self._last_stamp = stamp
        if "SensorTemperature" in metadata:
            self.temperature = float(metadata["SensorTemperature"])
        self.frames += 1
        if self.settings.lock_after_frames and self.frames == self.settings.lock_after_frames:
            locked = {name: metadata[name] for name in ("ExposureTime", "AnalogueGain", "ColourGains")
                      if name in metadata}
            self._camera.set_controls(locked)
            log.info("%s: exposure, gain and colour gains locked at %s", self.name, locked)
        return stamp

    def health(self) -> dict[str, float]:
        values = {"camera_dropped_frames": float(self.dropped), "camera_timeouts": float(self.timeouts)}
        if self.temperature is not None:
            values["sensor_temperature_celsius"] = self.temperature
        return values

    def _close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.cancel_all_and_flush()  # close() stops the camera itself, never behind a stale job
            finally:
                camera.close()
