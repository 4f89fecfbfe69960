"""What the int8 tests share: compile a plain model, measure frames as the device does, quantise both sides.

The plain model is quantised with the same onnxruntime settings (``export.quantize.quantize_plain``),
calibrated on the same frames fed as the plain model takes them (``edge.lab.verify.plain_input``); the keyed
model on their measurements (``edge.sensor.Readout``, the model's spec and epoch).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from edge.lab.verify import plain_input
from edge.runtime import KeyedModel, open_session
from edge.sensor import Readout
from export.keyify import KeyifyOptions, keyify
from export.package.save import save
from export.quantize import quantize_file, quantize_plain
from firmware_sim.keys import MasterKey

ROOT = Path(__file__).resolve().parents[3]


def foolbox_files(prefix: str) -> list[Path]:
    """foolbox's 20 sample images of a dataset (``cifar10_*.png``, ``imagenet_*.jpg``)."""
    import importlib.util

    found = importlib.util.find_spec("foolbox")
    if found is None or not found.submodule_search_locations:
        import pytest

        pytest.skip("foolbox is not installed (pip install --no-deps foolbox==3.3.4)")
    folder = Path(next(iter(found.submodule_search_locations))) / "data"
    return sorted(folder.glob(f"{prefix}_*"))


@dataclass
class Compiled:
    plain: Path
    keyed: Path
    manifest: object
    readout: Readout
    key: MasterKey

    def sensor_frames(self, pictures: list[np.ndarray], order: str = "bgr") -> np.ndarray:
        return np.stack([self.readout.prepare(p, order) for p in pictures])

    def measure(self, frames: np.ndarray, epoch: int | None = None) -> np.ndarray:
        epoch = self.manifest.epoch if epoch is None else epoch
        return np.stack([self.readout.measure(f, epoch) for f in frames])


def compile_model(folder: Path, plain: onnx.ModelProto, key: MasterKey, options: KeyifyOptions,
                  name: str = "keyed") -> Compiled:
    plain_path = folder / "plain.onnx"
    if not plain_path.exists():
        onnx.save(plain, plain_path)
    keyed_path = folder / f"{name}.onnx"
    save(keyify(plain, key, options), keyed_path)
    manifest = KeyedModel(keyed_path, key).manifest
    return Compiled(plain_path, keyed_path, manifest, Readout.for_model(manifest, key), key)


def int8_pair(model: Compiled, calibration: np.ndarray, test: np.ndarray, *, plain: bool = True,
              batch: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """(plain int8 outputs, keyed int8 outputs) on the sensor frames ``test``, both calibrated on the sensor
    frames ``calibration``; ``plain``: give the quantiser the plain model (the first layer's own weights)."""
    folder = model.keyed.parent
    plain8 = folder / "plain.int8.onnx"
    onnx.save(quantize_plain(model.plain, plain_input(calibration, model.manifest)), plain8)
    keyed8 = folder / f"{model.keyed.stem}.int8.onnx"
    quantize_file(model.keyed, model.measure(calibration), keyed8, calibration="test frames",
                  plain=model.plain if plain else None)
    return run_plain(plain8, test, model.manifest, batch), run_keyed(keyed8, model, model.measure(test), batch)


def run_plain(path: Path, frames: np.ndarray, manifest, batch: int = 50, every: bool = False):
    """The plain model's first output on the sensor frames (``every``: the list of all its outputs)."""
    session = open_session(path)
    name = session.get_inputs()[0].name
    runs = [session.run(None, {name: plain_input(frames[i:i + batch], manifest)}) for i in range(0, len(frames), batch)]
    outputs = [np.concatenate(parts) for parts in zip(*runs)]
    return outputs if every else outputs[0]


def run_keyed(path: Path, model: Compiled, measurements: np.ndarray, batch: int = 50, every: bool = False,
              **options):
    """The keyed model's first output on the measurements, put back in order (``every``: all its outputs)."""
    keyed = KeyedModel(path, model.key, **options)
    runs = [keyed.restore(keyed.run(measurements[i:i + batch])) for i in range(0, len(measurements), batch)]
    outputs = [np.concatenate(parts) for parts in zip(*runs)]
    return outputs if every else outputs[0]
