"""keyify: compile a plain ONNX CNN into its exact keyed twin (the compiler's public API).

The keyed model takes the measurement exactly as the sensor emits it
(``firmware_sim``'s readout, batched): (N, H, W, C) codes of the spec's
output dtype, positions in the sensor layout L0. It first does what the plain
model's user did (codes to the 0..255 scale, channel order, (x - mean) / std),
then, by policy (a Bayer spec's cells first go through the mini-ISP, ``export/compiler/isp.py``,
which gives the RGB frame the plain model reads):

- ``fresh`` (the paper's): every feature map stays scrambled. Maps are
  (N, H*W, C) tokens; each spatial layer gathers its taps through an index
  table built from its input and output layouts and reduces them densely
  (``export/passes``). Layouts are one per class of tensors that must agree
  (a union-find over element-wise operands), key-derived, the input's class
  being L0.
- ``boundary``: one gather puts the measurement in natural order inside the
  model; the plain network then runs unchanged on onnxruntime's fast kernels.
  Scrambling protects the data where it crosses a trust boundary (the
  measurement, and the features at a split), not inside the model's memory.

With ``split_after`` the model is cut into a feature model (on the device)
and a task model (anywhere); the features leave scrambled in a key-derived
layout, and task(feature(x)) equals the keyed model's output.

The steps, one module each in ``export/compiler/``: prepare the plain graph
(``export/prepare``), check the options and normalise the input (``inputs``),
emit the body under the policy (``fresh`` or ``boundary``), the outputs
(``outputs``), the split (``split``), and the models with their manifests
(``assemble``). Saving them is ``export/package/save.py``.

A model exported with a fixed batch (ultralytics' and TFLite's default) compiles to a keyed model of
that batch (``Manifest.batch``, the measurement's first dimension); the plain model's metadata
(ultralytics' ``names``, ``stride``, ``imgsz``, ``task``) is kept in the keyed model's, and its task
and class names go into the manifest (``export/compiler/metadata.py``).

``keyify`` never ends in a traceback: whatever fails, it raises one :class:`~export.errors.ModelError`
(a file that cannot be read) or :class:`~export.errors.UnsupportedModel` (naming the node, the op and
why), one line.
"""

from __future__ import annotations

from dataclasses import replace

import onnx

from export.compiler.assemble import KeyifyResult, assemble
from export.compiler.boundary import compile_boundary
from export.compiler.compilation import Compilation
from export.compiler.fresh import compile_fresh
from export.compiler.inputs import check_options
from export.compiler.metadata import plain_metadata
from export.compiler.options import IspOptions, KeyifyOptions
from export.compiler.outputs import emit_output
from export.compiler.preprocessing import resolve
from export.compiler.split import cut, split_target
from export.errors import ModelError, UnsupportedModel
from export.prepare.graph import prepare
from firmware_sim.errors import KeycamError
from firmware_sim.keys import MasterKey
from firmware_sim.spec import PRESETS, ReadoutSpec

__all__ = ["IspOptions", "KeyifyOptions", "KeyifyResult", "keyify"]


def keyify(plain: onnx.ModelProto | str, key: MasterKey, options: KeyifyOptions = KeyifyOptions()) -> KeyifyResult:
    """Compile ``plain`` into its keyed twin (and a feature/task pair when ``options.split_after`` is set).

    Raises a one-line ``ModelError`` or ``UnsupportedModel`` for anything it cannot compile exactly."""
    try:
        return _keyify(plain, key, options)
    except UnsupportedModel as error:
        if "\n" in str(error):
            raise UnsupportedModel(error.node, error.op, " ".join(error.reason.split())) from None
        raise
    except KeycamError as error:
        if "\n" in str(error):
            raise ModelError(" ".join(str(error).split())) from None
        raise
    except MemoryError:
        raise ModelError("the model is too large to compile in this machine's memory") from None
    except Exception as error:  # noqa: BLE001 - a bug: still one line, never a traceback
        text = " ".join(str(error).split())[:300]
        raise UnsupportedModel("(graph)", "keyify", f"the keyed compiler failed ({type(error).__name__}: {text}); "
                                                    "this is a compiler bug, please report it with the model") from None


def sealed_default(channels: int) -> ReadoutSpec:
    """The readout spec a new configuration gets when none is named: the sealed preset for the model's channels."""
    return PRESETS["gray8-sealed" if channels == 1 else "rgb8-sealed"]


def _keyify(plain: onnx.ModelProto | str, key: MasterKey, options: KeyifyOptions) -> KeyifyResult:
    graph = prepare(plain, options.size)
    if options.spec is None:  # a new configuration: sealed (readout spec version 4), gray or RGB as the model reads
        options = replace(options, spec=sealed_default(graph.channels))
    check_options(graph, options)
    chosen = resolve(options, plain_metadata(graph.model), f"model {graph.model.graph.name or '(unnamed)'!r}")
    options = replace(options, mean=chosen.mean, std=chosen.std, model_order=chosen.model_order, fit=chosen.fit,
                      pad=chosen.pad, normalize=None)  # decided: what the compile uses, every value given
    check_options(graph, options)
    job = Compilation(graph, key, options, chosen.sources)
    crossing = split_target(graph, options.split_after) if options.split_after else None
    if options.policy == "boundary":
        context, values = None, compile_boundary(job)
    else:
        context = compile_fresh(job, crossing)
        values = context.values
    outputs = [emit_output(job, name, values[name], context) for name in graph.outputs]
    result = assemble(job, outputs, cut(job, crossing, values) if crossing is not None else None)
    if options.labels is not None:  # the user's names (a model's own metadata is taken as it comes)
        _check_labels(result.task_manifest or result.manifest)
    return result


def _check_labels(manifest) -> None:
    """Class names given for a classifier (one output of shape (N, K)) name its K classes, no more and no fewer:
    three names for ten classes would answer seven classes with no name, or with another class's."""
    scores = [o for o in manifest.outputs if len(o.shape) == 2 and o.shape[1] is not None]
    if not manifest.labels or manifest.task not in ("", "classify") or len(manifest.outputs) != 1 or not scores:
        return
    (output,) = scores
    if len(manifest.labels) != output.shape[1]:
        raise UnsupportedModel("(options)", "labels", f"{len(manifest.labels)} class names for output "
                                                      f"'{output.name}' of {output.shape[1]} classes; give one name "
                                                      f"per class, in class-index order")
