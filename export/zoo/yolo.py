"""YOLOv8n as ultralytics itself exports it to ONNX, from its architecture config: random weights, no download.

:func:`export_yolov8n` runs ``YOLO("yolov8n.yaml").export(format="onnx", imgsz=..., dynamic=...)`` in a child
process: PyTorch and ultralytics are test extras, never dependencies of the compiler, and the child keeps their
global state (thread settings, a settings file) out of the caller. ``YOLO_OFFLINE=1`` and a settings folder of
its own beside the models: nothing is downloaded (no weights, no fonts).

What ultralytics 8.4 writes (``docs/compiler.md``, "Detectors"): input ``images`` (1, 3, H, W) float in [0, 1]
(``dynamic=True``: batch, height and width symbolic); output ``output0`` (N, 4 + classes, anchors), anchors =
H*W/8^2 + H*W/16^2 + H*W/32^2 (2100 at 320x320), rows cx, cy, w, h in input pixels then the class scores
(sigmoid); metadata ``task``, ``names`` (a dict as a string), ``stride``, ``imgsz``, ``batch``, ...

``detecting=True`` (the default) makes the random network detect: its default initialisation shrinks the
activations layer by layer, which leaves every score at the class prior (about 1e-5) and every box alike, so
NMS would only break ties. Before the export the batch-norm statistics are re-estimated on noise, their gains
scaled by ``gain`` (0.85: at 1 the random network amplifies a float rounding of its input, 1e-7, to 0.3 px in
the boxes, at 0.85 to 3e-4 px, and below 0.8 its outputs hardly depend on the picture, so that neighbouring
anchors tie), the class prior zeroed and the last layers of the class and box heads scaled by
``class_scale`` and ``box_scale``: scores spread over (0.5, 1), boxes differ. The exported graph is the same
either way.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

PINNED = "ultralytics==8.4.190"  # what scripts/setup-venv.sh installs for the tests

# The recipe above for any ultralytics network (detect, segment, pose, obb, YOLOv10's one-to-one head, a
# classifier's last linear layer), as source text for the child processes that build them: the decoder tests
# (tests/edge/tasks/ultralytics_zoo.py) and benchmarks/model_families.py. A child defines it by running this text.
DETECTING = r'''
def detecting(net, imgsz, gain=0.85, class_scale=3.0, box_scale=2.0, linear_scale=20.0):
    with torch.no_grad():
        for m in net.modules():  # the mask prototypes' 2x up-convolution made a nearest upsampling
            if isinstance(m, torch.nn.ConvTranspose2d) and m.in_channels == m.out_channels:
                m.weight.copy_(torch.eye(m.in_channels)[:, :, None, None].expand_as(m.weight))
                m.bias.zero_()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.rand(4, 3, imgsz, imgsz))
    net.eval()
    head = net.model[-1]
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.mul_(gain)
        for name in ("cv3", "one2one_cv3"):
            for branch in getattr(head, name, None) or []:
                branch[-1].bias.zero_()
                branch[-1].weight.mul_(class_scale)
        for name in ("cv2", "one2one_cv2"):
            for branch in getattr(head, name, None) or []:
                branch[-1].weight.mul_(box_scale)
        if isinstance(getattr(head, "linear", None), torch.nn.Linear):  # a classifier: logits that differ
            head.linear.weight.mul_(linear_scale)
'''

_CHILD = r"""
import json, shutil, sys
import torch
from ultralytics import YOLO

for item in json.loads(sys.argv[1]):
    torch.manual_seed(item["seed"])
    yolo = YOLO("yolov8n.yaml")
    if item["detecting"]:
        net = yolo.model
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # a cumulative average over the calibration batches
        net.train()
        with torch.no_grad():
            for _ in range(2):
                net(torch.rand(4, 3, *item["imgsz"]))
        net.eval()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.weight.mul_(item["gain"])  # below 1: float rounding is not amplified layer after layer
            for head in net.model[-1].cv3:
                head[-1].bias.zero_()  # no class prior
                head[-1].weight.mul_(item["class_scale"])  # scores spread over (0.5, 1)
            for head in net.model[-1].cv2:
                head[-1].weight.mul_(item["box_scale"])  # distance distributions less flat: boxes differ
    made = yolo.export(format="onnx", imgsz=item["imgsz"], dynamic=item["dynamic"], simplify=item["simplify"],
                       verbose=False)
    shutil.move(made, item["path"])
"""


def available() -> bool:
    """ultralytics and PyTorch are installed (scripts/setup-venv.sh installs them for the tests on x86_64)."""
    return importlib.util.find_spec("ultralytics") is not None and importlib.util.find_spec("torch") is not None


def yolo_path(folder: Path, imgsz: tuple[int, int], dynamic: bool, detecting: bool = True,
              simplify: bool = True) -> Path:
    kind = ("dynamic" if dynamic else "fixed") + ("" if detecting else "-pristine") + ("" if simplify else "-raw")
    return Path(folder) / f"yolov8n-{imgsz[0]}x{imgsz[1]}-{kind}.onnx"


def export_yolov8n(folder: str | Path, variants: list[tuple[tuple[int, int], bool]], detecting: bool = True,
                   simplify: bool = True, seed: int = 0, timeout: float = 600, gain: float = 0.85,
                   class_scale: float = 3.0, box_scale: float = 2.0) -> list[Path]:
    """Export each (imgsz (H, W), dynamic) variant once into ``folder`` (kept: a later call finds it there).

    ``simplify``: ultralytics' default, onnxslim (when installed) simplifies the graph; False: as exported."""
    import json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = [yolo_path(folder, tuple(imgsz), dynamic, detecting, simplify) for imgsz, dynamic in variants]
    todo = [{"imgsz": list(imgsz), "dynamic": dynamic, "detecting": detecting, "simplify": simplify, "seed": seed,
             "path": str(path),
             "gain": gain, "class_scale": class_scale, "box_scale": box_scale}
            for (imgsz, dynamic), path in zip(variants, paths) if not path.exists()]
    if todo:
        env = dict(os.environ, YOLO_OFFLINE="1", YOLO_VERBOSE="False",
                   YOLO_CONFIG_DIR=str(folder / "ultralytics-settings"))
        done = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(todo)], cwd=folder, env=env,
                              capture_output=True, text=True, timeout=timeout)
        if done.returncode != 0 or not all(Path(item["path"]).exists() for item in todo):
            tail = " ".join((done.stderr or done.stdout).split()[-60:])
            raise RuntimeError(f"ultralytics could not export YOLOv8n ({PINNED}): {tail}")
    return paths
