"""keycam quantize and keycam keyify --int8, run as a user runs them: calibration frames measured as the device
measures them, the int8 model equal to the plain int8 model, inspect showing it, and bad calibration sets
refused in one line with nothing written. In-process (tests/inprocess.py)."""

from __future__ import annotations

import cv2
import numpy as np
import onnx
import pytest

from edge.default import ASSET
from edge.lab.datasets import fashion_mnist
from edge.runtime import KeyedModel
from export.quantize import quantize_plain
from firmware_sim.keys import MasterKey
from tests.export.quantize.helpers import Compiled, run_keyed, run_plain
from tests.inprocess import Done, keycam

FASHION = ["--spec", "gray8", "--mean", "72.94", "--std", "90"]


def run(*args, cwd=None) -> Done:
    return keycam(*map(str, args), cwd=cwd)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    folder = tmp_path_factory.mktemp("quantize")
    calibration = folder / "calibration"
    calibration.mkdir()
    train, _ = fashion_mnist("train")
    for i, picture in enumerate(train[:60]):
        cv2.imwrite(str(calibration / f"train_{i:03d}.png"), picture)
    assert run("keygen", folder / "k.key").returncode == 0
    (folder / "plain.onnx").write_bytes(ASSET.read_bytes())
    return folder


def test_keyify_int8_writes_both_models_and_the_int8_one_equals_the_plain_int8_model(place):
    done = run("keyify", place / "plain.onnx", "--key", place / "k.key", "-o", place / "cam.onnx", *FASHION,
               "--int8", "--calibration", place / "calibration")
    assert done.returncode == 0, done.stderr
    assert "(boundary layouts;" in done.stdout  # the default policy
    assert "quantised" in done.stdout and "60 calibration frames" in done.stdout and "plain model's own" in done.stdout
    for name in ("cam.onnx", "cam.int8.onnx", "cam.int8.manifest.json", "cam.int8.epochs.npz"):
        assert (place / name).is_file(), name
    key = MasterKey.load(place / "k.key")
    manifest = KeyedModel(place / "cam.onnx", key).manifest
    from edge.sensor import Readout

    model = Compiled(place / "plain.onnx", place / "cam.onnx", manifest, Readout.for_model(manifest, key), key)
    pictures = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((place / "calibration").iterdir())]
    calibration = model.sensor_frames(pictures)
    from edge.lab.verify import plain_input

    onnx.save(quantize_plain(place / "plain.onnx", plain_input(calibration, manifest)), place / "plain8.onnx")
    test, _ = fashion_mnist("t10k")
    frames = model.sensor_frames(list(test[:300]))
    assert np.array_equal(run_plain(place / "plain8.onnx", frames, manifest),
                          run_keyed(place / "cam.int8.onnx", model, model.measure(frames)))
    shown = run("inspect", place / "cam.int8.onnx")
    assert shown.returncode == 0
    assert "quant   QDQ, weights int8, per channel, symmetric, activations uint8, per tensor, asymmetric; " \
           "MinMax on 60 frames of 'calibration'" in shown.stdout
    assert "quant   none (float32)" in run("inspect", place / "cam.onnx").stdout


def test_quantize_with_and_without_the_plain_model(place):
    assert run("keyify", place / "plain.onnx", "--key", place / "k.key", "-o", place / "q.onnx",
               *FASHION).returncode == 0
    exact = run("quantize", place / "q.onnx", "--key", place / "k.key", "--calibration", place / "calibration",
                "-o", place / "q.int8.onnx", "--plain", place / "plain.onnx", "--limit", "20")
    assert exact.returncode == 0, exact.stderr
    assert "on 20 calibration frames" in exact.stdout and "the plain model's own" in exact.stdout
    loose = run("quantize", place / "q.onnx", "--key", place / "k.key", "--calibration", place / "calibration",
                "-o", place / "loose.int8.onnx")
    assert loose.returncode == 0, loose.stderr
    assert "no plain model given" in loose.stdout and "--plain PLAIN.onnx" in loose.stdout


BAD = {
    "missing": (None, "calibration folder '{dir}' does not exist"),
    "empty": ({}, "holds no pictures or .npy frames"),
    "deep": ({"a.npy": np.zeros((28, 28, 1), np.uint16)},
             "holds uint16 28x28x1 codes; the model reads uint8 frames 28x28x1"),
    "sized": ({"a.npy": np.zeros((32, 32, 1), np.uint8)}, "holds uint8 32x32x1 codes; the model reads uint8"),
    "png16": ({"a.png": np.zeros((28, 28), np.uint16)}, "holds uint16 28x28x1 values; the model reads uint8"),
    "small": ({"a.png": np.zeros((20, 40), np.uint8)}, "is 20x40, smaller than the model's 28x28 frames"),
    "text": ({"a.png": None}, "is not an image OpenCV can decode"),
}


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("command", ["quantize", "keyify"])
def test_a_bad_calibration_set_is_one_line_and_nothing_is_written(place, case, command, tmp_path):
    files, message = BAD[case]
    folder = tmp_path / case
    if files is not None:
        folder.mkdir()
        for file, data in files.items():
            if data is None:
                (folder / file).write_text("not a picture")
            elif file.endswith(".npy"):
                np.save(folder / file, data)
            else:
                cv2.imwrite(str(folder / file), data)
    if command == "quantize":
        if not (place / "q.onnx").exists():
            run("keyify", place / "plain.onnx", "--key", place / "k.key", "-o", place / "q.onnx", *FASHION)
        done = run("quantize", place / "q.onnx", "--key", place / "k.key", "--calibration", folder,
                   "-o", tmp_path / "out.onnx")
    else:
        done = run("keyify", place / "plain.onnx", "--key", place / "k.key", "-o", tmp_path / "out.onnx", *FASHION,
                   "--int8", "--calibration", folder)
    assert done.returncode == 1, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"keycam {command}: error: ") and "Traceback" not in done.stderr
    assert message.format(dir=folder) in lines[0], lines[0]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("out")]


@pytest.mark.parametrize("argv, message", [
    (["--int8"], "--int8 needs --calibration DIR"),
    (["--calibration", "{dir}"], "--calibration DIR goes with --int8"),
])
def test_int8_and_calibration_go_together(place, argv, message, tmp_path):
    done = run("keyify", place / "plain.onnx", "--key", place / "k.key", "-o", tmp_path / "out.onnx", *FASHION,
               *[a.format(dir=place / "calibration") for a in argv])
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_deeper_specs_calibrate_on_npy_sensor_frames_and_refuse_pictures(place, tmp_path):
    assert run("keyify", place / "plain.onnx", "--key", place / "k.key", "-o", tmp_path / "raw.onnx", "--spec",
               "raw12", "--mean", "72.94", "--std", "90").returncode == 0
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(4):
        np.save(frames / f"f{i}.npy", np.random.default_rng(i).integers(0, 4096, (28, 28, 1), np.uint16))
    done = run("quantize", tmp_path / "raw.onnx", "--key", place / "k.key", "--calibration", frames,
               "-o", tmp_path / "raw.int8.onnx")
    assert done.returncode == 0, done.stderr
    refused = run("quantize", tmp_path / "raw.onnx", "--key", place / "k.key", "--calibration",
                  place / "calibration", "-o", tmp_path / "raw2.int8.onnx")
    assert refused.returncode == 1 and "uint8 28x28x1 values; the model reads uint16 frames 28x28x1" in refused.stderr
