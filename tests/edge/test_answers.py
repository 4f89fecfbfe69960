"""The one answer stage (edge.answers): dense outputs are restored in the frame's own key epoch, whichever path
answers the frame: locally, through a split's task model, or through a server.

The model is an image-to-image network of two 1x1 convolutions: under `fresh` its output keeps the sensor's
layout class, so the restore must use the layout of the epoch each frame was read out in (a model with no sensor
table reads every epoch as it is). Under `boundary` every output is plain. The runs rotate the key epoch on every
frame, and every answer must equal the plain model's on the plain frame.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edge.answers import Answers
from edge.config import Config
from edge.epochs import EpochSchedule
from edge.errors import ConfigError, FrameError
from edge.frame import Frame
from edge.job import build_job
from edge.runtime import KeyedModel
from edge.sensor import Readout, to_sensor
from edge.sources.folder import FolderConfig
from edge.tasks import Geometry, TaskConfig, make_decoder
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.package.triton import export_triton
from firmware_sim.spec import DEFAULT_SPEC
from tests.edge.servers import ThreadServer
from tests.export.helpers import plain_input, relative_error, session

SIZE, CLASSES, FRAMES = 16, 5, 5
MEAN, STD = (120.0, 110.0, 100.0), (60.0, 50.0, 70.0)
SPLIT = "hidden"  # the first convolution's output: the features leave in the sensor's layout class


def _image_model() -> onnx.ModelProto:
    """(N, 3, 16, 16) -> 1x1 conv (4) -> Relu -> 1x1 conv (5): a class map with the input's positions."""
    rng = np.random.default_rng(11)
    first = numpy_helper.from_array(rng.normal(size=(4, 3, 1, 1)).astype(np.float32), "w1")
    second = numpy_helper.from_array(rng.normal(size=(CLASSES, 4, 1, 1)).astype(np.float32), "w2")
    bias = numpy_helper.from_array(rng.normal(size=(CLASSES,)).astype(np.float32), "b2")
    nodes = [helper.make_node("Conv", ["input", "w1"], [SPLIT], name="conv1"),
             helper.make_node("Relu", [SPLIT], ["act"], name="relu"),
             helper.make_node("Conv", ["act", "w2", "b2"], ["map"], name="conv2")]
    graph = helper.make_graph(nodes, "image-to-image",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, 3, SIZE, SIZE])],
                              [helper.make_tensor_value_info("map", TensorProto.FLOAT, [None, CLASSES, SIZE, SIZE])],
                              [first, second, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """{policy: folder} with m.onnx (whole) and s.feature.onnx / s.task.onnx (split after the first conv), and
    the frames: five random pictures, as OpenCV writes them (B, G, R)."""
    import hashlib

    from firmware_sim.keys import MasterKey

    key = MasterKey(hashlib.sha256(b"keycam tests").digest())
    root = tmp_path_factory.mktemp("answers")
    key.save(root / "k.key")
    frames = root / "frames"
    frames.mkdir()
    rng = np.random.default_rng(3)
    for i in range(FRAMES):
        cv2.imwrite(str(frames / f"f{i}.png"), rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    folders = {}
    for policy in ("fresh", "boundary"):
        folder = root / policy
        folder.mkdir()
        options = dict(policy=policy, mean=MEAN, std=STD, task="segment")
        save(keyify(_image_model(), key, KeyifyOptions(**options)), folder / "m.onnx")
        # no layer of this model mixes positions: its split hands over the picture, said so explicitly here
        save(keyify(_image_model(), key, KeyifyOptions(**options, split_after=SPLIT, split_reveals_picture=True)),
             folder / "s.onnx")
        folders[policy] = folder
    return root, key, folders


def _plain_answers(root: Path) -> list[dict]:
    """The plain model's answer for each frame: the same decoder over the plain output on the plain frame."""
    plain = session(_image_model(), optimise=False)
    manifest = KeyedModel(root / "boundary" / "m.onnx").manifest
    decoder = make_decoder(TaskConfig(), manifest)
    answers = []
    for path in sorted((root / "frames").glob("*.png")):
        picture = to_sensor(cv2.imread(str(path)), DEFAULT_SPEC, SIZE, SIZE, "bgr", "rgb")  # (H, W, 3) RGB
        output = plain.run(None, {"input": plain_input(picture[np.newaxis], MEAN, STD)})[0]
        answers.append(decoder.decode([output], Geometry.of(SIZE, SIZE, (SIZE, SIZE))))
    return answers


def _config(root: Path, results: Path, model: Path, task: Path | None = None) -> Config:
    config = Config()
    config.source = FolderConfig(path=root / "frames")
    config.model.path, config.model.key = str(model), str(root / "k.key")
    config.model.task = str(task) if task else ""
    config.readout.rotate_frames = 1  # a new key epoch for every frame
    config.results.path = str(results)
    return config


def _answers(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _same(got: list[dict], want: list[dict]) -> None:
    assert [r["epoch"] for r in got] == list(range(FRAMES))  # rotated on every frame
    assert [r["outputs"] for r in got] == want


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_a_dense_output_is_restored_in_the_frames_own_epoch(compiled, policy):
    root, key, folders = compiled
    compiled_model = KeyedModel(folders[policy] / "m.onnx", key)
    assert compiled_model.epoch_free == (policy == "fresh")  # fresh: no sensor table, every epoch read as it is
    answers = Answers(compiled_model.manifest, make_decoder(TaskConfig(), compiled_model.manifest), key)
    plain = session(_image_model(), optimise=False)
    picture = np.random.default_rng(5).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    for epoch in (0, 1, 7):
        model = KeyedModel(folders[policy] / "m.onnx", key, epoch=epoch)  # boundary: its table rebuilt for it
        readout = Readout(key, DEFAULT_SPEC, SIZE, SIZE, sensor_order="rgb", source_order="rgb",
                          schedule=EpochSchedule(epoch))
        frame = readout.read(Frame(picture, 0, 0, "test"))
        assert frame.epoch == epoch
        restored = answers.restore(model.named(model.run(frame)), frame)["map"]
        want = plain.run(None, {"input": plain_input(picture[np.newaxis], MEAN, STD)})[0]
        assert relative_error(restored, want) <= 1e-5, (policy, epoch)


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
def test_a_run_rotating_every_frame_answers_as_the_plain_model(compiled, tmp_path, policy, split):
    root, key, folders = compiled
    folder = folders[policy]
    if split:
        config = _config(root, tmp_path / "r.jsonl", folder / "s.feature.onnx", folder / "s.task.onnx")
    else:
        config = _config(root, tmp_path / "r.jsonl", folder / "m.onnx")
    build_job(config, replay=True).run()
    _same(_answers(tmp_path / "r.jsonl"), _plain_answers(root))


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
@pytest.mark.parametrize("split", [False, True], ids=["measurements", "features"])
def test_a_forwarding_run_rotating_every_frame_answers_as_the_plain_model(compiled, tmp_path, policy, split):
    """The server answers; the device restores the server's outputs in each frame's own epoch, as it would its own."""
    root, key, folders = compiled
    folder = folders[policy]
    repo = tmp_path / "repo"
    export_triton(folder / ("s.task.onnx" if split else "m.onnx"), repo, "image")
    config = _config(root, tmp_path / "r.jsonl", folder / "s.feature.onnx") if split else \
        _config(root, tmp_path / "r.jsonl", folder / "m.onnx")
    if not split:
        config.model.path = ""  # forward the measurements themselves
    config.forward.url, config.forward.model, config.forward.spool = "", "image", str(tmp_path / "spool")
    with ThreadServer(repo) as server:
        config.forward.url = server.url
        if policy == "boundary" and not split:  # its sensor table would have to be rebuilt on the server
            with pytest.raises(ConfigError, match="key rotation with forwarded measurements"):
                build_job(config, replay=True)
            return
        job = build_job(config, replay=True)
        job.run()
    assert job.sinks[0].stats.answered == FRAMES
    _same(_answers(tmp_path / "r.jsonl"), _plain_answers(root))


def test_an_answer_that_does_not_fit_the_manifest_is_that_frames_error(compiled):
    root, key, folders = compiled
    model = KeyedModel(folders["fresh"] / "m.onnx", key)
    answers = Answers(model.manifest, make_decoder(TaskConfig(), model.manifest), key)
    frame = Frame(None, 3, 0, "server", measured=True)
    with pytest.raises(FrameError, match="has no output 'map'"):
        answers({"other": np.zeros((1, CLASSES, SIZE, SIZE), np.float32)}, frame)
    with pytest.raises(FrameError, match=r"output 'map' has shape \[1, 5, 16\], and the model's manifest says"):
        answers({"map": np.zeros((1, CLASSES, SIZE), np.float32)}, frame)
    with pytest.raises(FrameError, match=r"has shape \[0, 5, 16, 16\]"):
        answers({"map": np.zeros((0, CLASSES, SIZE, SIZE), np.float32)}, frame)
