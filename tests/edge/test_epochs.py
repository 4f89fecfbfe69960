"""Key epochs: the device rebuilds only the sensor-dependent tables for a new epoch; the rest of the model,
and a split's task model, stay as compiled."""

from __future__ import annotations

import numpy as np
import pytest

from edge.epochs import EpochSchedule
from edge.errors import KeyMismatch, ModelError
from edge.runtime import KeyedModel, epoch_table
from edge.transform import AdcTransform
from firmware_sim.spec import DEFAULT_SPEC
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from tests.export.helpers import frames, plain_input, relative_error, session
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20, unet


def _measured(key, image, epoch):
    """A measured frame of ``image`` in key epoch ``epoch``, tagged with the key's fingerprint."""
    from edge.frame import Frame
    from edge.sensor import Readout

    height, width, _ = image.shape
    readout = Readout(key, DEFAULT_SPEC, height, width, sensor_order="rgb", source_order="rgb",
                      schedule=EpochSchedule(epoch))
    return readout.read(Frame(image, 0, 0, "test"))


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_a_model_rebuilt_for_another_epoch_equals_one_compiled_for_it(tmp_path, key, policy):
    plain = resnet20()
    options = KeyifyOptions(policy=policy, mean=CIFAR_MEAN, std=CIFAR_STD)
    save(keyify(plain, key, options), tmp_path / "e0.onnx")
    save(keyify(plain, key, KeyifyOptions(policy=policy, mean=CIFAR_MEAN, std=CIFAR_STD, epoch=7)), tmp_path / "e7.onnx")
    batch = frames(3, 32, 32, 3, seed=2)
    transform = AdcTransform(key)
    measured = np.stack([transform(f, 7) for f in batch])
    rebuilt = KeyedModel(tmp_path / "e0.onnx", key, epoch=7)
    assert rebuilt.epoch == 7 and rebuilt.rebuild_seconds > 0
    compiled = KeyedModel(tmp_path / "e7.onnx", key)
    got, want = rebuilt.run(measured)[0], compiled.run(measured)[0]
    assert np.array_equal(got, want)
    reference = session(plain, optimise=False).run(None, {"input": plain_input(batch, CIFAR_MEAN, CIFAR_STD)})[0]
    assert relative_error(got, reference) <= 1e-4
    with pytest.raises(KeyMismatch, match="epoch 0"):  # tagged measurements of the old epoch are refused
        rebuilt.run(_measured(key, batch[0], 0))
    assert relative_error(rebuilt.run(_measured(key, batch[0], 7))[0], got[:1]) <= 1e-5


@pytest.mark.parametrize("channel_order", ["rgb", "bgr"])
def test_a_table_of_code_indices_is_rebuilt_entry_for_entry(tmp_path, key, channel_order):
    """``boundary``'s natural-order table indexes codes (position·3 + channel, in the model's channel order): rebuilt
    from its recipe for epoch 7 it is, entry for entry, the table compiled for epoch 7, and the model runs as one."""
    from onnx import numpy_helper

    from firmware_sim.permutation import inverse_table, permutation_table

    options = dict(mean=CIFAR_MEAN, std=CIFAR_STD, channel_order=channel_order)
    at0 = keyify(resnet20(), key, KeyifyOptions(**options))
    at7 = keyify(resnet20(), key, KeyifyOptions(**options, epoch=7))
    (table,), (table7,) = at0.manifest.sensor_tables, at7.manifest.sensor_tables
    assert at0.manifest.table_groups == {table: 3}
    compiled = next(numpy_helper.to_array(i) for i in at7.model.graph.initializer if i.name == table7)
    inverse = inverse_table(permutation_table(key.sensor_key(32, 32, 7), 32 * 32))
    rebuilt = epoch_table(at0.epoch_recipes[table], inverse, 3)
    assert rebuilt.dtype == compiled.dtype and np.array_equal(rebuilt, compiled)
    save(at0, tmp_path / "e0.onnx")
    batch = frames(2, 32, 32, 3, seed=6)  # in the measurement's channel order
    measured = np.stack([AdcTransform(key)(f, 7) for f in batch])
    got = KeyedModel(tmp_path / "e0.onnx", key, epoch=7).run(measured)[0]
    rgb = batch[..., ::-1] if channel_order == "bgr" else batch
    reference = session(resnet20(), optimise=False).run(None, {"input": plain_input(rgb, CIFAR_MEAN, CIFAR_STD)})[0]
    assert relative_error(got, reference) <= 1e-4


def test_epoch_table_maps_positions_and_keeps_pad_rows():
    inverse = np.array([2, 0, 3, 1])  # natural a <- physical inverse[a], 4 positions
    assert epoch_table(np.array([0, 1, 2, 3, 4, 9], np.int32), inverse).tolist() == [2, 0, 3, 1, 4, 9]
    codes = np.array([[0, 3, 6, 9, 2, 5, 8, 11]], np.int32)  # position·3 + channel: channel 0, then channel 2
    assert epoch_table(codes, inverse, 3).tolist() == [[6, 0, 9, 3, 8, 2, 11, 5]]
    assert epoch_table(codes, inverse, 3).dtype == np.int32


def test_the_task_side_of_a_split_is_untouched_by_epochs(tmp_path, key):
    plain = resnet20()
    relu = [n.output[0] for n in plain.graph.node if n.op_type == "Relu"][8]
    keyed = keyify(plain, key, KeyifyOptions(mean=CIFAR_MEAN, std=CIFAR_STD, split_after=relu))
    save(keyed, tmp_path / "m.onnx")
    feature = KeyedModel(tmp_path / "m.feature.onnx", key, epoch=3)
    task = KeyedModel(tmp_path / "m.task.onnx", key)
    batch = frames(2, 32, 32, 3, seed=4)
    measured = np.stack([AdcTransform(key)(f, 3) for f in batch])
    logits = task.run(feature.run(measured)[0])[0]
    reference = session(plain, optimise=False).run(None, {"input": plain_input(batch, CIFAR_MEAN, CIFAR_STD)})[0]
    assert relative_error(logits, reference) <= 1e-4
    assert not keyed.task_manifest.sensor_tables


def test_rebuilding_needs_the_key_and_the_recipes(tmp_path, key):
    save(keyify(unet(), key, KeyifyOptions()), tmp_path / "u.onnx")
    with pytest.raises(KeyMismatch, match="needs its key"):
        KeyedModel(tmp_path / "u.onnx", None, epoch=2)
    (tmp_path / "u.epochs.npz").unlink()
    with pytest.raises(ModelError, match="keyify --epoch 2"):
        KeyedModel(tmp_path / "u.onnx", key, epoch=2)


def test_a_recording_across_epochs_replays_with_the_right_tables(tmp_path, key):
    """Measurements of epochs 0, 1 and 2 in one recording: replay rebuilds the tables per epoch.

    The trained Fashion-MNIST model on real test images, so that wrong tables would show in the answers.
    """
    import json

    import onnx

    from edge.lab.datasets import fashion_mnist
    from edge.default import ASSET, MEAN, SPEC, STD
    from edge.loop import CaptureLoop
    from edge.pipeline import Pipeline
    from edge.recording import Recorder
    from edge.sinks.results import ResultsSink
    from edge.sources.recording import RecordingSource

    plain = onnx.load(ASSET)
    save(keyify(plain, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD)), tmp_path / "m.onnx")
    batch = fashion_mnist("t10k")[0][:9]
    transform = AdcTransform(key, SPEC)
    with Recorder(tmp_path / "r.mcap", SPEC, key.fingerprint) as recorder:
        for i, frame in enumerate(batch):
            recorder.write(transform(frame, i // 3), epoch=i // 3, sequence=i, timestamp_ns=i)
    loop = CaptureLoop(RecordingSource(tmp_path / "r.mcap"), Pipeline(KeyedModel(tmp_path / "m.onnx", key), key),
                       [ResultsSink(tmp_path / "out.jsonl", include_latency=False)])
    assert loop.run().frames == 9
    results = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    reference = session(plain, optimise=False).run(None, {"input": plain_input(batch, MEAN, STD)})[0]
    assert [r["epoch"] for r in results] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    answers = [next(iter(r["outputs"].values())) for r in results]
    assert len(set(reference.argmax(1).tolist())) > 3  # a discriminating model: wrong tables would show
    assert [a["label"] for a in answers] == reference.argmax(1).tolist()
    shifted = np.exp(reference - reference.max(axis=1, keepdims=True))
    scores = (shifted / shifted.sum(axis=1, keepdims=True)).max(axis=1)
    assert np.allclose([a["score"] for a in answers], scores, atol=1e-4)


def test_rotation_every_n_frames_end_to_end(tmp_path):
    """keycam run with [readout] rotate_frames = 2: results carry epochs 0..2 and stay the same (the default job)."""
    import json

    from tests.inprocess import keycam  # in this process

    config = tmp_path / "rotate.toml"
    config.write_text("[readout]\nrotate_frames = 2\n")
    plain = keycam("run", cwd=tmp_path)
    rotated = keycam("run", "--config", str(config), cwd=tmp_path)
    assert plain.returncode == 0 and rotated.returncode == 0, rotated.stderr
    fixed = [json.loads(line) for line in plain.stdout.splitlines()]
    moving = [json.loads(line) for line in rotated.stdout.splitlines()]
    assert [r["epoch"] for r in moving] == [0, 0, 1, 1, 2]
    assert [r["outputs"] for r in moving] == [r["outputs"] for r in fixed]  # same answers in every epoch


def test_schedules():
    from edge.epochs import EpochSchedule
    from edge.errors import ConfigError

    assert [EpochSchedule(2, every_frames=3).epoch(i, 0) for i in range(7)] == [2, 2, 2, 3, 3, 3, 4]
    timed = EpochSchedule(0, every_seconds=1.5)  # by the time since the run's first frame
    assert [timed.epoch(i, t) for i, t in enumerate([0, 10**9, 15 * 10**8, 3 * 10**9])] == [0, 0, 1, 2]
    assert timed.epoch(4, -5 * 10**9) == 0  # before the first frame: never below the base
    with pytest.raises(ConfigError, match="not both"):
        EpochSchedule(0, every_frames=1, every_seconds=1)
    with pytest.raises(ConfigError, match="at least a nanosecond"):
        EpochSchedule(0, every_seconds=1e-300)


def test_the_readout_counts_seconds_from_its_first_frame_and_never_goes_back(key):
    """The sensor's clock starts at its first frame; a clock that jumps back reuses no old epoch."""
    from edge.frame import Frame
    from edge.sensor import Readout

    readout = Readout(key, DEFAULT_SPEC, 4, 4, schedule=EpochSchedule(5, every_seconds=1.0))
    image = np.zeros((4, 4, 3), np.uint8)
    stamps = [100 * 10**9, 101 * 10**9 + 1, 103 * 10**9, 40 * 10**9, 104 * 10**9]  # the clock jumps back, then on
    epochs = [readout.read(Frame(image, i, t, "t")).epoch for i, t in enumerate(stamps)]
    assert epochs == [5, 6, 8, 8, 9]
