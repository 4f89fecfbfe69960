"""The paper's table: what a keyed model gives with the key, without it, and what a plain model
makes of measurements.

For a plain classifier, its keyed twin and labelled sensor frames (N, H, W, C):

- plain model on plain frames (the reference accuracy);
- plain model on measurements (the scrambled frames fed as if they were pictures);
- keyed model on measurements made with the key (must match the plain model image for image);
- keyed model on measurements made with wrong keys (several keys: mean and spread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.runtime import KeyedModel, open_session
from edge.transform import AdcTransform
from edge.verify import plain_input
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

    def rows(self) -> list[tuple[str, str]]:
        return [
            ("plain model, plain images", f"{self.plain_on_plain * 100:.2f} %"),
            ("plain model, scrambled images", f"{self.plain_on_scrambled * 100:.2f} %"),
            ("keyed model, with the key", f"{self.keyed_with_key * 100:.2f} % "
                                          f"(same prediction as plain on {self.keyed_agreement * 100:.2f} %)"),
            (f"keyed model, wrong keys ({self.wrong_keys})",
             f"{self.wrong_key_mean * 100:.2f} % +- {self.wrong_key_std * 100:.2f}"),
        ]


def _predict(run, batches) -> np.ndarray:
    return np.concatenate([run(b).argmax(axis=1) for b in batches])


def _batches(array: np.ndarray, size: int):
    return [array[i:i + size] for i in range(0, len(array), size)]


def paper_table(plain_path, keyed_path, key: MasterKey, frames: np.ndarray, labels: np.ndarray,
                wrong_keys: int | list[MasterKey] = 5, batch: int = 500, progress=None) -> PaperTable:
    """The four rows for ``frames`` (sensor frames, (N, H, W, C)) and their ``labels``.

    ``wrong_keys``: how many fresh random keys to try, or the keys themselves (for reproducible runs).
    """
    others = [MasterKey.generate() for _ in range(wrong_keys)] if isinstance(wrong_keys, int) else list(wrong_keys)
    keyed = KeyedModel(keyed_path, key)
    manifest = keyed.manifest
    plain = open_session(plain_path)
    plain_name = plain.get_inputs()[0].name

    def run_plain(x):
        return plain.run(None, {plain_name: plain_input(x, manifest)})[0]

    def run_keyed(x):
        return keyed.run(x)[0]

    def measure(k: MasterKey) -> np.ndarray:
        transform = AdcTransform(k, manifest.spec)
        return np.stack([transform(f, manifest.epoch) for f in frames])

    step = progress or (lambda: None)
    reference = _predict(run_plain, _batches(frames, batch))
    step()
    measured = measure(key)
    on_scrambled = _predict(run_plain, _batches(measured, batch))
    step()
    with_key = _predict(run_keyed, _batches(measured, batch))
    step()
    wrong = []
    for other in others:
        wrong.append(float(np.mean(_predict(run_keyed, _batches(measure(other), batch)) == labels)))
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
    )
