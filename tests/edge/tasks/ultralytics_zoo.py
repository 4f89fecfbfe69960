"""Ultralytics' own exports of every task it has, and ultralytics' own ``predict`` on real photos, made in one child
process per call (for what the session has not made yet: both are shared, ``tests/shared_models.py``): the oracle
for the task decoders (tests/edge/tasks/test_ultralytics_*.py).

Each model is built from its architecture config (``YOLO("yolo11n-pose.yaml")``: random weights, nothing
downloaded, ``YOLO_OFFLINE=1`` and a settings folder of its own) and exported to ONNX at 320 x 320 as a user
would (``nms=False`` for the end-to-end heads of YOLOv10 and YOLO26). A random YOLO network scores every anchor at
its class prior (about 2e-4), so, as ``export.zoo.yolo`` does for YOLOv8n, the batch-norm statistics are
re-estimated on noise with gains of 0.85, the class prior is zeroed and the last layers of the class and box heads
are scaled: scores spread over (0.5, 1) and boxes differ; the mask prototypes' up-convolution becomes a nearest
upsampling (random, it draws a grid of dots, not regions), and the classifier's last layer is scaled (its
probabilities differ from photo to photo). RT-DETR is exported as built (its scores differ, about 0.03).

Then, per photo, ``YOLO(onnx, task=...).predict(photo, conf, iou, imgsz, max_det)`` runs twice: once to record the
input tensor ultralytics built (its LetterBox, or RT-DETR's stretch, or the classifier's resize and centre crop:
``AutoBackend.forward`` is wrapped to keep it), and once at a threshold chosen from the model's raw outputs on that
tensor, in the widest gap between the scores of the ``fewest``-th to ``most``-th best candidates, so that float
rounding cannot move a candidate across it (``tests.export.detection.score_threshold``). What it found is saved:
boxes (x0, y0, x1, y1, score, class), rotated boxes (cx, cy, w, h, theta, score, class) and their corners,
keypoints (x, y, visibility), masks scaled to the photo (``ops.scale_masks``) and their pixel counts at the model's
input size (over the picture, not the letterbox's padding), class probabilities.

The installed torchvision wheel is built for CUDA and cannot load its operators next to the CPU build of torch, and
ultralytics imports it to predict: the child defines torchvision's two NMS operator schemas before the import (which
is all the import needs) and puts ultralytics' own ``TorchNMS.nms`` ("matches torchvision behavior exactly") in the
place of ``torchvision.ops.nms``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from export.zoo.yolo import DETECTING
from tests.export.detection import require_ultralytics
from tests.shared_models import SharedModels

ROOT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True)
class Spec:
    yaml: str
    task: str
    nms: bool | None = None  # False: the end-to-end head (YOLOv10, YOLO26)
    rtdetr: bool = False
    detecting: bool = True  # the random network made to detect (see the module's notes)


SPECS = {
    "yolo11n": Spec("yolo11n.yaml", "detect"),
    "yolo11n-seg": Spec("yolo11n-seg.yaml", "segment"),
    "yolov8n-seg": Spec("yolov8n-seg.yaml", "segment"),  # no attention block: the fresh policy compiles it
    "yolo11n-pose": Spec("yolo11n-pose.yaml", "pose"),
    "yolo11n-obb": Spec("yolo11n-obb.yaml", "obb"),
    "yolo11n-cls": Spec("yolo11n-cls.yaml", "classify"),
    "yolov10n": Spec("yolov10n.yaml", "detect", nms=False),
    "yolo26n": Spec("yolo26n.yaml", "detect", nms=False),
    "yolo26n-pose": Spec("yolo26n-pose.yaml", "pose", nms=False),
    "yolo26n-seg": Spec("yolo26n-seg.yaml", "segment", nms=False),
    "yolo26n-obb": Spec("yolo26n-obb.yaml", "obb", nms=False),
    "rtdetr-l": Spec("rtdetr-l.yaml", "detect", rtdetr=True, detecting=False),
}

_CHILD = r'''
import json, shutil, sys
from pathlib import Path
import cv2, numpy as np, torch

_tv = torch.library.Library("torchvision", "DEF")  # the CUDA torchvision wheel's operators cannot load here
_tv.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
_tv.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import torchvision
from ultralytics import RTDETR, YOLO
from ultralytics.nn.autobackend import AutoBackend
from ultralytics.utils import ops
from ultralytics.utils.nms import TorchNMS
torchvision.ops.nms = TorchNMS.nms  # "matches torchvision behavior exactly"
import onnxruntime as ort

seen = {}
_forward = AutoBackend.forward
def _recording(self, im, *args, **kwargs):
    seen["input"] = im.detach().cpu().numpy().astype(np.float32).copy()
    return _forward(self, im, *args, **kwargs)
AutoBackend.forward = _recording

''' + DETECTING + r'''

def threshold(scores, fewest, most):
    best = np.sort(scores.ravel())[::-1][: most + 1]
    gaps = best[fewest - 1: most] - best[fewest: most + 1]
    k = fewest - 1 + int(np.argmax(gaps))
    return float((best[k] + best[k + 1]) / 2)

def scores_of(outputs, item, classes):
    head = outputs[0][0]
    if item["task"] == "classify":
        return None
    if head.shape[0] < head.shape[1]:  # anchors (4 + classes + extra, A)
        return head[4:4 + classes].max(axis=0)
    return head[:, 4]  # rows (K, 6 + extra) / RT-DETR's (K, 6)

def found(result, image, task):
    out = {}
    if task == "classify":
        out["probs"] = result.probs.data.numpy()
        return out
    if task == "obb":
        out["obb"] = result.obb.data.numpy()
        out["corners"] = result.obb.xyxyxyxy.numpy()
        return out
    out["boxes"] = result.boxes.data.numpy()
    if task == "pose":
        out["keypoints"] = result.keypoints.data.numpy()
    if task == "segment":
        masks = result.masks.data[None].float() if result.masks is not None else torch.zeros(1, 0, 8, 8)
        scaled = ops.scale_masks(masks, image.shape[:2])[0] > 0.5 if masks.shape[1] else torch.zeros(0, *image.shape[:2])
        out["masks"] = np.packbits(scaled.numpy().astype(bool), axis=-1)
        (h0, w0), (ih, iw) = image.shape[:2], masks.shape[2:]
        gain = min(ih / h0, iw / w0)  # the picture's part of the input, as scale_masks cuts it
        nh, nw = max(round(h0 * gain), 1), max(round(w0 * gain), 1)
        top, left = round((ih - nh) / 2 - 0.1), round((iw - nw) / 2 - 0.1)
        out["mask_pixels"] = masks[0][:, top:top + nh, left:left + nw].sum(dim=(1, 2)).numpy()
    return out

def replace(path, write):  # written beside, then renamed into place: a file that exists is complete
    partial = path.with_name(path.name + ".partial")
    with open(partial, "wb") as f:
        write(f)
    partial.replace(path)

job = json.loads(sys.argv[1])
for item in job["models"]:
    path, out = Path(item["path"]), Path(item["out"])
    maker = RTDETR if item["rtdetr"] else YOLO
    if not path.exists():
        torch.manual_seed(item["seed"])
        model = maker(item["yaml"])
        if item["detecting"]:
            detecting(model.model, job["imgsz"])
        extra = {} if item["nms"] is None else {"nms": item["nms"]}
        made = model.export(format="onnx", imgsz=job["imgsz"], verbose=False, **extra)
        shutil.move(made, path)
    model = RTDETR(str(path)) if item["rtdetr"] else YOLO(str(path), task=item["task"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    classes = len(model.names) if hasattr(model, "names") and model.names else 0
    saved, thresholds = {}, {}
    for frame in job["frames"]:
        image = cv2.imread(str(Path(job["frames_dir"]) / f"{frame}.png"), cv2.IMREAD_COLOR)
        ask = dict(iou=job["iou"], imgsz=job["imgsz"], max_det=job["max_det"], verbose=False)
        model.predict(image, conf=0.999, **ask)  # records the input tensor
        tensor = seen["input"]
        raw = session.run(None, {session.get_inputs()[0].name: tensor})
        scores = scores_of(raw, item, classes)
        conf = 0.25 if scores is None else threshold(scores, job["fewest"], job["most"])
        result = model.predict(image, conf=conf, **ask)[0]
        thresholds[frame] = conf
        saved[f"{frame}/input"] = tensor
        for name, value in found(result, image, item["task"]).items():
            saved[f"{frame}/{name}"] = value
    replace(out.with_suffix(".json"), lambda f: f.write(json.dumps({"thresholds": thresholds}).encode()))
    replace(out.with_suffix(".npz"), lambda f: np.savez_compressed(f, **saved))
'''


@dataclass
class Frame:
    """One photo as ultralytics saw it, and what ultralytics' predict found in it."""

    image: np.ndarray  # the photo (BGR), its own size
    input: np.ndarray  # (1, 3, H, W) float32: the tensor ultralytics built and ran the model on
    threshold: float  # the score threshold both ultralytics and keycam were given
    found: dict[str, np.ndarray]  # boxes, obb, corners, keypoints, masks (bool, the photo's size), mask_pixels, probs


@dataclass
class Predicted:
    path: Path
    frames: dict[str, Frame]


def predict(shared: SharedModels, names: list[str], photos: dict[str, np.ndarray], imgsz: int = 320,
            iou: float = 0.7, max_det: int = 100, fewest: int = 8, most: int = 40, seed: int = 0,
            timeout: float = 900) -> dict:
    """``{name: Predicted}``: each model of ``SPECS`` exported and ultralytics' predict on each photo (BGR, by
    name), both made at most once per session and shared (``shared``, the ``shared_models`` fixture): the exports
    in a folder named by this module's recipe (the child's code: its weight tweaks), ``imgsz``, ``seed`` and the
    installed versions, one file per name (a name is one ``Spec``); what predict found in a folder named by that
    one, the photos and predict's settings. Read the files, never write beside them."""
    require_ultralytics()
    recipe = hashlib.sha256(_CHILD.encode()).hexdigest()
    pictures = hashlib.sha256()
    for name, image in photos.items():
        pictures.update(f"{name} {image.shape} {image.dtype}".encode())
        pictures.update(np.ascontiguousarray(image).tobytes())
    with shared.folder("ultralytics-zoo", recipe=recipe, imgsz=imgsz, seed=seed) as exports, \
            shared.folder("ultralytics-predict", exports=exports.name, photos=pictures.hexdigest(), iou=iou,
                          max_det=max_det, fewest=fewest, most=most) as folder:
        todo = [name for name in names if not _found(folder / name).exists()]
        if todo:
            frames_dir = folder / "frames"
            frames_dir.mkdir(exist_ok=True)
            for name, image in photos.items():
                cv2.imwrite(str(frames_dir / f"{name}.png"), image)
            models = [{"path": str(exports / f"{name}.onnx"), "out": str(folder / name), "yaml": SPECS[name].yaml,
                       "task": SPECS[name].task, "nms": SPECS[name].nms, "rtdetr": SPECS[name].rtdetr,
                       "detecting": SPECS[name].detecting, "seed": seed} for name in todo]
            job = {"models": models, "frames": list(photos), "frames_dir": str(frames_dir), "imgsz": imgsz,
                   "iou": iou, "max_det": max_det, "fewest": fewest, "most": most}
            env = dict(os.environ, YOLO_OFFLINE="1", YOLO_VERBOSE="False", YOLO_CONFIG_DIR=str(folder / "settings"),
                       PYTHONPATH=str(ROOT))
            done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(job)], cwd=folder, env=env,
                                  capture_output=True, text=True, timeout=timeout)
            if done.returncode != 0:
                raise RuntimeError(f"ultralytics could not export or predict: {' '.join(done.stderr.split()[-80:])}")
        return {name: _load(exports / f"{name}.onnx", folder / name, photos) for name in names}


def _found(out: Path) -> Path:
    return out.with_suffix(".npz")  # written last: the thresholds (.json) are there too


def _load(path: Path, out: Path, photos: dict[str, np.ndarray]) -> Predicted:
    stored = np.load(_found(out))
    thresholds = json.loads(out.with_suffix(".json").read_text())["thresholds"]
    frames = {}
    for name, image in photos.items():
        found = {key.split("/", 1)[1]: stored[key] for key in stored.files if key.startswith(f"{name}/")}
        tensor = found.pop("input")
        if "masks" in found:
            found["masks"] = np.unpackbits(found["masks"], axis=-1, count=image.shape[1]).astype(bool)
        frames[name] = Frame(image, tensor, thresholds[name], found)
    return Predicted(path, frames)


def photos(square: bool = True) -> dict[str, np.ndarray]:
    """scikit-image's photographs (BGR): the astronaut and the cameraman (512 x 512), the coffee cup and the cat
    cropped square (400 x 400, 300 x 300); ``square=False``: the coffee cup (600 x 400) and the rocket (427 x 640) as
    they are."""
    import skimage.data

    def bgr(picture: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(picture, cv2.COLOR_GRAY2BGR if picture.ndim == 2 else cv2.COLOR_RGB2BGR)

    if not square:
        return {"coffee-wide": bgr(skimage.data.coffee()), "rocket": bgr(skimage.data.rocket())}
    return {"astronaut": bgr(skimage.data.astronaut()), "camera": bgr(skimage.data.camera()),
            "coffee": bgr(skimage.data.coffee()[:, 100:500]), "chelsea": bgr(skimage.data.chelsea()[:, 75:375])}
