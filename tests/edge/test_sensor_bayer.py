"""The sensor for Bayer specs (readout spec version 2): a picture through a simulated CFA, a raw mosaic fitted to
the model, and the run's readout stage reading cells."""

from __future__ import annotations

import numpy as np
import pytest

from edge.epochs import EpochSchedule
from edge.errors import FrameError, SpecError
from edge.frame import Frame
from edge.imageio import read_frame
from edge.lab.demo import shipped_photo
from edge.sensor import Readout, fit_frame, fit_mosaic, simulate_cfa, to_sensor
from firmware_sim.cfa import PHASES, cell_offsets
from firmware_sim.manifest import InputSpec, IspSpec, Manifest
from firmware_sim.readout import readout as reference_readout
from firmware_sim.spec import PRESETS, ReadoutSpec

COLOURS = {"R": 0, "G": 1, "B": 2}  # in an RGB picture


def _picture(height: int, width: int, dtype=np.uint8, seed: int = 0) -> np.ndarray:
    top = 255 if dtype == np.uint8 else 65535
    return np.random.default_rng(seed).integers(0, top + 1, (height, width, 3)).astype(dtype)


@pytest.mark.parametrize("cfa", PHASES)
@pytest.mark.parametrize("order", ["rgb", "bgr"])
def test_simulate_cfa_keeps_each_photosites_own_colour(cfa, order):
    rgb = _picture(6, 8)
    picture = rgb if order == "rgb" else rgb[:, :, ::-1]
    mosaic = simulate_cfa(picture, cfa, source_order=order)
    assert mosaic.shape == (6, 8, 1) and mosaic.dtype == np.uint8
    for y in range(6):
        for x in range(8):
            colour = cfa[2 * (y % 2) + x % 2]
            assert mosaic[y, x, 0] == rgb[y, x, COLOURS[colour]]


def test_simulate_cfa_keeps_16_bit_values_and_checks_its_input():
    picture = _picture(4, 4, np.uint16)
    assert simulate_cfa(picture, "BGGR").dtype == np.uint16
    with pytest.raises(SpecError, match="CFA phase 'RGBG' is not one of RGGB, GRBG, GBRG, BGGR"):
        simulate_cfa(picture, "RGBG")
    with pytest.raises(FrameError, match=r"shape \(4, 4\), expected \(H, W, 3\)"):
        simulate_cfa(picture[:, :, 0], "RGGB")
    with pytest.raises(FrameError, match="dtype float32"):
        simulate_cfa(picture.astype(np.float32), "RGGB")
    with pytest.raises(FrameError, match="source_order 'rgba'"):
        simulate_cfa(picture, "RGGB", source_order="rgba")


@pytest.mark.parametrize("cfa", PHASES)
def test_fit_mosaic_keeps_the_phase(cfa):
    """Constant colour planes stay constant and in place whatever the crop and resize."""
    values = {"R": 1000, "Gr": 2000, "Gb": 3000, "B": 4000}
    mosaic = np.zeros((480, 642), np.uint16)
    for colour, (dy, dx) in zip(values, cell_offsets(cfa)):
        mosaic[dy::2, dx::2] = values[colour]
    fitted = fit_mosaic(mosaic, cfa, 12, 20)
    assert fitted.shape == (24, 40, 1) and fitted.dtype == np.uint16
    cells = ReadoutSpec(spec_version=2, cfa=cfa, channels=4, input_bits=12, output_bits=12).cells(fitted)
    assert np.all(cells == np.array(list(values.values()), np.uint16))


def test_fit_mosaic_fits_each_plane_by_the_frame_rule():
    rng = np.random.default_rng(4)
    mosaic = rng.integers(0, 4096, (300, 500, 1)).astype(np.uint16)
    fitted = fit_mosaic(mosaic, "RGGB", 16, 16)
    for dy, dx in cell_offsets("RGGB"):
        plane = np.ascontiguousarray(mosaic[dy::2, dx::2, 0])
        assert np.array_equal(fitted[dy::2, dx::2, 0], fit_frame(plane, 16, 16)[:, :, 0])
    assert np.array_equal(fit_mosaic(mosaic, "RGGB", 150, 250), mosaic)  # already the model's size
    up = fit_mosaic(mosaic[:8, :8], "GBRG", 8, 8)  # upsampling: interpolated per plane, phase kept
    assert up.shape == (16, 16, 1) and up.dtype == np.uint16


def test_fit_mosaic_refuses_what_is_not_a_mosaic():
    with pytest.raises(FrameError, match="crop it to 4x6"):
        fit_mosaic(np.zeros((5, 6), np.uint16), "RGGB", 2, 2)
    with pytest.raises(FrameError, match=r"shape \(4, 4, 3\), expected \(H, W\) or \(H, W, 1\)"):
        fit_mosaic(np.zeros((4, 4, 3), np.uint16), "RGGB", 2, 2)
    with pytest.raises(SpecError, match="fit_mosaic: CFA phase 'none'"):
        fit_mosaic(np.zeros((4, 4), np.uint16), "none", 2, 2)


@pytest.mark.parametrize("name", ["bayer10", "bayer12to8", "bayer12msb", "bggr10msb"])
def test_to_sensor_samples_a_colour_picture_through_the_specs_cfa(name):
    spec = PRESETS[name]
    photo = read_frame(shipped_photo())  # B,G,R, 8-bit
    frame = to_sensor(photo, spec, 24, 32, source_order="bgr")
    assert frame.shape == (48, 64, 1) and frame.dtype == spec.input_dtype
    expected = simulate_cfa(fit_frame(photo, 48, 64), spec.cfa, "bgr").astype(np.uint16)
    assert np.array_equal(frame, expected << (spec.input_bits - 8 + spec.alignment_shift))
    if spec.is_msb:  # 16-bit words, the code in the top bits: an 8-bit value v is v << 8
        assert np.array_equal(frame >> 8, expected)
    assert spec.check_frame(frame).shape == (48, 64, 1)
    rgb = to_sensor(photo[:, :, ::-1].copy(), spec, 24, 32, source_order="rgb")
    assert np.array_equal(rgb, frame)


def test_to_sensor_fits_a_raw_mosaic_and_keeps_its_codes():
    spec = PRESETS["bggr12msb"]
    raw = np.random.default_rng(2).integers(0, 65536, (760, 1014)).astype(np.uint16)  # a Pi 5 raw, MSB-aligned
    frame = to_sensor(raw, spec, 30, 40)
    assert frame.shape == (60, 80, 1) and frame.dtype == np.uint16
    assert np.array_equal(frame, fit_mosaic(raw, "BGGR", 30, 40))
    eight = to_sensor((raw >> 8).astype(np.uint8)[:, :, np.newaxis], PRESETS["bayer10"], 30, 40)
    assert eight.dtype == np.uint16 and eight.max() <= 1023 and np.all(eight % 4 == 0)  # left-aligned 8 -> 10 bits
    with pytest.raises(FrameError, match="a Bayer sensor reads a colour picture"):
        to_sensor(np.zeros((8, 8, 2), np.uint8), spec, 2, 2)


def test_pixel_specs_are_unchanged_and_msb_pixels_get_words():
    photo = read_frame(shipped_photo())
    assert to_sensor(photo, PRESETS["raw12"], 20, 30).shape == (20, 30, 1)
    assert np.array_equal(to_sensor(photo, PRESETS["raw12"], 20, 30) >> 4, to_sensor(photo, PRESETS["gray8"], 20, 30))
    msb = ReadoutSpec(spec_version=2, channels=1, input_bits=12, output_bits=12, input_alignment="msb")
    assert np.array_equal(to_sensor(photo, msb, 20, 30), to_sensor(photo, PRESETS["gray8"], 20, 30).astype(np.uint16) << 8)


def _manifest(spec: ReadoutSpec, height: int, width: int, epoch: int = 0) -> Manifest:
    isp = IspSpec(black_level=0, wb_gains=[1.0, 1.0, 1.0], white=float(spec.output_max))
    return Manifest(key_fingerprint="kc1:0", policy="boundary", spec=spec, epoch=epoch, plain_sha256="0",
                    layout_salt="0", outputs=[],
                    input=InputSpec(name="measurement", shape=[None, height, width, 4], dtype=spec.output_dtype.name,
                                    channel_order="rgb", model_channel_order="rgb", mean=[0.0] * 3, std=[1.0] * 3,
                                    code_scale=1.0, isp=isp))


@pytest.mark.parametrize("name", ["bayer12to8", "bggr12msb"])
def test_the_readout_stage_reads_cells_for_a_bayer_model(key, name):
    spec = PRESETS[name]
    readout = Readout.for_model(_manifest(spec, 12, 16, epoch=3), key, source_order="bgr")
    assert (readout.height, readout.width) == (12, 16)  # cells: the model's size
    photo = read_frame(shipped_photo())
    measured = readout.read(Frame(photo, 7, 0, "test"))
    assert measured.measured and measured.epoch == 3 and measured.image.shape == (12, 16, 4)
    sensor_frame = readout.prepare(photo)
    assert sensor_frame.shape == (24, 32, 1)
    assert np.array_equal(measured.image, reference_readout(sensor_frame, key, spec, 3))
    slow = Readout(key, spec, 12, 16, reference=True, schedule=EpochSchedule(3))
    assert np.array_equal(slow.read(Frame(photo, 7, 0, "test")).image, measured.image)
    assert np.array_equal(readout.inverse(measured.image, 3), spec.transfer_table()[spec.cells(sensor_frame)])


# OpenCV names a Bayer pattern by the second row's second and third photosites: an RGGB sensor is "BG"
OPENCV = {"RGGB": "BayerBG2BGR", "GRBG": "BayerGB2BGR", "GBRG": "BayerGR2BGR", "BGGR": "BayerRG2BGR"}


@pytest.mark.parametrize("cfa", PHASES)
def test_opencvs_demosaic_of_the_simulated_phase_restores_the_photo(cfa):
    """An independent oracle for the phase names: OpenCV demosaics our mosaic of phase P best with P's code."""
    import cv2

    photo = read_frame(shipped_photo())  # B,G,R
    mosaic = simulate_cfa(photo, cfa)[:, :, 0]
    errors = {code: float(np.mean((cv2.cvtColor(mosaic, getattr(cv2, "COLOR_" + code)).astype(float) - photo) ** 2))
              for code in OPENCV.values()}
    assert min(errors, key=errors.get) == OPENCV[cfa]
    assert 10 * np.log10(255**2 / errors[OPENCV[cfa]]) > 25  # dB: a faithful picture, the others are not
