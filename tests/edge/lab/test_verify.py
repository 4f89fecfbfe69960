"""keycam verify checks the frames the device would produce: it prepares a picture exactly as the capture loop does
(crop to the model's aspect ratio, resize, channel order and depth, then the readout)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.config import Config
from edge.imageio import read_frame
from edge.job import build_job
from edge.lab.demo import shipped_photo
from edge.lab.verify import prepare_frame, verify
from edge.recording import read_recording
from edge.sensor import Readout
from edge.sources.folder import FolderConfig
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from tests.edge.lab.verifying import lines as _lines


@pytest.fixture(scope="module")
def colour_model(tmp_path_factory):
    """A keyed ResNet-20 (32 x 32) that reads an RGB sensor, its plain model, and the key."""
    import onnx

    from firmware_sim.keys import MasterKey

    folder = tmp_path_factory.mktemp("verify")
    key = MasterKey.generate()
    key.save(folder / "k.key")
    plain = resnet20()
    onnx.save(plain, folder / "plain.onnx")
    save(keyify(plain, key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD, policy="boundary", channel_order="rgb")),
         folder / "keyed.onnx")
    return folder, key


def test_verify_and_the_loop_prepare_an_off_centre_non_square_frame_identically(colour_model, tmp_path):
    folder, key = colour_model
    frames = tmp_path / "frames"
    frames.mkdir()
    photo = cv2.imread(str(shipped_photo()))
    picture = frames / "wide.png"
    cv2.imwrite(str(picture), np.ascontiguousarray(photo[37:97, 101:221]))  # 60 x 120: twice as wide as tall
    config = Config()
    config.source = FolderConfig(path=str(frames))
    config.model.path, config.model.key = str(folder / "keyed.onnx"), str(folder / "k.key")
    config.results.path, config.record.path = str(tmp_path / "r.jsonl"), str(tmp_path / "r.mcap")
    job = build_job(config)
    job.run()
    (recorded,) = list(read_recording(tmp_path / "r.mcap"))
    manifest = job.pipeline.manifest
    readout = Readout.for_model(manifest, key)
    prepared = prepare_frame(read_frame(picture), readout, picture)
    assert np.array_equal(readout.measure(prepared, manifest.epoch), recorded.image)
    squashed = cv2.resize(read_frame(picture), (32, 32), interpolation=cv2.INTER_AREA)[..., ::-1]  # the old rule
    assert not np.array_equal(prepared, squashed)  # the crop matters for this frame
    report = verify(folder / "plain.onnx", folder / "keyed.onnx", key, [picture])
    assert report.exact and report.images == 1


# -- the command: what it prints, what it refuses ---------------------------------------------------------------

@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Five package-shipped photos of different sizes and aspect ratios."""
    folder = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left"):
        cv2.imwrite(str(folder / f"{name}.png"), cv2.imread(str(shipped_photo(name))))
    return folder


def test_verify_prints_one_line_per_output_and_answer_kind_and_takes_a_batch(colour_model, photos):
    from tests.inprocess import keycam

    folder, _ = colour_model
    done = keycam("verify", folder / "plain.onnx", folder / "keyed.onnx", "--key", folder / "k.key", "--images",
                  photos, "--batch", "2")
    assert done.returncode == 0, done.stdout + done.stderr
    lines = _lines(done)
    assert lines["images"] == "5, framed by crop (batches of 2: the model's batch is dynamic)"
    (raw,) = [text for column, text in lines.items() if column.startswith("raw ")]
    assert raw.endswith(": ok") and "of its range (tolerance 1e-04)" in raw
    assert lines["top-1 agree"].startswith("100.00 % (") and lines["top-1 agree"].endswith(": ok")
    assert lines["verdict"] == "exact" and done.stderr == ""


def test_a_plain_model_that_is_not_the_keyed_models_is_refused_in_one_line(colour_model, photos, tmp_path):
    import onnx
    from onnx import numpy_helper

    from export.zoo import resnet18
    from tests.inprocess import keycam

    folder, key = colour_model
    other = resnet20(seed=1)  # the same architecture, other weights: only the digest tells
    onnx.save(other, tmp_path / "other-weights.onnx")
    onnx.save(resnet20(size=64), tmp_path / "other-size.onnx")  # another input size
    onnx.save(resnet20(classes=7), tmp_path / "other-classes.onnx")  # an output of another size
    onnx.save(resnet18(size=32), tmp_path / "other-outputs.onnx")  # outputs of other names
    cut = resnet20()
    first = cut.graph.initializer[0]
    first.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(first) * 1.0001, first.name))
    onnx.save(cut, tmp_path / "retouched.onnx")
    for name, why in [("other-weights", "has sha256"), ("other-size", "takes tensor(float) (N, 3, 64, 64)"),
                      ("other-classes", "of shape (N, 7); the keyed model's plain model gives (N, 10)"),
                      ("other-outputs", "has outputs"), ("retouched", "has sha256")]:
        done = keycam("verify", tmp_path / f"{name}.onnx", folder / "keyed.onnx", "--key", folder / "k.key",
                      "--images", photos)
        assert done.returncode == 1 and done.stdout == "", (name, done.stdout)
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("keycam verify: error: plain model ") and why in line, line
        assert "is not the model" in line and "Traceback" not in done.stderr


def test_a_perturbed_keyed_model_is_not_exact_and_the_report_says_where(colour_model, photos, tmp_path):
    import onnx

    from tests.inprocess import keycam

    folder, _ = colour_model
    keyed = onnx.load(folder / "keyed.onnx")
    weights = [t for t in keyed.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 4]
    from onnx import numpy_helper

    last = weights[-1]  # the last convolution's weights, 0.1 % larger
    last.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(last) * np.float32(1.001), last.name))
    _restamp(keyed, tmp_path / "perturbed.onnx")
    done = keycam("verify", folder / "plain.onnx", tmp_path / "perturbed.onnx", "--key", folder / "k.key",
                  "--images", photos)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = _lines(done)
    (raw_column,) = [column for column in lines if column.startswith("raw ")]
    assert lines[raw_column].endswith(": NOT EXACT")
    assert lines["verdict"].startswith(f"NOT EXACT ({raw_column}")


@pytest.mark.parametrize("extra, status, why", [
    (["--batch", "0"], 2, "--batch"),
    (["--config", "{missing}"], 1, "missing.toml"),
    (["--config", "{detector}"], 1, "decoder"),  # a [task] whose decoder cannot read this classifier's outputs
])
def test_a_bad_batch_or_configuration_is_one_line(colour_model, photos, tmp_path, extra, status, why):
    from tests.inprocess import keycam

    folder, _ = colour_model
    detector = tmp_path / "detector.toml"
    detector.write_text('[task]\nkind = "detect"\ndecoder = "yolo"\n')
    args = [a.format(missing=tmp_path / "missing.toml", detector=detector) for a in extra]
    done = keycam("verify", folder / "plain.onnx", folder / "keyed.onnx", "--key", folder / "k.key", "--images",
                  photos, *args)
    assert done.returncode == status and done.stdout == "", done.stdout + done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("keycam") and why in line and "Traceback" not in done.stderr, line


def _restamp(keyed, path):
    """Write a keyed model whose weights were changed with a digest of its new bytes (as a compiler that made it
    would), so that verify reaches the outputs instead of refusing a damaged file."""
    from export.package.stamp import stamped
    from export.quantize.keyed import read_manifest

    path.write_bytes(stamped(keyed, read_manifest(keyed, str(path)))[0])
