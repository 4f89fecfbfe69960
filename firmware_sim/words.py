"""The words keycam's packages and file formats share, each defined once here.

``export`` writes them, ``edge`` reads them, and the manifest, the command line, the configuration
schema and the docs' tables derive their literals and choices from these definitions, so a new task
kind or a new sidecar file is one line here.

- **Task kinds** (:data:`TASKS`): what a keyed model's outputs are, as its manifest records them
  (``""`` in a manifest: unknown) and as ``keyify --task`` and ``[task] kind`` choose them.
- **Model files** (:func:`model_files`): a keyed model ``KEYED.onnx`` and the files beside it:
  ``KEYED.manifest.json``, the epoch recipes ``KEYED.epochs.npz``, a split's ``KEYED.feature.onnx`` and
  ``KEYED.task.onnx``, the int8 twin ``KEYED.int8.onnx``.
- **Image suffixes** (:data:`IMAGE_SUFFIXES`): the files an image folder, a calibration folder and the
  lab's datasets read as pictures (``.npy``: a sensor frame saved by numpy).
- **Operator families** (:data:`ELEMENTWISE_UNARY`, :data:`ELEMENTWISE_BINARY`): the ONNX operators that
  act element by element, which the keyed compiler's pointwise and element-wise passes handle, and the
  named sub-families other readers of a graph use: the channels-last rewrite moves
  :data:`PREFIX_UNARY` and :data:`PREFIX_BINARY` behind an input Transpose, and the lab's fine-tuning
  interpreter (``edge.lab.attacks.finetune``) runs a part of the families in PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# -- task kinds -----------------------------------------------------------------------------------------------

TASKS = ("classify", "detect", "segment", "pose", "obb")
"""Task kinds the device has decoders for, as a manifest records them."""

# -- model files ----------------------------------------------------------------------------------------------

MODEL_SUFFIX = ".onnx"
MANIFEST_SUFFIX = ".manifest.json"
EPOCHS_SUFFIX = ".epochs.npz"
FEATURE_SUFFIX = ".feature.onnx"
TASK_SUFFIX = ".task.onnx"
INT8_SUFFIX = ".int8.onnx"
SEAL_SUFFIX = ".seal"  # beside a sealed measurement written as a file: its seal, "header hex:tag hex"
SPLIT_ROLES = {"feature": FEATURE_SUFFIX, "task": TASK_SUFFIX}


@dataclass(frozen=True)
class ModelFiles:
    """The files of one keyed model, named from its path ``model`` (``KEYED.onnx``)."""

    model: Path

    @property
    def stem(self) -> str:
        return self.model.name.removesuffix(MODEL_SUFFIX) if self.model.name.endswith(MODEL_SUFFIX) \
            else self.model.stem

    def _beside(self, suffix: str) -> Path:
        return self.model.with_name(self.stem + suffix)

    @property
    def manifest(self) -> Path:
        return self._beside(MANIFEST_SUFFIX)

    @property
    def epochs(self) -> Path:
        return self._beside(EPOCHS_SUFFIX)

    @property
    def feature(self) -> Path:
        return self._beside(FEATURE_SUFFIX)

    @property
    def task(self) -> Path:
        return self._beside(TASK_SUFFIX)

    @property
    def int8(self) -> Path:
        return self._beside(INT8_SUFFIX)

    def sidecars(self) -> dict[str, Path]:
        """Every file written beside the model, by what it is: manifest, epochs, feature, task."""
        return {"manifest": self.manifest, "epochs": self.epochs, "feature": self.feature, "task": self.task}


def model_files(model: str | Path) -> ModelFiles:
    """The files of the keyed model at ``model`` (see :class:`ModelFiles`)."""
    return ModelFiles(Path(model))


# -- image suffixes -------------------------------------------------------------------------------------------

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".npy")
"""Files read as pictures (lower-case; ``.npy``: a frame saved by numpy)."""


def is_image(path: str | Path) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


# -- operator families ----------------------------------------------------------------------------------------

ELEMENTWISE_UNARY = (
    "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Celu", "Softplus",
    "Softsign", "ThresholdedRelu", "Gelu", "Mish", "Erf", "Exp", "Log", "Abs", "Neg", "Sqrt", "Reciprocal",
    "Floor", "Ceil", "Round", "Sign", "Sin", "Cos", "Tan", "Atan", "Asin", "Acos", "Sinh", "Cosh", "Asinh",
    "Acosh", "Atanh", "Identity", "Dropout", "Clip", "Cast", "IsNaN", "IsInf", "Not", "Shrink",
)
"""ONNX operators that compute each output element from the same element of one tensor (any other input is a
scalar: Clip's bounds, Dropout's ratio), so they commute with any reordering of the elements. The keyed
compiler's ``UnaryPass`` handles exactly these (``export/passes/pointwise.py``)."""

ELEMENTWISE_BINARY = ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean")
"""ONNX operators that combine their inputs element by element, with numpy broadcasting (Sum, Mean, Max and Min
take any number of inputs). The keyed compiler's ``BinaryPass`` handles exactly these
(``export/passes/elementwise.py``)."""

PREFIX_UNARY = ("Relu", "Clip", "Identity", "Neg", "Abs", "Sigmoid", "Tanh", "Floor", "Ceil", "Round", "Sqrt",
                "Exp", "Log", "LeakyRelu", "Elu", "HardSigmoid", "HardSwish", "Softplus")
"""The part of :data:`ELEMENTWISE_UNARY` that the channels-last rewrite (``export/prepare/channels_last.py``) moves
behind a TensorFlow export's input Transpose: the common activations, roundings and the arithmetic of Keras's
preprocessing layers. Every element-wise operator commutes with that Transpose; the rewrite keeps to the
operators it was written and tested for, so widening it to the family changes which models it rewrites."""

PREFIX_BINARY = ("Add", "Sub", "Mul", "Div", "Max", "Min")
"""The part of :data:`ELEMENTWISE_BINARY` that the channels-last rewrite moves behind the input Transpose (Keras's
``Rescaling`` and ``Normalization``: ``x * s + o``, ``(x - m) * r``; and Max/Min)."""
