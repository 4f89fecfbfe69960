"""The embedded default job: one package-shipped photograph through both readouts.

Steps: make (or load) a key; read a photograph that ships inside a package
(scikit-image's ``chelsea``, 300 x 451, non-square); read it out with
firmware_sim (the slow reference) and with the edge transform (the fast twin);
require the two measurements to be byte-identical; seal the measurement as the
sensor does (``rgb8-sealed``: firmware_sim's keystream core, one readout step at a
time) and as the device does (``edge.seal``, one AEAD call), and require those
byte-identical too, tag included; put the positions back with the right key and
with a wrong one; write the five pictures side by side as one PNG: the plain
photo, the paper's measurement (the pixels moved, none changed: its colours are
the photo's), the sealed one (what leaves the sensor under the sealed readout:
bytes indistinguishable from uniform), and the two restorations. The photograph
is public sample data, which is why this job, and only this job, writes a plain
picture without being asked.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.errors import DemoMismatch, ImageFileError
from edge.frame import Frame
from edge.imageio import read_frame, write_image
from edge.seal import Sealer
from edge.sources.default import photo
from edge.transform import AdcTransform
from firmware_sim.keys import MasterKey
from firmware_sim.readout import readout
from firmware_sim.seal import Sealed, open_sealed, seal_stream
from firmware_sim.spec import DEFAULT_SPEC, PRESETS, ReadoutSpec

SEALED_SPEC = PRESETS["rgb8-sealed"]  # the paper's readout, then AES-256-GCM (readout spec version 4)


@dataclass(frozen=True)
class DemoResult:
    fingerprint: str
    image: Path
    shape: tuple[int, int, int]
    firmware_seconds: float
    edge_seconds: float
    identical: bool
    sealed_identical: bool  # the sensor's seal (firmware_sim, step by step) == the device's (edge.seal), tag included
    restored: bool
    wrong_key_mean_abs_error: float
    panel: Path
    key_path: Path


def shipped_photo(name: str = "chelsea") -> Path:
    """Path of a sample photograph inside the scikit-image wheel, without importing scikit-image."""
    try:
        return photo(name)
    except ImageFileError as error:
        raise ImageFileError(f"{error} (--image PATH)") from None


def labelled(image: np.ndarray, label: str) -> np.ndarray:
    """The picture with a caption bar above it. image: (H, W, 3) uint8."""
    bar = np.full((28, image.shape[1], 3), 255, dtype=np.uint8)
    cv2.putText(bar, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    return np.vstack([bar, image])


def as_bgr8(image: np.ndarray, spec: ReadoutSpec, bits: int | None = None) -> np.ndarray:
    """Any (H, W, C) codes of ``bits`` (the spec's output bits by default) as an (H, W, 3) uint8 picture.

    Bayer cells (R, Gr, Gb, B) are shown as B, (Gr + Gb) / 2, R: one pixel per cell."""
    bits = spec.output_bits if bits is None else bits
    if bits != 8:
        image = (image.astype(np.uint32) >> (bits - 8)).astype(np.uint8)
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)  # (H, W, 1) -> (H, W, 3)
    elif image.shape[2] == 4:
        green = ((image[..., 1].astype(np.uint16) + image[..., 2]) // 2).astype(np.uint8)
        image = np.stack([image[..., 3], green, image[..., 0]], axis=-1)  # (H, W, 4) cells -> (H, W, 3) B,G,R
    return image


def sealed(reference: np.ndarray, key: MasterKey, measurement: np.ndarray) -> tuple[np.ndarray, bool]:
    """(the sealed measurement, whether firmware_sim's keystream core, fed firmware_sim's readout ``reference`` one
    step at a time, and the device's sealer, fed the edge transform's ``measurement``, agree byte for byte, tag
    included, and the seal opens back to ``measurement``)."""
    device = Frame(measurement, 0, time.time_ns(), "demo", measured=True, epoch=0, fingerprint=key.fingerprint)
    data, seal = Sealer(key, SEALED_SPEC).seal(measurement, device, 0)
    steps = map(tuple, reference.reshape(-1, reference.shape[2]).tolist())  # (H, W, C) -> the readout's steps
    sensor = seal_stream(steps, key, SEALED_SPEC, seal.header)
    agree = np.array_equal(sensor.data, data) and sensor.tag == seal.tag
    opens = np.array_equal(open_sealed(Sealed(data, seal.tag, seal.header), key, SEALED_SPEC), measurement)
    return data, agree and opens


def run_demo(out_dir: Path, image: Path | None = None, key_path: Path | None = None) -> DemoResult:
    """Run the default job and write ``out_dir/keycam-demo.png``; raise on any disagreement."""
    from edge.outputs import check_outputs

    shipped = image is None  # public sample data: the panel may be read by anyone; a picture of one's own may not
    image = image or shipped_photo()
    generated = key_path is None
    panel_path = out_dir / "keycam-demo.png"
    check_outputs({"the demo's picture": panel_path, "the demo's key": out_dir / "demo.key" if generated else None},
                  {"--image": image, "--key": key_path}, folders_made=True)
    frame = read_frame(image)  # the picture is checked before anything is written
    if frame.dtype != np.uint8 or frame.shape[2] != 3:
        raise ImageFileError(f"the demo reads an 8-bit colour picture; '{image}' is {frame.dtype} {frame.shape}")
    key = None if generated else MasterKey.load(key_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    if generated:
        key_path = out_dir / "demo.key"
        key = MasterKey.generate()
        key.save(key_path, force=True)
    spec = DEFAULT_SPEC
    start = time.perf_counter()
    reference = readout(frame, key, spec)
    firmware_seconds = time.perf_counter() - start
    transform = AdcTransform(key, spec)
    start = time.perf_counter()
    measurement = transform(frame)
    edge_seconds = time.perf_counter() - start
    identical = reference.dtype == measurement.dtype and np.array_equal(reference, measurement)
    if not identical:
        differing = int(np.count_nonzero(reference != measurement))
        raise DemoMismatch(f"edge transform differs from firmware_sim in {differing} codes for key {key.fingerprint}")

    ciphertext, sealed_identical = sealed(reference, key, measurement)
    if not sealed_identical:
        raise DemoMismatch(f"the device's seal differs from firmware_sim's for key {key.fingerprint}")
    restored = transform.inverse(measurement)
    wrong = AdcTransform(MasterKey.generate(), spec).inverse(measurement)
    panel = np.hstack(
        [
            labelled(as_bgr8(frame, spec), "plain (sample photo)"),
            labelled(as_bgr8(measurement, spec), "paper's measurement"),
            labelled(as_bgr8(ciphertext, SEALED_SPEC), "sealed measurement"),
            labelled(as_bgr8(restored, spec), "unscrambled, right key"),
            labelled(as_bgr8(wrong, spec), "unscrambled, wrong key"),
        ]
    )
    panel_path = write_image(panel_path, panel, private=not shipped)  # the user's own picture: 0600, like a key
    return DemoResult(
        fingerprint=key.fingerprint,
        image=image,
        shape=tuple(frame.shape),
        firmware_seconds=firmware_seconds,
        edge_seconds=edge_seconds,
        identical=identical,
        sealed_identical=sealed_identical,
        restored=bool(np.array_equal(restored, frame)),
        wrong_key_mean_abs_error=float(np.mean(np.abs(wrong.astype(np.int16) - frame.astype(np.int16)))),
        panel=panel_path,
        key_path=key_path,
    )
