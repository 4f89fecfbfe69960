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
