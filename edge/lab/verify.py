"""keycam verify: a keyed model against its plain model on real images.

Each image is prepared exactly as the device prepares a camera frame (``edge.sensor``: centre-crop
to the model's aspect ratio, resize, the sensor's channel order and depth), read out with the key
(the run's readout stage, the model's spec and epoch), and run through the keyed model; the same
sensor frame, normalised as the manifest says, runs through the plain model. Reports the largest absolute and
relative difference and the top-1 agreement (classifiers: per image; dense outputs: per position,
after putting them back in order with the key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import ImageFileError, ModelError
from edge.imageio import read_frame
from edge.isp import sensor_rgb
from edge.runtime import KeyedModel, open_session
from edge.sensor import Readout
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest
from firmware_sim.words import IMAGE_SUFFIXES, is_image


@dataclass(frozen=True)
class VerifyReport:
    images: int
    max_abs_diff: float
    max_rel_diff: float
    agreement: float

    @property
    def exact(self) -> bool:
        return self.max_rel_diff <= 1e-4 and self.agreement == 1.0


def list_images(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"image folder '{folder}' does not exist")
    images = sorted(p for p in folder.iterdir() if is_image(p) and p.is_file())
    if not images:
        raise ImageFileError(f"image folder '{folder}' holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    return images


def prepare_frame(image: np.ndarray, readout: Readout, path: Path) -> np.ndarray:
    """An image file's pixels as the sensor delivers them for this model: the device's own rule.

    Pictures OpenCV decodes are B,G,R; .npy frames are taken to be in the sensor's order already.
    """
    order = readout.sensor_order if path.suffix.lower() == ".npy" else "bgr"
    return readout.prepare(image, order)


def plain_input(frames: np.ndarray, manifest: Manifest) -> np.ndarray:
    """The plain model's float input for a batch of sensor frames (N, H, W, C): NCHW, or NHWC for models that take it.

    A Bayer model's frames are mosaics (N, 2H, 2W, 1); its plain input is the plain model on the mini-ISP's
    RGB frame, computed in numpy from the same cells (``edge.isp.sensor_rgb``)."""
    spec = manifest.input
    if manifest.spec.is_bayer:
        x = sensor_rgb(frames, manifest.spec, spec.isp)  # (N, H, W, 3), R, G, B on the 0..255 scale
    else:
        x = frames.astype(np.float32)
    if spec.channel_order != spec.model_channel_order:
        x = x[..., ::-1]
    if spec.code_scale != 1.0:
        x = x * np.float32(spec.code_scale)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    if spec.plain_layout == "nhwc":
        return np.ascontiguousarray(x)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, H, W, C) -> (N, C, H, W)


def verify(plain_path: str | Path, keyed_path: str | Path, key: MasterKey, images: list[Path],
           batch: int = 16) -> VerifyReport:
    keyed = KeyedModel(keyed_path, key)
    manifest = keyed.manifest
    if manifest.role != "full":
        raise ModelError(f"verify compares a full keyed model with its plain model; '{keyed_path}' is a "
                         f"{manifest.role} model")
    plain = open_session(plain_path, optimisation="disable")
    if manifest.spec.output_bits != 8 and any(p.suffix.lower() != ".npy" for p in images):
        raise ImageFileError(f"the model reads {manifest.spec.output_bits}-bit codes; give .npy frames of that depth")
    readout = Readout.for_model(manifest, key)
    plain_name = plain.get_inputs()[0].name
    worst_abs = worst_rel = 0.0
    agree = total = 0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        frames = np.stack([prepare_frame(read_frame(p), readout, p) for p in chunk])
        measured = np.stack([readout.measure(f, manifest.epoch) for f in frames])
        got = keyed.restore(keyed.run(measured))
        want = plain.run(None, {plain_name: plain_input(frames, manifest)})
        for g, w in zip(got, want):
            diff = float(np.max(np.abs(g - w)))
            worst_abs = max(worst_abs, diff)
            worst_rel = max(worst_rel, diff / max(float(np.max(np.abs(w))), 1e-12))
            if w.ndim >= 2:
                same = g.argmax(axis=1) == w.argmax(axis=1)
                agree += int(same.sum())
                total += same.size
    return VerifyReport(len(images), worst_abs, worst_rel, agree / total if total else 1.0)
