"""How a plain model wants its pixels, from what its exporter wrote, the options, or nobody.

A keyed model folds its plain model's preprocessing in (codes to the 0..255 scale, channel order,
``(x - mean) / std``), and the device fits frames by the model's rule (``edge.fitting``). Wrong
numbers here give wrong answers without a word, so each value comes from, in order:

1. the options (``keyify --mean/--std/--model-order/--fit/--pad``);
2. what the exporter wrote in the ONNX metadata:

   - **ultralytics** (``author`` = Ultralytics): RGB, pixels / 255 (mean 0, std 255), and the framing
     of its predictor for the model's head: ``letterbox`` padded with 114 (``LetterBox``: detect,
     segment, pose, obb, YOLOv10), ``stretch`` for RT-DETR (``head`` = RTDETRDecoder: its predictor's
     ``scale_fill``), ``crop`` for classifiers (``classify_transforms``: resize the short side, centre
     crop);
   - **timm / torchvision** ``pretrained_cfg`` (JSON, as timm keeps it: ``mean`` and ``std`` on the
     0..1 scale, RGB), when someone wrote it into the metadata: mean and std times 255, ``crop``;

3. nobody: mean 0, std 1, ``crop``, RGB. ``normalize = "metadata"`` (what ``keycam keyify`` asks for)
   refuses that in one line naming the flags; ``normalize = "none"`` takes it, asked for.

Every value's origin goes into the manifest (``InputSpec.sources``), which ``keycam inspect`` shows.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from export.errors import UnsupportedModel

ULTRALYTICS_PAD = 114.0  # LetterBox's padding_value


@dataclass(frozen=True)
class Preprocessing:
    """What the model expects; None where this source says nothing. ``source`` names where it came from."""

    source: str
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    model_order: str | None = None
    fit: str | None = None
    pad: float | None = None


def from_metadata(metadata: dict[str, str]) -> Preprocessing | None:
    """What the exporter wrote about the model's pixels, or None when it wrote nothing keycam reads."""
    if metadata.get("author", "").strip().lower().startswith("ultralytics"):
        return _ultralytics(metadata)
    if "pretrained_cfg" in metadata:
        return _pretrained_cfg(metadata["pretrained_cfg"])
    return None


def _ultralytics(metadata: dict[str, str]) -> Preprocessing:
    head, task = metadata.get("head", ""), metadata.get("task", "")
    if head == "RTDETRDecoder":
        fit, pad = "stretch", None
    elif task == "classify":
        fit, pad = "crop", None
    else:
        fit, pad = "letterbox", ULTRALYTICS_PAD
    return Preprocessing("ultralytics metadata", (0.0,), (255.0,), "rgb", fit, pad)


def _pretrained_cfg(text: str) -> Preprocessing | None:
    try:
        config = json.loads(text)
        mean = tuple(float(v) * 255.0 for v in config["mean"])
        std = tuple(float(v) * 255.0 for v in config["std"])
    except (ValueError, KeyError, TypeError):
        return None  # not the shape timm writes: say nothing rather than guess
    if not mean or len(mean) != len(std) or not all(v > 0 for v in std):
        return None
    return Preprocessing("pretrained_cfg metadata", mean, std, "rgb", "crop")


@dataclass(frozen=True)
class Resolved:
    """The preprocessing a compile uses, and where each value came from."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    model_order: str
    fit: str
    pad: float
    sources: dict[str, str]


def resolve(options, metadata: dict[str, str], where: str = "the model") -> Resolved:
    """The options laid over the model's metadata, over the defaults; refuses, when ``options.normalize`` is
    ``"metadata"``, a normalisation that nobody gave."""
    said = from_metadata(metadata) or Preprocessing("")
    sources: dict[str, str] = {}

    def pick(name: str, option, flag: str, default):
        if option is not None:
            sources[name] = flag
            return option
        if getattr(said, name) is not None:
            sources[name] = said.source
            return getattr(said, name)
        sources[name] = "default (nothing said)"
        return default

    normalize = getattr(options, "normalize", None)
    if normalize == "none":
        mean, std = (0.0,), (1.0,)
        sources["mean"] = sources["std"] = "--normalize none"
    else:
        mean = pick("mean", options.mean, "--mean", (0.0,))
        std = pick("std", options.std, "--std", (1.0,))
        if normalize == "metadata" and "default (nothing said)" in (sources["mean"], sources["std"]):
            raise UnsupportedModel("(options)", "normalize", f"{where} does not say how its input is normalised "
                                   "(no ultralytics or pretrained_cfg metadata); pass --mean R,G,B --std R,G,B on "
                                   "the 0..255 scale (ImageNet: --mean 123.675,116.28,103.53 --std 58.395,57.12,"
                                   "57.375; pixels / 255: --mean 0 --std 255; mediapipe's [-1, 1]: --mean 127.5 "
                                   "--std 127.5), or --normalize none to feed it the raw 0..255 values")
    model_order = pick("model_order", options.model_order, "--model-order", "rgb")
    fit = pick("fit", options.fit, "--fit", "crop")
    pad = pick("pad", options.pad, "--pad", ULTRALYTICS_PAD if fit == "letterbox" else 0.0)
    if fit != "letterbox":
        pad, sources["pad"] = 0.0, "not used (no letterbox)"
    return Resolved(tuple(mean), tuple(std), model_order, fit, float(pad), sources)
