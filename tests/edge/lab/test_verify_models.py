"""keycam verify on real exports: exact where the compiler is exact, under the batch each model fixes, raw outputs and
decoded answers; not exact on a perturbed keyed model, with the reason.

The models, made once per session in one child process (PyTorch and ultralytics are test extras, and a child keeps
their global state out of this one; nothing is downloaded) and shared (``tests/shared_models.py``; this module
copies them into a folder of its own, where it keys them):

- ultralytics 8.4's own ONNX exports from their architecture files, at 160 x 160: YOLOv8n with a fixed batch
  (ultralytics' default) and a dynamic one, YOLO11n-seg, -pose, -obb and -cls (fixed batch). Random weights, made
  to detect as ``export.zoo.yolo`` does (batch-norm statistics re-estimated on noise, gains 0.85, class prior
  zeroed, heads scaled): hundreds of detections over the photos, not one prior score everywhere;
- a ResNet-style classifier written in PyTorch (torchvision's BasicBlock layout: a 7x7 stem, max-pooling,
  residual blocks, global pooling, a linear layer) exported with ``torch.onnx.export`` at a fixed batch of 2, so
  the last batch of five photos is padded (torchvision itself is installed beside ultralytics but cannot be
  imported here: its compiled operators do not match this torch);
- keycam's own face detector (``edge.faces.face_model()``, a fixed-batch TFLite conversion with trained weights),
  keyed as ``edge.default`` keys it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edge.lab.demo import shipped_photo
from edge.lab.verify import list_images, verify
from edge.tasks import TaskConfig
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from tests.edge.lab.verifying import lines as _lines
from tests.export.detection import require_ultralytics
from tests.inprocess import keycam
from tests.shared_models import digest, private_copy

IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left")
# name -> (architecture file, dynamic batch, export options); simplify=False: onnxslim's pass costs seconds and
# changes nothing verify looks at (YOLOv8n keeps ultralytics' default, simplified)
YOLOS = {
    "yolov8n-fixed": ("yolov8n.yaml", False, {}),
    "yolov8n-dynamic": ("yolov8n.yaml", True, {}),
    "yolo11n-seg": ("yolo11n-seg.yaml", False, {"simplify": False}),
    "yolo11n-pose": ("yolo11n-pose.yaml", False, {"simplify": False}),
    "yolo11n-obb": ("yolo11n-obb.yaml", False, {"simplify": False}),
    "yolo11n-cls": ("yolo11n-cls.yaml", False, {"simplify": False}),
}
SLOW_YOLOS = {"yolov10n-end2end": ("yolov10n.yaml", False, {"simplify": False, "nms": False}),  # (1, 300, 6)
              "rtdetr-l": ("rtdetr-l.yaml", False, {"simplify": False})}  # (1, 300, 84): TopK of near-ties

_CHILD = r"""
import json, shutil, sys
import torch
from torch import nn

def detecting(net, imgsz):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(4, 3, imgsz, imgsz))
    net.eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.mul_(0.85)
        head = net.model[-1]
        for name in ("cv3", "one2one_cv3"):  # class scores: no prior, spread over (0.5, 1)
            for branch in getattr(head, name, None) or []:
                branch[-1].bias.zero_()
                branch[-1].weight.mul_(3.0)
        for name in ("cv2", "one2one_cv2"):  # box distributions less flat: boxes differ
            for branch in getattr(head, name, None) or []:
                branch[-1].weight.mul_(2.0)
        if hasattr(head, "linear"):  # a classifier's logits spread
            head.linear.weight.mul_(30.0)

class Block(nn.Module):  # torchvision's BasicBlock
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.down = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))

def resnet(path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1),
                        Block(16, 16, 1), Block(16, 32, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))
    partial = path + ".partial"  # renamed into place: a file that exists is complete
    torch.onnx.export(net.eval(), torch.rand(2, 3, 64, 64), partial, dynamo=False, input_names=["input"],
                      output_names=["logits"], opset_version=17)
    shutil.move(partial, path)

for item in json.loads(sys.argv[1]):
    if item["yaml"] == "torch-resnet":
        resnet(item["path"])
        continue
    from ultralytics import RTDETR, YOLO
    torch.manual_seed(0)
    yolo = (RTDETR if item["yaml"].startswith("rtdetr") else YOLO)(item["yaml"])
    detecting(yolo.model, item["imgsz"])
    made = yolo.export(format="onnx", imgsz=item["imgsz"], dynamic=item["dynamic"], verbose=False, **item["options"])
    shutil.move(made, item["path"])
"""


def _export(shared_models, folder, models: dict) -> None:
    """``folder / NAME.onnx`` for each model: a copy of the session's shared export (made there once, named by this
    module's recipe, the architecture file, batch and export options), as the tests key models beside it."""
    require_ultralytics()
    with shared_models.folder("verify-exports", recipe=hashlib.sha256(_CHILD.encode()).hexdigest(),
                              imgsz=160) as made:
        files = {name: made / f"{Path(yaml).stem}-{'dynamic' if dynamic else 'fixed'}-{digest(options)}.onnx"
                 for name, (yaml, dynamic, options) in models.items()}
        todo = [{"yaml": yaml, "dynamic": dynamic, "options": options, "imgsz": 160, "path": str(files[name])}
                for name, (yaml, dynamic, options) in models.items() if not files[name].exists()]
        if todo:
            env = dict(os.environ, YOLO_OFFLINE="1", YOLO_VERBOSE="False", YOLO_CONFIG_DIR=str(made / "settings"))
            done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(todo)], cwd=made, env=env,
                                  capture_output=True, text=True, timeout=600)
            assert done.returncode == 0, done.stderr[-3000:]
    private_copy({f"{name}.onnx": file for name, file in files.items()}, folder)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, shared_models):
    folder = tmp_path_factory.mktemp("exports")
    _export(shared_models, folder, YOLOS | {"torch-resnet": ("torch-resnet", False, {})})
    return folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        cv2.imwrite(str(folder / f"{name}.png"), cv2.imread(str(shipped_photo(name))))
    return list_images(folder)


def _keyed(plain, key, policy, **options):
    target = plain.with_name(f"{plain.stem}.{policy}.keyed.onnx")
    if not target.exists():
        save(keyify(plain, key, KeyifyOptions(policy=policy, **options)), target)
    return target


CASES = [("yolov8n-fixed", "boundary"), ("yolov8n-fixed", "fresh"), ("yolov8n-dynamic", "boundary"),
         ("yolov8n-dynamic", "fresh"), ("yolo11n-seg", "boundary"), ("yolo11n-pose", "boundary"),
         ("yolo11n-obb", "boundary"), ("yolo11n-cls", "boundary"), ("torch-resnet", "boundary"),
         ("torch-resnet", "fresh")]  # YOLO11's attention blocks are not keyed under fresh (the compiler refuses them)


@pytest.mark.parametrize("name, policy", CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_verify_says_exact_on_real_exports(exports, photos, key, name, policy):
    plain = exports / f"{name}.onnx"
    torch_made = name.startswith("torch")
    options = {"mean": IMAGENET_MEAN, "std": IMAGENET_STD} if torch_made else {"std": (255.0,)}  # pixels / 255
    keyed = _keyed(plain, key, policy, size=(160, 160) if name.endswith("dynamic") else None, **options)
    # the instance decoder's masks cost a second a frame at 0.5 here (hundreds of random detections): fewer of them
    settings = TaskConfig(score_threshold=0.7) if name.endswith("seg") else None
    report = verify(plain, keyed, key, photos, settings=settings)
    text = "\n".join(f"{column:<13} {line}" for column, line in report.lines())
    assert report.exact and report.images == len(PHOTOS), text
    assert (report.batch, report.fixed_batch) == ((8, False) if name.endswith("dynamic") else
                                                  (2 if torch_made else 1, True)), text
    assert report.max_rel_diff <= 1e-4 and report.lines()[-1][1].startswith("exact"), text
    kinds = {check.kind: check for check in report.answers}
    if name.startswith("yolov8n"):  # decoded, as sets, and hundreds of detections to match
        assert kinds["detections"].sets and kinds["detections"].compared > 50 and not kinds["detections"].flips, text
        assert kinds["counts"].compared == len(PHOTOS), text
    elif name.endswith("cls") or torch_made:  # a classifier's top-1 on every photo
        assert report.agreement == 1.0 and sum(c.compared for c in report.answers) == len(PHOTOS), text
    else:  # decoded where a decoder reads the task's outputs, raw only (and said so) where none does
        assert report.answers or report.not_decoded, text
        if "detections" in kinds:
            assert kinds["detections"].compared > 10, text


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    from edge.errors import ModelError
    from edge.faces import face_model

    try:
        return face_model()
    except ModelError as error:
        pytest.skip(str(error))


def _face_keyed(detector, key, policy, folder, shared_models):
    from edge.faces import LABELS, MEAN, SPEC, STD

    target = folder / f"face-{policy}.onnx"
    if not target.exists():  # keyed as edge.default keys it (once per session: ``shared_models``)
        options = KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, policy=policy, task="detect", labels=tuple(LABELS))
        save(shared_models.keyified(detector, key, options), target)
    return target


@pytest.mark.parametrize("policy", ["boundary", "fresh"])
def test_verify_says_exact_on_the_face_detector_and_finds_the_faces(faces, photos, key, policy, tmp_path,
                                                                    shared_models):
    from edge.faces import task_settings

    report = verify(faces, _face_keyed(faces, key, policy, tmp_path, shared_models), key, photos,
                    settings=task_settings())
    text = "\n".join(f"{column:<13} {line}" for column, line in report.lines())
    assert report.exact and (report.batch, report.fixed_batch) == (1, True), text
    detections = {check.kind: check for check in report.answers}["detections"]
    assert detections.compared >= 2 and detections.agreed == detections.compared, text  # real faces, keypoints too


def test_a_perturbed_face_detector_is_not_exact_and_says_where(faces, photos, key, tmp_path, shared_models):
    """One weight initializer of the keyed model 1 % larger: the raw output and the decoded boxes say so (decoded
    with the detector's own [task] settings, given as a configuration file)."""
    keyed = onnx.load(_face_keyed(faces, key, "boundary", tmp_path, shared_models))
    convs = [t for t in keyed.graph.initializer if t.data_type == onnx.TensorProto.FLOAT and len(t.dims) == 4]
    regressor = [t for t in convs if t.dims[0] in (32, 96)][-1]  # a box head's weights (2 or 6 anchors x 16)
    regressor.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(regressor) * np.float32(1.01), regressor.name))
    _restamp(keyed, tmp_path / "perturbed.onnx")
    config = tmp_path / "faces.toml"
    config.write_text('[task]\nkind = "detect"\ndecoder = "ssd"\nscore_threshold = 0.5\niou_threshold = 0.3\n')
    done = keycam("verify", faces, tmp_path / "perturbed.onnx", "--key", _key_file(key, tmp_path), "--images",
                  photos[0].parent, "--config", config)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = _lines(done)
    assert lines["answers"].startswith("detect: ssd decoder (score_threshold 0.5, iou_threshold 0.3"), done.stdout
    assert lines["raw regressors"].endswith("NOT EXACT"), done.stdout
    assert "NOT EXACT" in lines["detections"] and "coordinates" in lines["detections"], done.stdout
    assert lines["verdict"].startswith("NOT EXACT (raw regressors"), done.stdout


def _key_file(key, folder):
    path = folder / "test.key"
    if not path.exists():
        key.save(path)
    return path


def test_the_command_on_a_fixed_batch_export_and_mismatched_pairs_refused_in_one_line(exports, photos, key,
                                                                                       tmp_path):
    keyfile, images = _key_file(key, tmp_path), photos[0].parent
    fixed = _keyed(exports / "yolov8n-fixed.onnx", key, "boundary", std=(255.0,))
    done = keycam("verify", exports / "yolov8n-fixed.onnx", fixed, "--key", keyfile, "--images", images)
    assert done.returncode == 0 and done.stderr == "", done.stdout + done.stderr
    lines = _lines(done)
    assert lines["images"] == f"{len(PHOTOS)}, framed by letterbox (batches of 1: the model's fixed batch)"
    assert lines["answers"].startswith("detect: yolo decoder (score_threshold 0.5, iou_threshold 0.45")
    assert "matched by class and box, as sets" in lines["detections"] and lines["verdict"] == "exact"
    refused = keycam("verify", exports / "yolov8n-fixed.onnx", fixed, "--key", keyfile, "--images", images,
                     "--batch", "4")
    assert refused.returncode == 1 and "takes batches of 1 (its fixed batch)" in refused.stderr
    pose = _keyed(exports / "yolo11n-pose.onnx", key, "boundary", std=(255.0,))
    for plain, keyed, why in [(exports / "yolov8n-dynamic.onnx", fixed, "has sha256"),
                              (exports / "yolo11n-seg.onnx", pose, "has outputs output0, output1"),
                              (exports / "yolo11n-obb.onnx", pose, "gives output0 of shape (1, 85, 525)")]:
        done = keycam("verify", plain, keyed, "--key", keyfile, "--images", images)
        assert done.returncode == 1 and done.stdout == "" and "Traceback" not in done.stderr, done.stderr
        (line,) = done.stderr.strip().splitlines()
        assert line.startswith("keycam verify: error: plain model ") and why in line, line


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_YOLOS))
def test_an_end_to_end_head_verifies_raw_and_its_rows_as_a_set(exports, photos, key, name, shared_models):
    """YOLOv10n's NMS-free head (1, 300, 6) and RT-DETR-l's (1, 300, 84): TopK inside the model, whose near-tied
    rows may come back in another order from the keyed model (RT-DETR's do here: a few of 300 rows); they are
    compared as a set of rows, and the report says how many moved. Answers decoded by the end-to-end decoder
    (a low score threshold: random weights score low)."""
    _export(shared_models, exports, {name: SLOW_YOLOS[name]})
    plain = exports / f"{name}.onnx"
    decoder = "rtdetr" if name.startswith("rtdetr") else "auto"  # RT-DETR's boxes are normalised: say so
    report = verify(plain, _keyed(plain, key, "boundary", std=(255.0,)), key, photos,
                    settings=TaskConfig(score_threshold=0.05, decoder=decoder))
    text = "\n".join(f"{column:<13} {line}" for column, line in report.lines())
    assert report.exact and report.raw_exact, text
    (raw,) = report.outputs
    assert raw.moved == 0 or "rows in another order (near-tied top-k)" in raw.line()[1], text
    assert not report.refused and {check.kind: check for check in report.answers}["detections"].compared, text


def _restamp(keyed, path):
    """Write a keyed model whose weights were changed with a digest of its new bytes (as a compiler that made it
    would), so that verify reaches the outputs instead of refusing a damaged file."""
    from export.package.stamp import stamped
    from export.quantize.keyed import read_manifest

    path.write_bytes(stamped(keyed, read_manifest(keyed, str(path)))[0])
