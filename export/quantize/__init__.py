"""int8 keyed models: onnxruntime's static quantiser run on a keyed model, calibrated on measurements.

A keyed model is an ONNX model like any other, so onnxruntime's quantiser (``export/quantize/ort.py``:
pre-processing, QDQ, int8 weights per channel, uint8 activations, MinMax) quantises it as it would the
plain one. What keycam adds:

- **Calibration on measurements.** The keyed model reads the sensor's codes in the sensor layout, so
  it is calibrated on the measurements of the calibration frames, read out as the device reads them
  (``keycam quantize`` prepares and measures them with ``edge.sensor.Readout``); this package takes the
  measurements as arrays.
- **Key epochs survive.** The sensor tables keep their names and values, so the device rebuilds them
  per epoch as for a float model, from the same ``.epochs.npz`` recipes, copied beside the int8 model
  (``keyed.py``).
- **Exactness.** Under ``boundary`` the plain network runs unchanged after one gather of the
  measurement's codes, which is integer data movement: the quantiser sees, tensor for tensor, the
  values it sees in the plain model calibrated on the plain frames. So keyed-int8 equals plain-int8
  bit for bit once the first layer is the plain model's own (``unfold.py``: the compiler folds
  ``1/std`` into the first Conv's weights, which changes their int8 rounding when the channels'
  stds differ). Under ``fresh`` the convolutions are gathers and matrix products, quantised as such:
  close to the plain int8 model, not equal to it.
- **Splits.** A full model's feature and task models, when they are beside it, are quantised too: the
  feature model on the measurements, the task model on the float feature model's outputs (the values
  the full model's quantiser sees at the split).
- **The manifest records it** (``Manifest.quantization``: format, weights, activations, calibration,
  method, tool), and ``keycam inspect`` shows it.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx

from export.errors import ModelError
from export.quantize import ort
from export.quantize.front import reshaped_recipes, table_shapes
from export.quantize.keyed import check_measurements, quantize_keyed, read_manifest
from export.quantize.unfold import plain_first_weight
from export.package.save import KEY_EQUIVALENT, write_family
from export.package.stamp import stamped
from firmware_sim.manifest import Manifest
from firmware_sim.words import MODEL_SUFFIX, TASK_SUFFIX, model_files

__all__ = ["QuantizeResult", "quantize_file", "quantize_plain"]


@dataclass
class QuantizeResult:
    written: list[Path] = field(default_factory=list)
    manifests: dict[str, Manifest] = field(default_factory=dict)  # role -> manifest
    notes: dict[str, str] = field(default_factory=dict)  # role -> how its first layer was quantised
    frames: int = 0


def _load(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise ModelError(f"model '{path}' does not exist")
    try:
        return onnx.load(path)
    except Exception as error:  # onnx's own decode errors
        raise ModelError(f"model '{path}' is not an ONNX model ({str(error).splitlines()[0][:80]})") from None


def _run(model: onnx.ModelProto, frames: np.ndarray) -> np.ndarray:
    """The float feature model's outputs on the measurements (the task model's calibration data), computed as
    onnxruntime's calibrator computes the full model's tensors (no graph optimisation), to the last bit."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    fixed = session.get_inputs()[0].shape[0]
    return np.concatenate([session.run(None, {name: batch})[0]
                           for batch in ort.batches(frames, fixed if isinstance(fixed, int) else None)])


def _recipes(path: Path, model: onnx.ModelProto, manifest: Manifest) -> bytes:
    """The float model's epoch recipes for the int8 model: the same tables under the same names, each recipe
    shaped as its table is in the int8 model (``front.py`` reshapes the natural-order gather's)."""
    names = list(manifest.sensor_tables)
    with np.load(path, allow_pickle=False) as stored:
        recipes = reshaped_recipes(dict(stored), names, table_shapes(model, names))
    buffer = io.BytesIO()
    np.savez(buffer, **recipes)
    return buffer.getvalue()


def quantize_file(keyed: str | Path, measurements: np.ndarray, output: str | Path, *, calibration: str,
                  plain: str | Path | onnx.ModelProto | None = None) -> QuantizeResult:
    """Quantise the keyed model at ``keyed`` (and its feature and task models beside it) into ``output``.

    ``measurements``: (N, H, W, C) calibration measurements, the model's input dtype, read out in the
    model's key epoch. ``calibration``: what they are, for the manifest. ``plain``: the plain model it
    was compiled from (optional; its first layer makes keyed-int8 equal plain-int8, see ``unfold.py``).
    """
    keyed, output = Path(keyed), Path(output)
    if output.suffix != MODEL_SUFFIX:
        raise ModelError(f"output '{output}' should end in {MODEL_SUFFIX}")
    model = _load(keyed)
    manifest = read_manifest(model, str(keyed))
    if manifest.role == "task":
        full = Path(str(keyed).removesuffix(TASK_SUFFIX) + MODEL_SUFFIX)
        raise ModelError(f"model '{keyed}' is a task model, calibrated on features: quantise its full model "
                         f"'{full}' (the feature and task models beside it are quantised with it)")
    check_measurements(measurements, manifest, str(keyed))
    weight = plain_first_weight(plain, manifest) if plain is not None else None
    jobs = [("full" if manifest.role == "full" else "feature", keyed, output, model, manifest, measurements)]
    ins, outs = model_files(keyed), model_files(output)
    if manifest.role == "full" and manifest.split is not None and ins.feature.is_file() and ins.task.is_file():
        feature = _load(ins.feature)
        feature_manifest = read_manifest(feature, str(ins.feature))
        task = _load(ins.task)
        features = _run(feature, measurements)
        jobs.append(("feature", ins.feature, outs.feature, feature, feature_manifest, measurements))
        jobs.append(("task", ins.task, outs.task, task, read_manifest(task, str(ins.task)), features))
    result = QuantizeResult(frames=len(measurements))
    made = []
    for role, source, target, float_model, float_manifest, data in jobs:
        data = ort.batches(data, _fixed(float_model))
        int8, int8_manifest, note = quantize_keyed(float_model, float_manifest, data, calibration=calibration,
                                                   source=str(source), plain_weight=weight)
        made.append((source, target, int8, int8_manifest))
        result.manifests[role], result.notes[role] = int8_manifest, note
    files = []
    for source, target, int8, int8_manifest in made:  # written only once every model is quantised
        paths = model_files(target)
        recipes = model_files(source).epochs
        epochs = None
        if int8_manifest.sensor_tables and int8_manifest.epoch_rotation and recipes.is_file():
            epochs = _recipes(recipes, int8, int8_manifest)
        data, final = stamped(int8, int8_manifest, epochs)  # its own digest and its recipes'
        if epochs is not None:
            files.append((paths.epochs, epochs, KEY_EQUIVALENT))
        files += [(target, data, KEY_EQUIVALENT), (paths.manifest, final.to_json().encode() + b"\n", None)]
        result.manifests[_role_of(result, int8_manifest)] = final
    result.written += write_family(files)  # together: a full disk leaves none of them
    return result


def _role_of(result: QuantizeResult, manifest) -> str:
    """The role ``result.manifests`` keeps ``manifest`` under."""
    return next(role for role, kept in result.manifests.items() if kept is manifest)


def _fixed(model: onnx.ModelProto) -> int | None:
    """The batch a model was exported with (None: dynamic)."""
    dim = model.graph.input[0].type.tensor_type.shape.dim
    return dim[0].dim_value if dim and dim[0].HasField("dim_value") and dim[0].dim_value > 0 else None


def quantize_plain(plain: str | Path | onnx.ModelProto, inputs: np.ndarray) -> onnx.ModelProto:
    """The plain model quantised with the same settings, calibrated on ``inputs`` (its own float input, e.g.
    ``edge.lab.verify.plain_input`` of the same frames): the reference keyed-int8 is compared with."""
    model = plain if isinstance(plain, onnx.ModelProto) else _load(Path(plain))
    return ort.quantize(model, ort.batches(np.asarray(inputs, np.float32), _fixed(model)), what="plain model")
