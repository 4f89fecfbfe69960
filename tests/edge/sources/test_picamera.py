"""The picamera2 source against the behavioural fake (tests/edge/sources/fake_picamera2): what picamera2 and
libcamera really do on a Pi 4 and a Pi 5, each behaviour traced in the fake to the source line it follows."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest

from edge.errors import CameraError
from edge.loop import CaptureLoop
from edge.sources.virtual import VirtualSensor
from edge.sensor import Readout, fit_frame
from edge.sources.picamera import PicameraConfig, PicameraSource, load_backend
from firmware_sim.keys import MasterKey
from firmware_sim.spec import DEFAULT_SPEC
from tests.edge.sources.fake_picamera2 import BACKEND, IMX477, IMX708, FakePicamera2, Platform
from tests.edge.sources.fake_picamera2 import scene


def source(height=32, width=48, spec=DEFAULT_SPEC, **settings) -> PicameraSource:
    return PicameraSource(height, width, spec, PicameraConfig(**settings), backend=BACKEND)


def ideal(height: int, width: int, sensor=IMX708, fov=None) -> np.ndarray:
    """What the model should see: the centre of the full field of view at the model's aspect ratio, B,G,R."""
    x, y, w, h = fov or (0, 0, *sensor.pixel_array)
    if w / h > width / height:
        keep = round(h * width / height)
        x, w = x + (w - keep) // 2, keep
    else:
        keep = round(w * height / width)
        y, h = y + (h - keep) // 2, keep
    return scene.bgr888(scene.render((width, height), (x, y, w, h), sensor.pixel_array))


def error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(float) - b.astype(float)).mean())


def run_in_thread(function, timeout=10.0):
    """function() in a daemon thread: (finished, its exception); a hang is reported, not waited for."""
    outcome = {}

    def target():
        try:
            function()
        except BaseException as caught:  # noqa: BLE001
            outcome["error"] = caught

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    return not thread.is_alive(), outcome.get("error")


# -- defect 1: the import --------------------------------------------------------------------------------------

def test_a_simplejpeg_built_for_numpy_1_is_one_line_that_says_what_to_do(tmp_path, monkeypatch):
    """picamera2 imports simplejpeg at load time (encoders/jpeg_encoder.py L3); built for numpy 1.x it raises
    ValueError under numpy 2.x (picamera2 issues #1088, #1211), which an `except ImportError` misses."""
    (tmp_path / "libcamera").mkdir()
    (tmp_path / "libcamera" / "__init__.py").write_text("class Transform:\n    pass\n")
    (tmp_path / "picamera2").mkdir()
    (tmp_path / "picamera2" / "__init__.py").write_text(
        'raise ValueError("numpy.dtype size changed, may indicate binary incompatibility. Expected 96 from C '
        'header, got 88 from PyObject")\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("picamera2", "libcamera"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(CameraError, match=r"numpy\.dtype size changed.*pip install -e '\.\[pi\]'"):
        load_backend()


def test_without_picamera2_or_libcamera_the_error_says_how_to_install_them():
    with pytest.raises(CameraError, match="python3-picamera2.*--system-site-packages"):
        load_backend()


# -- defect 2: a dead camera must not hang the process ----------------------------------------------------------

def test_a_frontend_timeout_cancels_the_stale_job_so_closing_does_not_hang():
    camera_source = source(timeout_s=0.2)
    camera_source.open()
    camera = FakePicamera2.instances[-1]
    camera_source.read()
    camera.frontend_timeout()
    with pytest.raises(CameraError, match="delivered no frame in 0.2 s"):
        camera_source.read()
    assert camera.cancelled == 1 and not camera._job_list  # picamera2 leaves it queued (P2 L1558): cancelled
    finished, failure = run_in_thread(camera_source.close, timeout=60)  # a hang fails; a slow machine does not
    assert finished and failure is None and not camera.is_open


def test_the_fake_models_the_hang_an_uncancelled_job_causes():
    """Without cancel_all_and_flush, stop() queues behind the stale job and a dead camera never runs it."""
    camera = FakePicamera2(0)
    camera.configure(camera.create_video_configuration(main={"format": "RGB888", "size": (64, 64)}))
    camera.start()
    camera.frontend_timeout()
    with pytest.raises(TimeoutError):
        camera.capture_request(wait=0.05)
    finished, _ = run_in_thread(camera.stop, timeout=1)
    assert not finished and camera.stop_blocked.is_set()


def test_the_loop_reopens_a_camera_after_a_frontend_timeout_and_leaks_nothing():
    FakePicamera2.timeout_after = 3
    camera_source = source(timeout_s=0.2)
    readout = Readout(MasterKey.generate(), DEFAULT_SPEC, 32, 48, source_order=camera_source.channel_order)
    frames = []

    from edge.sinks.base import Sink

    class _Collect(Sink):
        def write(self, result):
            frames.append(result)

    class _Front:
        def front(self, frame):
            from edge.frame import Result

            return Result(frame)

        def back(self, result):
            return result

    loop = CaptureLoop(VirtualSensor(camera_source, readout), _Front(), [_Collect()], max_frames=8, backoff_s=0.01)
    finished, failure = run_in_thread(loop.run, timeout=120)  # hang protection only
    assert finished and failure is None, failure
    assert len(frames) == 8 and loop.metrics.camera_failures == 1
    assert len(FakePicamera2.instances) == 2 and all(not c.is_open for c in FakePicamera2.instances)
    assert sum(c.leaked for c in FakePicamera2.instances) == 0
    assert sum(c.outstanding for c in FakePicamera2.instances) == 0


def test_an_unplugged_camera_ends_the_run_with_one_error():
    camera_source = source(timeout_s=0.1)
    camera_source.open()
    FakePicamera2.unplug(IMX708)
    with pytest.raises(CameraError):
        camera_source.read()
    finished, _ = run_in_thread(camera_source.close, timeout=60)  # hang protection only
    assert finished
    with pytest.raises(CameraError, match="camera 0 is not connected"):
        camera_source.open()


# -- defects 3 and 4: sizes, strides, aspect ratio and colour matrix as the camera reports them -------------------

@pytest.mark.parametrize("platform", [Platform.VC4, Platform.PISP])
def test_a_small_model_stream_is_read_at_the_size_and_stride_the_camera_reports(monkeypatch, platform):
    monkeypatch.setattr(FakePicamera2, "platform", platform)
    with source(28, 28) as camera_source:
        frame = camera_source.read()
        reported = FakePicamera2.instances[-1].camera_configuration()["main"]
    if platform is Platform.VC4:  # bcm2835-isp clamps each side to 64
        assert reported["size"] == (64, 64) and reported["stride"] == 64 * 3
    assert frame.image.shape == (reported["size"][1], reported["size"][0], 3)
    assert error(fit_frame(frame.image, 28, 28), ideal(28, 28)) < 2.0


@pytest.mark.parametrize("platform, fmt", [(Platform.VC4, "YUV420"), (Platform.PISP, "RGB888")])
def test_lores_beside_a_large_main_stream_keeps_the_aspect_ratio_and_the_colour_matrix(monkeypatch, platform, fmt):
    monkeypatch.setattr(FakePicamera2, "platform", platform)
    with source(28, 28, main_size=(1920, 1080)) as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
        lores = camera.camera_configuration()["lores"]
        assert lores["format"] == fmt
        assert abs(lores["size"][0] / lores["size"][1] - 1920 / 1080) < 0.05  # asked at main's aspect ratio
        assert str(camera.camera_configuration()["colour_space"]) == "<libcamera.ColorSpace 'Rec709'>"  # >= 720p
        got = fit_frame(frame.image, 28, 28)
        assert error(got, ideal(28, 28)) < 3.0
        if fmt == "YUV420":  # decoding BT.709 as BT.601 (OpenCV's I420 conversion) would be off by more
            from edge.sources.picamera_formats import yuv420_to_bgr

            request = camera.capture_request(wait=1)
            wrong = yuv420_to_bgr(request.make_array("lores"), *lores["size"], "Rec601")
            request.release()
            assert error(fit_frame(wrong, 28, 28), ideal(28, 28)) > error(got, ideal(28, 28)) + 1.0


# -- defects 6 and 7: controls and timing ----------------------------------------------------------------------

@pytest.mark.parametrize("version", [(0, 5, 1), (0, 5, 2)])
def test_exposure_and_gain_are_set_as_values_on_every_libcamera(monkeypatch, version):
    monkeypatch.setattr(FakePicamera2, "libcamera_version", version)
    with source(exposure_us=20000, analogue_gain=2.5) as camera_source:
        camera_source.read()
        camera = FakePicamera2.instances[-1]
        request = camera.capture_request(wait=1)
        metadata = request.get_metadata()
        request.release()
    assert "AeEnable" not in camera.controls and not camera.warnings
    assert metadata["ExposureTime"] == 20000 and metadata["AnalogueGain"] == 2.5


def test_a_long_exposure_raises_the_frame_duration_instead_of_being_capped():
    with source(exposure_us=100_000) as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
        request = camera.capture_request(wait=1)
        metadata = request.get_metadata()
        request.release()
    assert metadata["ExposureTime"] == 100_000 and frame is not None
    assert camera_source.timeout_s >= 0.3


def test_a_slow_frame_rate_waits_long_enough_for_its_frames():
    with source(frame_rate=0.25) as camera_source:  # one frame every 4 s: a 2 s wait would always time out
        frame = camera_source.read()
    assert frame is not None and camera_source.timeout_s >= 12


def test_an_exposure_longer_than_a_frame_is_refused_in_the_configuration():
    with pytest.raises(ValueError, match="longer than a frame"):
        PicameraConfig(frame_rate=30, exposure_us=50_000)


# -- defect 8: the field of view ---------------------------------------------------------------------------------

def test_camera_module_3_reads_its_full_field_of_view_not_the_720p_crop():
    with source(224, 224) as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert camera.mode.size == (2304, 1296)  # picamera2's own choice for 224x224 is the 1536x864 crop
    assert error(fit_frame(frame.image, 224, 224), ideal(224, 224)) < 2.0


def test_a_named_sensor_mode_is_used_and_an_unknown_one_is_refused():
    with source(224, 224, sensor_mode="1536x864") as camera_source:
        frame = camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert camera.mode.size == (1536, 864)
    assert error(fit_frame(frame.image, 224, 224), ideal(224, 224, fov=(768, 432, 3072, 1728))) < 2.0
    with pytest.raises(CameraError, match=r"'999x999' is not one of this camera's modes \(1536x864:10, "):
        source(sensor_mode="999x999").open()


def test_without_a_fast_enough_full_field_mode_the_faster_crop_is_taken():
    with source(64, 64, frame_rate=100) as camera_source:
        camera_source.read()
        assert FakePicamera2.instances[-1].mode.size == (1536, 864)


# -- what Pi users expect ----------------------------------------------------------------------------------------

def test_choosing_the_camera_by_number_id_or_model(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "attached", (IMX708, IMX477))
    for wanted in ("imx477", IMX477.id):
        with source(camera=wanted) as camera_source:
            camera_source.read()
            assert FakePicamera2.instances[-1].sensor is IMX477
    with pytest.raises(CameraError, match=r"'imx219' is no connected camera's Id or model \(cameras: 0: "):
        source(camera="imx219").open()


def test_a_tuning_file_by_name_or_path(tmp_path, monkeypatch):
    """A name is found where libcamera looks (here $LIBCAMERA_IPA_CONFIG_PATH/rpi/vc4) and passed as a path; the
    tuning in effect is what the IPA read (the fake's ``tuning``: the file's content)."""
    (tmp_path / "rpi" / "vc4").mkdir(parents=True)
    (tmp_path / "rpi" / "vc4" / "imx708_noir.json").write_text('{"file": "imx708_noir.json"}')
    monkeypatch.setenv("LIBCAMERA_IPA_CONFIG_PATH", str(tmp_path))
    with source(tuning="imx708_noir.json") as camera_source:
        camera_source.read()
        assert FakePicamera2.instances[-1].tuning["file"] == "imx708_noir.json"
        assert FakePicamera2.instances[-1].tuning_asked == str(tmp_path / "rpi" / "vc4" / "imx708_noir.json")
    (tmp_path / "mine.json").write_text('{"file": "mine"}')
    with source(tuning=str(tmp_path / "mine.json")):
        assert FakePicamera2.instances[-1].tuning_asked == str(tmp_path / "mine.json")
        assert FakePicamera2.instances[-1].tuning == {"file": "mine"}
    with pytest.raises(CameraError, match="not among libcamera's tuning files"):
        source(tuning="nope.json").open()


def test_autofocus_flips_crop_and_white_balance_reach_the_camera():
    with source(af_mode="manual", lens_position=2.0, hflip=True, scaler_crop=(0, 0, 4608, 2592),
                colour_gains=(1.9, 1.4)) as camera_source:
        camera_source.read()
        camera = FakePicamera2.instances[-1]
        assert camera.camera_configuration()["transform"].hflip == 1
    assert camera.controls["AfMode"] == 0 and camera.controls["LensPosition"] == 2.0
    assert camera.controls["ScalerCrop"] == (0, 0, 4608, 2592) and camera.controls["ColourGains"] == (1.9, 1.4)


def test_autofocus_on_a_camera_without_a_lens_is_one_error(monkeypatch):
    monkeypatch.setattr(FakePicamera2, "attached", (IMX477,))
    with pytest.raises(CameraError, match="Control AfMode is not advertised"):
        source(af_mode="continuous").open()
    assert not FakePicamera2.instances[-1].is_open  # refused configurations close the camera


def test_lock_after_frames_freezes_exposure_gain_and_colour_gains():
    with source(lock_after_frames=3) as camera_source:
        for _ in range(4):
            camera_source.read()
        camera = FakePicamera2.instances[-1]
    assert camera.controls["ExposureTime"] == 20000 and camera.controls["AnalogueGain"] == 2.0
    assert camera.controls["ColourGains"] == (1.8, 1.5)


def test_drops_inside_picamera2_and_the_sensor_temperature_are_reported():
    with source() as camera_source:
        camera_source.read()
        FakePicamera2.instances[-1].skip_next = 2
        camera_source.read()
        camera_source.read()
        health = camera_source.health()
    assert health["camera_dropped_frames"] == 2 and health["sensor_temperature_celsius"] == IMX708.temperature


def test_every_request_is_released_and_a_failing_release_hides_nothing():
    with source() as camera_source:
        for _ in range(3):
            camera_source.read()
        camera = FakePicamera2.instances[-1]
        assert camera.outstanding == 0 and camera.released == 3
        camera.requeue_fails = True
        with pytest.raises(CameraError, match="failed to take its buffer back: Failed to queue request"):
            camera_source.read()


def test_a_lores_stream_the_pi4_enlarges_is_decoded_at_its_real_size():
    """bcm2835-isp raises the 60-row streams to 64 rows: a YUV420 array decoded at the requested size would mix
    the chroma planes into the picture."""
    with source(28, 28, main_size=(100, 60)) as camera_source:
        frame = camera_source.read()
        lores = FakePicamera2.instances[-1].camera_configuration()["lores"]
    assert lores["size"] == (100, 64) and frame.image.shape == (64, 100, 3)
    assert error(fit_frame(frame.image, 28, 28), ideal(28, 28)) < 3.0


# -- defect 5 and readout spec v2: raw Bayer as the sensor reads it ----------------------------------------------

def ideal_cells(height: int, width: int, bits: int, sensor=IMX708) -> np.ndarray:
    """(H, W, 4) codes R, Gr, Gb, B the model should see: the scene at each cell of the full field of view."""
    x, y, w, h = (0, 0, *sensor.pixel_array)
    if w / h > width / height:
        keep = round(h * width / height)
        x, w = x + (w - keep) // 2, keep
    else:
        keep = round(w * height / width)
        y, h = y + (h - keep) // 2, keep
    rgb = scene.render((width, height), (x, y, w, h), sensor.pixel_array) / 255 * ((1 << bits) - 1)
    return np.stack([rgb[..., 0], rgb[..., 1], rgb[..., 1], rgb[..., 2]], axis=-1)  # (H, W, 3) -> (H, W, 4)


def raw_cells(camera_source: PicameraSource, spec, height: int, width: int) -> np.ndarray:
    """A frame through the readout stage's preparation, as the spec's canonical cells (alignment removed)."""
    frame = camera_source.read()
    readout = Readout(MasterKey.generate(), spec, height, width, source_order=camera_source.channel_order)
    return spec.cells(readout.prepare(frame.image)).astype(float)


@pytest.mark.parametrize("platform, sensor, preset, reported, bits", [
    (Platform.VC4, IMX708, "bayer10", "SBGGR10", 10),  # Camera Module 3 on a Pi 4: BGGR (mounted 180), LSB
    (Platform.PISP, IMX708, "bggr10msb", "SBGGR16", 10),  # on a Pi 5: 16-bit words, the code in the top bits
    (Platform.VC4, IMX477, "bayer12", "SBGGR12", 12),  # the HQ camera's 12-bit raw on a Pi 4
    (Platform.PISP, IMX477, "bayer12", "SBGGR16", 12),  # Pi 5 words read for an LSB spec
])
def test_raw_is_read_at_the_modes_size_depth_alignment_and_bayer_order(monkeypatch, platform, sensor, preset,
                                                                        reported, bits):
    from firmware_sim.spec import PRESETS

    monkeypatch.setattr(FakePicamera2, "platform", platform)
    monkeypatch.setattr(FakePicamera2, "attached", (sensor,))
    spec = PRESETS[preset]
    with source(24, 32, spec) as camera_source:
        raw = FakePicamera2.instances[-1].camera_configuration()["raw"]
        assert raw["format"] == reported and raw["size"] in [m.size for m in sensor.modes]
        cells = raw_cells(camera_source, spec, 24, 32)
    full_fov = max(sensor.modes, key=lambda m: (m.crop[2] * m.crop[3], -m.size[0]))
    assert FakePicamera2.instances[-1].mode.crop == full_fov.crop  # the whole field of view, binned
    want = ideal_cells(24, 32, spec.input_bits, sensor)
    assert np.abs(cells - want).mean() < 0.01 * (1 << spec.input_bits)  # each colour where the spec says
    if spec.is_msb:
        assert camera_source.read().image.max() > 4095  # 16-bit words, no longer refused


def test_flips_change_the_bayer_order_the_camera_reports_and_the_mosaic_is_re_phased():
    from firmware_sim.spec import PRESETS

    spec = PRESETS["bayer10"]
    with source(24, 32, spec, hflip=True, vflip=True) as camera_source:  # undoes the 180-degree mounting
        assert FakePicamera2.instances[-1].camera_configuration()["raw"]["format"] == "SRGGB10"
        cells = raw_cells(camera_source, spec, 24, 32)
    assert np.abs(cells - ideal_cells(24, 32, 10)).mean() < 0.01 * 1024
    with source(24, 32, spec, hflip=True) as camera_source:
        assert FakePicamera2.instances[-1].camera_configuration()["raw"]["format"] == "SGBRG10"
        cells = raw_cells(camera_source, spec, 24, 32)
    assert np.abs(cells - ideal_cells(24, 32, 10)).mean() < 0.01 * 1024


def test_a_one_channel_raw_spec_reads_the_mosaic_and_a_mono_sensor_refuses_bayer(monkeypatch):
    from firmware_sim.spec import PRESETS

    with source(24, 32, PRESETS["raw10"]) as camera_source:  # a model of raw photosites, CFA kept (RGGB)
        frame = camera_source.read()
    assert frame.image.shape == (24, 32, 1) and frame.image.dtype == np.uint16
    red = frame.image[0::2, 0::2, 0].astype(float)
    assert np.abs(red - ideal_cells(12, 16, 10)[..., 0]).mean() < 0.01 * 1024
    from tests.edge.sources.fake_picamera2 import OV9281

    monkeypatch.setattr(FakePicamera2, "attached", (OV9281,))
    with pytest.raises(CameraError, match="monochrome sensor"):  # at open (issue 24: no longer per frame)
        source(24, 32, PRESETS["bayer10"]).open()


def test_a_bayer_model_on_the_camera_runs_end_to_end(monkeypatch, tmp_path):
    """keycam run with kind = "picamera" and a model keyed for a Bayer spec reads raw, not RGB888."""
    import edge.sources.picamera as picamera
    from edge.config import Config
    from edge.job import build_job
    from export.keyify import KeyifyOptions, keyify
    from export.package.save import save
    from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
    from firmware_sim.spec import PRESETS

    key = MasterKey.generate()
    key.save(tmp_path / "k.key")
    save(keyify(resnet20(), key, KeyifyOptions(spec=PRESETS["bayer10"], policy="boundary", mean=CIFAR_MEAN,
                                               std=CIFAR_STD)), tmp_path / "keyed.onnx")
    monkeypatch.setattr(picamera, "load_backend", lambda: BACKEND)
    config = Config()
    config.source = PicameraConfig(frame_rate=10)
    config.model.path, config.model.key = str(tmp_path / "keyed.onnx"), str(tmp_path / "k.key")
    config.results.path, config.loop.max_frames = str(tmp_path / "r.jsonl"), 3
    job = build_job(config)
    summary = job.run()
    assert summary["frames"] == 3 and job.plain_source.raw
    assert FakePicamera2.instances[-1].mode.size == (2304, 1296)
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 3


def test_the_cameras_health_is_on_the_metrics_endpoint():
    import urllib.request

    from edge.metrics import MetricsServer

    server = MetricsServer("127.0.0.1", 0)
    try:
        with source() as camera_source:
            server.watch_source(camera_source)
            camera_source.read()
            FakePicamera2.instances[-1].skip_next = 3
            camera_source.read()
            text = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=5).read().decode()
    finally:
        server.close()
    assert "keycam_source_camera_dropped_frames_total 3.0" in text
    assert f"keycam_source_sensor_temperature_celsius {IMX708.temperature}" in text
