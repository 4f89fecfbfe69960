"""What a frame's answer says, per model output, when the task is a classifier or unknown.

A classifier's output (N, classes) becomes its label, score (softmax) and class name; a dense map
(N, C, H, W), scrambled or not, its class histogram (which does not depend on the layout); anything
else its shape and mean. ``classify`` and ``tensors`` (the default for models of unknown task) use it.
"""

from __future__ import annotations

import numpy as np

from edge.tasks.base import Decoder
from edge.tasks.geometry import Geometry


def summarise(name: str, output: np.ndarray, kind: str, labels: list[str] | None) -> dict:
    """A JSON-able summary of one output of one frame (batch of one)."""
    if kind == "plain" and output.ndim == 2:  # a classifier: (1, classes)
        logits = output[0].astype(np.float64)
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
