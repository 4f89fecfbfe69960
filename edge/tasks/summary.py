"""What a frame's answer says, per model output, when the task is a classifier or unknown.

A classifier's output (N, classes) becomes its label, score and class name; a dense map (N, C, H, W),
scrambled or not, its class histogram (which does not depend on the layout); anything else its shape
and mean. ``classify`` and ``tensors`` (the default for models of unknown task) use it.

The score is the softmax of the row, unless the row already is a probability distribution: every
value in [0, 1] and the sum 1 within 1e-3 (ultralytics' classify export ends in a softmax; the manifest
does not say so, the values do). Then it is taken as it is, never softmaxed twice. Logits that happen to
look like probabilities change only the score, never the label (the argmax of both is the same).
"""

from __future__ import annotations

import numpy as np

from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry


def is_distribution(row: np.ndarray, tolerance: float = 1e-3) -> bool:
    """Every value in [0, 1] and the sum 1 within ``tolerance``: a row of probabilities, not logits."""
    return bool(row.size and row.min() >= 0 and row.max() <= 1 and abs(row.sum() - 1) <= tolerance)


def summarise(name: str, output: np.ndarray, kind: str, labels: list[str] | None) -> dict:
    """A JSON-able summary of one output of one frame (batch of one)."""
    if kind == "plain" and output.ndim == 2:  # a classifier: (1, classes)
        logits = output[0].astype(np.float64)
        if is_distribution(logits):  # already softmaxed in the graph (ultralytics' classify export)
            probabilities = logits
        else:
            with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf logits (a broken model's): NaN scores
                probabilities = np.exp(logits - logits.max())
                probabilities /= probabilities.sum()
        label = int(np.argmax(logits))
        summary = {"label": label, "score": round(float(probabilities[label]), 6)}
        if labels and label < len(labels):
            summary["class"] = labels[label]
        return summary
    if output.ndim == 4:  # a dense map (scrambled or not): the class histogram does not depend on the layout
        counts = np.bincount(output[0].argmax(axis=0).reshape(-1), minlength=output.shape[1])
        return {"shape": list(output.shape), "class_pixels": counts.tolist()}
    return {"shape": list(output.shape), "mean": round(float(output.mean()), 6)}


class TensorsDecoder(Decoder):
    """One summary per output, by name (classifiers: label, score and class)."""

    name = "tensors"

    def decode(self, tensors: list[np.ndarray], geometry: Geometry) -> dict:
        return {spec.name: summarise(spec.name, out, spec.kind, self.labels)
                for spec, out in zip(self.outputs, tensors)}


class ClassifyDecoder(TensorsDecoder):
    name = "classify"
    task = "classify"
