"""Keyed models on the device: fingerprint checks, input checks, tagged measurements, restoring outputs."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edge.errors import KeyMismatch, ModelError
from edge.runtime import KeyedModel
from edge.epochs import EpochSchedule
from edge.transform import AdcTransform
from firmware_sim.spec import DEFAULT_SPEC
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from tests.export.helpers import frames, op_model, plain_input, session, weights


@pytest.fixture
def seg_model(tmp_path, key):
    """A tiny segmentation-style net (dense output) keyed with ``key``."""
    body = """  a = Conv <pads=[1,1,1,1]> (x, w0, b0)
  r = Relu(a)
  y = Conv <pads=[1,1,1,1]> (r, w1)
"""
    plain = op_model(body, ["N", 3, 12, 10], {"w0": weights(4, 3, 3, 3), "b0": weights(4), "w1": weights(2, 4, 3, 3)})
    onnx.save(plain, tmp_path / "plain.onnx")
    save(keyify(plain, key, KeyifyOptions(mean=(128.0,), std=(60.0,), epoch=3)), tmp_path / "keyed.onnx")
    return plain, tmp_path / "keyed.onnx"


def _measured(key, image, epoch):
    """A measured frame of ``image`` in key epoch ``epoch``, tagged with the key's fingerprint."""
    from edge.frame import Frame
    from edge.sensor import Readout

    height, width, _ = image.shape
    readout = Readout(key, DEFAULT_SPEC, height, width, sensor_order="rgb", source_order="rgb",
                      schedule=EpochSchedule(epoch))
    return readout.read(Frame(image, 0, 0, "test"))


def test_runs_a_frame_or_a_batch_and_restores_dense_outputs(seg_model, key):
    plain, path = seg_model
    model = KeyedModel(path, key, threads=1)
    batch = frames(3, 12, 10, 3, seed=1)
    transform = AdcTransform(key)
    measured = np.stack([transform(f, 3) for f in batch])
    outputs = model.run(measured)
    single = model.run(measured[0])
    assert np.array_equal(single[0], outputs[0][:1])
    restored = model.restore(outputs)[0]
    want = session(plain, optimise=False).run(None, {"x": plain_input(batch, (128.0,), (60.0,))})[0]
    assert np.max(np.abs(restored - want)) <= 1e-4 * np.max(np.abs(want))
    assert not np.allclose(outputs[0], want)  # the raw dense output is scrambled
    tagged = _measured(key, batch[0], 3)
    assert np.array_equal(model.run(tagged)[0], outputs[0][:1])


def test_wrong_key_is_caught_when_loading(seg_model, other_key, key):
    _, path = seg_model
    with pytest.raises(KeyMismatch, match=f"keyed for {key.fingerprint}, the key is {other_key.fingerprint}"):
        KeyedModel(path, other_key)


def test_measurements_of_another_key_or_epoch_are_refused(seg_model, key, other_key):
    _, path = seg_model
    model = KeyedModel(path, key)
    frame = frames(1, 12, 10, 3)[0]
    with pytest.raises(KeyMismatch, match="measured with key"):
        model.run(_measured(other_key, frame, 3))
    with pytest.raises(KeyMismatch, match="epoch 0"):
        model.run(_measured(key, frame, 0))


def test_inputs_are_checked(seg_model, key):
    _, path = seg_model
    model = KeyedModel(path, key)
    with pytest.raises(ModelError, match=r"shape \(N, 12, 10, 3\), got \(1, 10, 12, 3\)"):
        model.run(np.zeros((1, 10, 12, 3), np.uint8))
    with pytest.raises(ModelError, match="takes uint8 input, got float32"):
        model.run(np.zeros((1, 12, 10, 3), np.float32))


def test_plain_models_and_missing_files_are_clear_errors(tmp_path, seg_model, key):
    plain, _ = seg_model
    with pytest.raises(ModelError, match="not a keyed model"):
        KeyedModel(tmp_path / "plain.onnx", key)
    with pytest.raises(ModelError, match="does not exist"):
        KeyedModel(tmp_path / "absent.onnx", key)
    (tmp_path / "junk.onnx").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot be loaded"):
        KeyedModel(tmp_path / "junk.onnx", key)


def test_restore_needs_the_key(seg_model):
    _, path = seg_model
    model = KeyedModel(path)
    with pytest.raises(KeyMismatch, match="needs its key"):
        model.restore(model.run(np.zeros((1, 12, 10, 3), np.uint8)))
