"""The paper's table: what a keyed model gives with the key, without it, and what a plain model
makes of measurements.

For a plain classifier, its keyed twin and labelled sensor frames (N, H, W, C):

- plain model on plain frames (the reference accuracy);
- plain model on measurements (the scrambled frames fed as if they were pictures);
- keyed model on measurements made with the key (must match the plain model image for image);
- keyed model on measurements made with wrong keys (several keys: mean and spread);
- optionally, the plain model fine-tuned on labelled measurements (an attacker who has labelled
  scrambled images of this camera): the caller passes a training set of sensor frames, which are
  measured with the key and fed to ``finetuner`` in the plain model's input form. The fine-tuning
  itself needs PyTorch and the onnx package, so it lives in ``edge.lab.attacks.finetune`` and reaches this
  module only as a callable (the device code never imports either).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import LabError
from edge.lab.datasets import load_labelled, read_idx
from edge.lab.verify import plain_input
from edge.runtime import KeyedModel, open_session
from edge.transform import AdcTransform
from firmware_sim.keys import MasterKey


@dataclass(frozen=True)
class PaperTable:
    images: int
    plain_on_plain: float
    plain_on_scrambled: float
    keyed_with_key: float
    keyed_agreement: float  # fraction of images where keyed(x') and plain(x) predict the same class
    wrong_key_mean: float
    wrong_key_std: float
    wrong_keys: int
    finetuned: float | None = None  # plain model fine-tuned on labelled measurements, on the evaluation images
    finetune_images: int = 0
    finetune_note: str = ""  # e.g. "1 epoch"

    def rows(self) -> list[tuple[str, str]]:
        extra = []
        if self.finetuned is not None:
            extra.append((f"plain model fine-tuned on scrambled images ({self.finetune_images} images, "
                          f"{self.finetune_note})", f"{self.finetuned * 100:.2f} %"))
        return [
            ("plain model, plain images", f"{self.plain_on_plain * 100:.2f} %"),
            ("plain model, scrambled images", f"{self.plain_on_scrambled * 100:.2f} %"),
            ("keyed model, with the key", f"{self.keyed_with_key * 100:.2f} % "
                                          f"(same prediction as plain on {self.keyed_agreement * 100:.2f} %)"),
            (f"keyed model, wrong keys ({self.wrong_keys})",
             f"{self.wrong_key_mean * 100:.2f} % +- {self.wrong_key_std * 100:.2f}"),
        ] + extra


def _predict(run, batches) -> np.ndarray:
    return np.concatenate([run(b).argmax(axis=1) for b in batches])


def _batches(array: np.ndarray, size: int):
    return [array[i:i + size] for i in range(0, len(array), size)]


Finetuner = Callable[[np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


def training_split(folder: str | Path) -> tuple[np.ndarray, np.ndarray] | None:
    """(frames (N, H, W, 1), labels) of the ``train-*`` IDX files in ``folder``, or None if it has none."""
    images = sorted(Path(folder).glob("train-images-idx3-ubyte*"))
    if not images:
        return None
    labels = images[0].with_name(images[0].name.replace("images-idx3", "labels-idx1"))
    return read_idx(images[0])[:, :, :, np.newaxis], read_idx(labels).astype(np.int64)


class _Models:
    """The plain and the keyed model of one table, and the measurements of frames under any key."""

    def __init__(self, plain_path, keyed_path, key: MasterKey) -> None:
        self.keyed = KeyedModel(keyed_path, key)
        self.manifest = self.keyed.manifest
        self.plain = open_session(plain_path)
        self.plain_name = self.plain.get_inputs()[0].name

    def run_plain(self, x: np.ndarray) -> np.ndarray:
        return self.plain.run(None, {self.plain_name: plain_input(x, self.manifest)})[0]

    def run_keyed(self, x: np.ndarray) -> np.ndarray:
        return self.keyed.run(x)[0]

    def measure(self, k: MasterKey, images: np.ndarray) -> np.ndarray:
        transform = AdcTransform(k, self.manifest.spec)
        return np.stack([transform(f, self.manifest.epoch) for f in images])


def _finetuned(models: _Models, key: MasterKey, frames: np.ndarray, measured: np.ndarray, labels: np.ndarray,
               finetune: tuple[np.ndarray, np.ndarray, Finetuner, str], batch: int) -> float:
    """The fine-tuned row: trained on the measurements of the training frames, scored on ``measured``."""
    train_frames, train_labels, finetuner, _ = finetune
    if train_frames.shape[1:] != frames.shape[1:]:
        raise LabError(f"training frames of shape {train_frames.shape[1:]} differ from the evaluation "
                       f"frames' {frames.shape[1:]}; give a training set of the same size and channels")
    manifest = models.manifest
    classify = finetuner(plain_input(models.measure(key, train_frames), manifest), train_labels)
    return float(np.mean(np.concatenate([classify(plain_input(b, manifest))
                                         for b in _batches(measured, batch)]) == labels))


def paper_table(plain_path, keyed_path, key: MasterKey, frames: np.ndarray, labels: np.ndarray,
                wrong_keys: int | list[MasterKey] = 5, batch: int = 500, progress=None,
                finetune: tuple[np.ndarray, np.ndarray, Finetuner, str] | None = None) -> PaperTable:
    """The four rows for ``frames`` (sensor frames, (N, H, W, C)) and their ``labels`` (five with ``finetune``).

    ``wrong_keys``: how many fresh random keys to try, or the keys themselves (for reproducible runs).
    ``finetune``: (training frames (M, H, W, C), their labels, finetuner, note for the row). The training
    frames are measured with ``key``; ``finetuner(inputs, labels)`` gets them in the plain model's input
    form (M, C, H, W) and returns a function from such inputs to predicted classes, which is then
    scored on the measurements of ``frames``. Give training frames disjoint from ``frames``.
    """
    others = [MasterKey.generate() for _ in range(wrong_keys)] if isinstance(wrong_keys, int) else list(wrong_keys)
    if not others:
        raise LabError("the wrong-key row needs at least one wrong key; give --wrong-keys 1 or more")
    if len(frames) == 0 or len(frames) != len(labels):
        raise LabError(f"{len(frames)} frames and {len(labels)} labels: give one label per frame, at least one frame")
    models = _Models(plain_path, keyed_path, key)
    step = progress or (lambda: None)
    reference = _predict(models.run_plain, _batches(frames, batch))
    step()
    measured = models.measure(key, frames)
    on_scrambled = _predict(models.run_plain, _batches(measured, batch))
    step()
    with_key = _predict(models.run_keyed, _batches(measured, batch))
    step()
    wrong = []
    for other in others:
        predicted = _predict(models.run_keyed, _batches(models.measure(other, frames), batch))
        wrong.append(float(np.mean(predicted == labels)))
        step()
    finetuned = None
    if finetune is not None:
        finetuned = _finetuned(models, key, frames, measured, labels, finetune, batch)
        step()
    return PaperTable(
        images=len(labels),
        plain_on_plain=float(np.mean(reference == labels)),
        plain_on_scrambled=float(np.mean(on_scrambled == labels)),
        keyed_with_key=float(np.mean(with_key == labels)),
        keyed_agreement=float(np.mean(with_key == reference)),
        wrong_key_mean=float(np.mean(wrong)),
        wrong_key_std=float(np.std(wrong)),
        wrong_keys=len(others),
        finetuned=finetuned,
        finetune_images=0 if finetune is None else len(finetune[1]),
        finetune_note="" if finetune is None else finetune[3],
    )


def finetune_plan(model: Path, data: Path, epochs: int, finetune_data: Path | None = None,
                  limit: int | None = None, report=None):
    """(training frames, labels, finetuner, note) for paper_table's fine-tuned row, checked before any work.

    The training set is the ``train-*`` IDX files beside the evaluation data, or ``finetune_data`` (labelled
    images other than the evaluation images). The fine-tuning itself needs PyTorch and onnx, so it comes
    from ``edge.lab.attacks.finetune`` here, in the lab, never on the device path.
    """
    if epochs < 1:
        raise LabError(f"--finetune-epochs {epochs}: give a number of epochs >= 1 (0: no fine-tuning)")
    from edge.lab.attacks.finetune import finetune, predict, require_torch

    try:
        require_torch()
    except ImportError as error:
        raise LabError(f"--finetune-epochs {epochs}: {error}") from None
    if finetune_data is None:
        found = training_split(data)
        if found is None:
            raise LabError(f"'{data}' has no training split (train-*-idx3-ubyte files) to fine-tune on; pass "
                           "--finetune-data DIR with labelled training images other than the evaluation images "
                           "(foolbox's 20 samples are too few to fine-tune on)")
        train_frames, train_labels = found
    else:
        if finetune_data.resolve() == data.resolve():
            raise LabError(f"--finetune-data '{finetune_data}' is the evaluation folder; fine-tune on other "
                           "images, or the row measures memorisation, not the attack")
        train_frames, train_labels, order = load_labelled(finetune_data)
        if order == "bgr":
            train_frames = train_frames[..., ::-1].copy()
    if limit:
        train_frames, train_labels = train_frames[:limit], train_labels[:limit]

    def finetuner(inputs, labels):
        module = finetune(model, inputs, labels, epochs, progress=report)
        return lambda x: predict(module, x)

    return train_frames, train_labels, finetuner, f"{epochs} epoch{'s' if epochs != 1 else ''}"
