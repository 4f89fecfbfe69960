"""Accuracy: float32 against int8, plain and keyed, on real test images (docs/benchmarks.md, "int8").

- keycam's Fashion-MNIST CNN (edge/assets) on all 10,000 Fashion-MNIST test images (Debian's
  dataset-fashion-mnist), calibrated on the first 500 training images;
- the Keras CIFAR-10 CNN of ``cifar-10-model`` on foolbox's 20 CIFAR-10 test images, calibrated on foolbox's
  20 CIFAR-100 images (other pictures of the same size and kind: no test image is a calibration image);
- the BlazeFace face detector (edge/faces.py) on scikit-image's colour photos and four crops and mirror images
  of its astronaut, calibrated on foolbox's 20 ImageNet photos: the faces the float32 plain model finds, and
  how many of them each int8 model finds (a box of IoU >= 0.5), with its other boxes counted.

The plain int8 model is onnxruntime's quantisation of the plain model on the calibration frames as it takes
them; the keyed int8 model is ``export.quantize`` on their measurements (the plain model's first layer
given). Each keyed model is compiled under both policies (``boundary``, the default, and ``fresh``).
Prints the table, and whether keyed int8 equals plain int8 on every output value.

    python benchmarks/int8_accuracy.py
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from datetime import date
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge.default import ASSET, MEAN, SPEC, STD  # noqa: E402
from edge.lab.datasets import fashion_mnist  # noqa: E402
from edge.lab.verify import plain_input  # noqa: E402
from edge.runtime import KeyedModel, open_session  # noqa: E402
from edge.sensor import Readout  # noqa: E402
from export.keyify import KeyifyOptions, keyify  # noqa: E402
from export.package.save import save  # noqa: E402
from export.quantize import quantize_file, quantize_plain  # noqa: E402
from firmware_sim.keys import MasterKey  # noqa: E402


def foolbox_photos(prefix: str) -> list[np.ndarray]:
    """foolbox's 20 sample pictures of a dataset, as OpenCV reads them (B, G, R)."""
    import importlib.util

    folder = Path(next(iter(importlib.util.find_spec("foolbox").submodule_search_locations))) / "data"
    return [cv2.imread(str(p)) for p in sorted(folder.glob(f"{prefix}_*"))]


def foolbox(prefix: str) -> tuple[list[np.ndarray], np.ndarray]:
    """foolbox's 20 sample images of a dataset as RGB frames, and their labels."""
    import importlib.util

    folder = Path(next(iter(importlib.util.find_spec("foolbox").submodule_search_locations))) / "data"
    files = sorted(folder.glob(f"{prefix}_*.png"))
    return [cv2.imread(str(p))[:, :, ::-1] for p in files], np.array([int(p.stem.rsplit("_", 1)[1]) for p in files])


def predictions(session, name: str, data: np.ndarray, batch: int = 500) -> np.ndarray:
    return np.concatenate([session.run(None, {name: data[i:i + batch]})[0] for i in range(0, len(data), batch)])


def evaluate(folder: Path, plain: onnx.ModelProto, options: dict, calibration: list, test: list, labels: np.ndarray,
             order: str, key: MasterKey) -> list[tuple]:
    plain_path = folder / "plain.onnx"
    onnx.save(plain, plain_path)
    rows, plain8_outputs = [], None
    for policy in ("boundary", "fresh"):
        keyed = folder / f"keyed-{policy}.onnx"
        save(keyify(plain, key, KeyifyOptions(policy=policy, **options)), keyed)
        manifest = KeyedModel(keyed, key).manifest
        readout = Readout.for_model(manifest, key)
        cal = np.stack([readout.prepare(p, order) for p in calibration])
        frames = np.stack([readout.prepare(p, order) for p in test])
        measured = np.stack([readout.measure(f, manifest.epoch) for f in frames])
        quantize_file(keyed, np.stack([readout.measure(f, manifest.epoch) for f in cal]),
                      keyed.with_suffix(".int8.onnx"), calibration="calibration frames", plain=plain_path)
        if plain8_outputs is None:
            onnx.save(quantize_plain(plain_path, plain_input(cal, manifest)), folder / "plain.int8.onnx")
            x = plain_input(frames, manifest)
            outputs = {}
            for label, path in (("plain fp32", plain_path), ("plain int8", folder / "plain.int8.onnx")):
                session = open_session(path)
                outputs[label] = predictions(session, session.get_inputs()[0].name, x)
            plain8_outputs = outputs["plain int8"]
            rows += [(label, float(np.mean(out.argmax(1) == labels)), "") for label, out in outputs.items()]
        for precision, path in (("fp32", keyed), ("int8", keyed.with_suffix(".int8.onnx"))):
            out = predictions(KeyedModel(path, key).session, "measurement", measured)
            same = ""
            if precision == "int8":
                differ = int(np.sum(out != plain8_outputs))
                same = "every value" if differ == 0 else f"{differ} of {out.size} values differ, top-1 agrees on " \
                    f"{np.mean(out.argmax(1) == plain8_outputs.argmax(1)) * 100:.2f} %"
            rows.append((f"keyed {precision} ({policy})", float(np.mean(out.argmax(1) == labels)), same))
    return rows


def iou(a, b) -> float:
    x0, y0, x1, y1 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0.0, x1 - x0) * max(0.0, y1 - y0)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


SKIMAGE = ("astronaut", "camera", "chelsea", "coffee", "motorcycle_left", "motorcycle_right", "horse")


def face_photos() -> list[np.ndarray]:
    """scikit-image's photos (grey ones as colour), and crops, a mirror image and a small copy of the astronaut."""
    from edge.lab.demo import shipped_photo

    photos = [cv2.imread(str(shipped_photo(name)), cv2.IMREAD_COLOR) for name in SKIMAGE]
    astronaut = photos[0]
    return photos + [astronaut[:, ::-1].copy(), astronaut[20:300, 60:500].copy(), astronaut[0:380, 100:480].copy(),
                     cv2.resize(astronaut, (256, 256))]


def faces(folder: Path, key: MasterKey) -> list[tuple] | str:
    """Rows (model, faces of the float32 plain model's found, other boxes), or why the detector is unavailable."""
    from edge.errors import ModelError
    from edge.faces import MEAN, SPEC, STD, face_model, task_settings
    from edge.tasks import Geometry, make_decoder

    try:
        detector = face_model()
    except ModelError as error:
        return str(error)
    plain_path, keyed = folder / "face.onnx", folder / "face-keyed.onnx"
    plain_path.write_bytes(detector.read_bytes())
    save(keyify(detector, key, KeyifyOptions(spec=SPEC, mean=MEAN, std=STD, channel_order="bgr")), keyed)
    manifest = KeyedModel(keyed, key).manifest
    readout = Readout.for_model(manifest, key)
    cal = np.stack([readout.prepare(p, "bgr") for p in foolbox_photos("imagenet")])
    quantize_file(keyed, np.stack([readout.measure(f, manifest.epoch) for f in cal]), folder / "face-keyed.int8.onnx",
                  calibration="foolbox's 20 ImageNet photos", plain=plain_path)
    onnx.save(quantize_plain(plain_path, plain_input(cal, manifest)), folder / "face.int8.onnx")
    decoder = make_decoder(task_settings(), manifest)
    runs = {"plain fp32": open_session(plain_path), "plain int8": open_session(folder / "face.int8.onnx"),
            "keyed fp32 (boundary)": KeyedModel(keyed, key),
            "keyed int8 (boundary)": KeyedModel(folder / "face-keyed.int8.onnx", key)}
    found = {label: [] for label in runs}
    for photo in face_photos():
        frame = readout.prepare(photo, "bgr")[np.newaxis]
        measured = readout.measure(frame[0], manifest.epoch)[np.newaxis]
        geometry = Geometry.of(128, 128, (photo.shape[1], photo.shape[0]))
        for label, run in runs.items():
            if label.startswith("plain"):
                outputs = run.run(None, {run.get_inputs()[0].name: plain_input(frame, manifest)})
            else:
                outputs = run.restore(run.run(measured))
            found[label].append([d["box"] for d in decoder.decode(outputs, geometry)["detections"]])
    reference = found["plain fp32"]
    total = sum(len(r) for r in reference)
    rows = []
    for label, boxes in found.items():
        matched = sum(sum(any(iou(r, b) >= 0.5 for b in got) for r in ref) for ref, got in zip(reference, boxes))
        other = sum(sum(not any(iou(b, r) >= 0.5 for r in ref) for b in got) for ref, got in zip(reference, boxes))
        rows.append((label, f"{matched} of {total}", other))
    same = found["plain int8"] == found["keyed int8 (boundary)"]
    return rows + [("keyed int8 = plain int8, box for box", "yes" if same else "no", "")]


def main() -> int:
    from export.zoo.keras_cifar import convert

    key = MasterKey.generate()
    train, _ = fashion_mnist("train")
    test, labels = fashion_mnist("t10k")
    print(f"# int8 accuracy, {date.today().isoformat()}, {platform.machine()}, {os.cpu_count()} cores, "
          f"onnxruntime {ort.__version__}\n")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "fm").mkdir()
        (Path(tmp) / "cifar").mkdir()
        fashion = evaluate(Path(tmp) / "fm", onnx.load(ASSET), dict(spec=SPEC, mean=MEAN, std=STD),
                           list(train[:500]), list(test), labels, "bgr", key)
        cifar100, _ = foolbox("cifar100")
        cifar10, cifar_labels = foolbox("cifar10")
        cifar = evaluate(Path(tmp) / "cifar", convert(), {}, cifar100, cifar10, cifar_labels, "rgb", key)
        (Path(tmp) / "face").mkdir()
        face = faces(Path(tmp) / "face", key)
    print("| model | Fashion-MNIST CNN, 10,000 test images | Keras CIFAR-10 CNN, foolbox's 20 | keyed int8 = plain "
          "int8 (Fashion-MNIST; CIFAR-10) |")
    print("|---|---|---|---|")
    for (label, fm, fm_same), (_, cf, cf_same) in zip(fashion, cifar):
        same = f"{fm_same}; {cf_same}" if fm_same else ""
        print(f"| {label} | {fm * 100:.2f} % | {cf * 100:.0f} % | {same} |")
    if isinstance(face, str):
        print(f"\nface detections: not measured: {face}")
        return 0
    print(f"\nBlazeFace on {len(face_photos())} photos (scikit-image's, and crops, a mirror image and a small copy of "
          "its astronaut), the float32 plain model's faces found (a box of IoU >= 0.5):\n")
    print("| model | faces found | other boxes |")
    print("|---|---|---|")
    for label, matched, other in face:
        print(f"| {label} | {matched} | {other} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
