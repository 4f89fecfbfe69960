"""The manifest of a keyed model: what a device must know to feed it and read it.

``export`` writes it (beside the model as ``*.manifest.json`` and inside the
ONNX metadata as ``keycam.manifest``); ``edge`` reads it through
onnxruntime's metadata, without the ``onnx`` package. It lives here, the one
package both depend on, and holds no key material: layouts are named by
their key-schedule coordinates (``keys.sensor_info`` / ``keys.layer_info``),
which only a key holder can turn into permutations.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_serializer, model_validator

from firmware_sim.errors import ModelError
from firmware_sim.spec import ReadoutSpec
from firmware_sim.words import TASKS

MANIFEST_FORMAT = "keycam-manifest/1"
METADATA_KEY = "keycam.manifest"
FINGERPRINT_KEY = "keycam.fingerprint"


FITS = ("crop", "letterbox", "stretch")
"""How a camera frame is brought to the model's size (``InputSpec.fit``; ``edge.sensor.fit_frame``)."""


def shape_text(shape) -> str:
    """A manifest shape as people read it: ``(N, 3, 224, 224)``, N for a dynamic dimension (None)."""
    return "(" + ", ".join("N" if d is None else str(d) for d in shape) + ")"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayoutRef(_Strict):
    """Where a layout comes from in the key schedule."""

    kind: Literal["sensor", "layer", "natural"]
    height: int = Field(ge=1)
    width: int = Field(ge=1)
    label: str = ""
    epoch: int = Field(default=0, ge=0)


_Gain = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Number = Annotated[float, Field(allow_inf_nan=False)]


class IspSpec(_Strict):
    """The keyed model's mini-ISP for a Bayer spec: per cell, from (R, Gr, Gb, B) output codes to R, G, B on
    the 0..255 scale, before the plain model's own normalisation (``edge.isp.isp_rgb`` computes it in numpy)::

        v   = cell - black_level                        # output codes
        rgb = (v_R * wb[0], (v_Gr + v_Gb) / 2 * wb[1], v_B * wb[2])
        rgb = ccm @ rgb                                 # when ccm is given (row-major 3x3)
        rgb = clip(rgb, 0, white) / white               # [0, 1]
        rgb = rgb ** (1 / gamma)                        # when gamma is given
        out = 255 * rgb
    """

    black_level: float = Field(ge=0, allow_inf_nan=False, description="subtracted from every code, output codes")
    wb_gains: list[_Gain] = Field(min_length=3, max_length=3, description="white-balance gains of R, G, B")
    ccm: list[_Number] | None = Field(default=None, min_length=9, max_length=9,
                                      description="3x3 colour matrix, row-major: rgb_out = ccm @ rgb_in")
    gamma: float | None = Field(default=None, gt=0, allow_inf_nan=False,
                                description="display gamma: the [0, 1] values are raised to 1 / gamma")
    white: float = Field(gt=0, allow_inf_nan=False, description="the level (after black, gains and ccm) that is 255")


class InputSpec(_Strict):
    name: str
    shape: list[int | None] = Field(description="(N, H, W, C); N is dynamic (null); a Bayer spec's C = 4 "
                                                "(R, Gr, Gb, B) over H x W cells")
    dtype: Literal["uint8", "uint16"]
    channel_order: Literal["rgb", "bgr"] = Field(description="channel order of the measurement")
    model_channel_order: Literal["rgb", "bgr"] = Field(description="channel order the plain model expects")
    mean: list[float] = Field(description="per-channel mean subtracted, 0..255 scale, model channel order")
    std: list[float] = Field(description="per-channel std divided by, 0..255 scale, model channel order")
    code_scale: float = Field(description="factor that brings measurement codes to the 0..255 scale")
    plain_layout: Literal["nchw", "nhwc"] = Field(
        default="nchw", description="the plain model's own input layout (TensorFlow exports take NHWC)")
    isp: IspSpec | None = Field(
        default=None, description="Bayer specs: the mini-ISP that turns cells into the plain model's RGB, on the "
                                  "0..255 scale (then mean, std and model_channel_order apply as for pixels)")
    fit: Literal[FITS] = Field(
        default="crop", description="how a camera frame is brought to the model's H x W before the readout: crop "
                                    "(centre-crop to the aspect ratio, then resize), letterbox (scale to fit, centre, "
                                    "pad with `pad`: ultralytics' LetterBox), stretch (resize to H x W)")
    pad: float = Field(default=0.0, ge=0, le=255, allow_inf_nan=False,
                       description="letterbox: the padding value, on the 0..255 scale of the picture")
    sources: dict[str, str] = Field(
        default_factory=dict, description="where each preprocessing value came from (mean, std, fit, pad, "
                                          "model_channel_order): an option, the model's metadata, or a default")

    @model_serializer(mode="wrap")
    def _no_isp_for_pixels(self, handler):
        """Fields added later are written only when set: a manifest of a pixel model with the default framing
        and no recorded sources is written as before they existed."""
        data = handler(self)
        if isinstance(data, dict):
            for name, empty in (("isp", None), ("fit", "crop"), ("pad", 0.0), ("sources", {})):
                if data.get(name, empty) == empty:
                    data.pop(name, None)
        return data


class Segment(_Strict):
    """A run of consecutive entries along an output's position axis that keeps one layout of its own (the heads
    of a detector concatenated along the anchors: each head's positions in its own keyed order)."""

    length: int = Field(ge=1, description="entries of the position axis in this segment")
    layout: LayoutRef | None = Field(default=None, description="its layout; None: natural order")
    group: int = Field(default=1, ge=1, description="consecutive entries per position")


class OutputSpec(_Strict):
    name: str
    shape: list[int | None]
    kind: Literal["plain", "dense"] = Field(description="dense outputs stay scrambled in `layout`")
    form: Literal["plain", "nchw", "flat-chw", "flat-hwc", "channels-last", "anchors", "tokens"] = "plain"
    layout: LayoutRef | None = None
    group: int = Field(default=1, ge=1, description="anchors: consecutive entries per position")
    segments: list[Segment] | None = Field(default=None, description="positions in segments of their own "
                                                                     "layouts, in order (see Segment)")
    axis: int | None = Field(default=None, description="the position axis, where it is not the form's own")

    @model_serializer(mode="wrap")
    def _compact(self, handler):
        data = handler(self)
        if isinstance(data, dict):
            for name in ("segments", "axis"):
                if data.get(name) is None:
                    data.pop(name, None)
        return data


class QuantizationSpec(_Strict):
    """How a model was quantised (``keycam quantize``), for ``keycam inspect`` and the device's summary."""

    format: Literal["QDQ", "QOperator"] = "QDQ"
    weights: str = Field(description="e.g. 'int8, per channel'")
    activations: str = Field(description="e.g. 'uint8, per tensor'")
    calibration: str = Field(description="what it was calibrated on: frames, where, through which readout")
    method: str = Field(default="MinMax", description="the calibration method")
    tool: str = Field(description="the quantiser and its version, e.g. 'onnxruntime 1.32.0'")


class SplitSpec(_Strict):
    after: str
    tensor: str
    features: OutputSpec


class Manifest(_Strict):
    format: Literal["keycam-manifest/1"] = MANIFEST_FORMAT
    role: Literal["full", "feature", "task"] = "full"
    key_fingerprint: str
    policy: Literal["fresh", "boundary"]
    spec: ReadoutSpec
    epoch: int = Field(ge=0)
    plain_sha256: str
    layout_salt: str
    input: InputSpec
    outputs: list[OutputSpec]
    split: SplitSpec | None = None
    sensor_tables: list[str] = Field(default_factory=list, description="initializers that depend on the sensor layout")
    table_groups: dict[str, Annotated[int, Field(ge=1)]] = Field(
        default_factory=dict, description="sensor tables whose entries index codes, not positions: table -> codes "
                                          "per position g (entry = position·g + channel; absent: g = 1)")
    epoch_rotation: bool = Field(default=False, description="the device can rebuild the sensor tables for another "
                                                             "key epoch from the recipes beside the model")
    task: Literal[("", *TASKS)] = Field(
        default="", description="what the outputs are ('': unknown; the device summarises tensors)")
    labels: list[str] = Field(default_factory=list, description="class names, in class-index order")
    decoder: str = Field(default="", description="the decoder the model's head needs where its output shapes do "
                                                 "not tell (rtdetr, end2end; '': chosen by the shapes)")
    kpt_shape: list[Annotated[int, Field(ge=1)]] | None = Field(
        default=None, min_length=2, max_length=2, description="pose: [keypoints, values per keypoint], from the "
                                                              "exporter's metadata")
    batch: int | None = Field(default=None, ge=1, description="the fixed batch size the model was exported with "
                                                              "(None: dynamic)")
    quantization: QuantizationSpec | None = None
    model_sha256: str = Field(default="", pattern=r"^([0-9a-f]{64})?$",
                              description="the model file's digest, its own value read as 64 zeros "
                                          "(firmware_sim.integrity): checked when the model loads")
    epochs_sha256: str = Field(default="", pattern=r"^([0-9a-f]{64})?$",
                               description="SHA-256 of the epoch recipes beside the model (KEYED.epochs.npz)")

    @model_validator(mode="after")
    def _groups_of_tables(self) -> Manifest:
        stray = sorted(set(self.table_groups) - set(self.sensor_tables))
        if stray:
            raise ValueError(f"table_groups names {stray[0]!r}, which is not one of sensor_tables")
        return self

    @model_serializer(mode="wrap")
    def _compact(self, handler):
        """Fields added after the first release are written only when set: older manifests stay as they were."""
        data = handler(self)
        if isinstance(data, dict):
            for name, empty in (("table_groups", {}), ("task", ""), ("labels", []), ("batch", None),
                                ("quantization", None), ("decoder", ""), ("kpt_shape", None), ("model_sha256", ""),
                                ("epochs_sha256", "")):
                if data.get(name, empty) == empty:
                    data.pop(name, None)
        return data

    def refusal(self, fingerprint: str = "", epoch: int | None = None, tables_epoch: int | None = None) -> str | None:
        """Why a measurement made with key ``fingerprint`` in key epoch ``epoch`` does not fit this model, in words
        (None: it fits). The one check of "does this model fit this frame", for the device, the server and replays.

        An empty ``fingerprint`` or a None ``epoch`` is not checked (a source that does not know it). A model
        whose sensor tables depend on the sensor layout reads only the epoch they were made for
        (``tables_epoch``: rebuilt on the device for another epoch; default the manifest's own). A model with no
        sensor tables (a split's task model; a model with no spatial layer before its outputs) reads every
        epoch: its dense outputs then carry the frame's own sensor layout (``edge.restore``)."""
        if fingerprint and fingerprint != self.key_fingerprint:
            return f"it was measured with key {fingerprint}, and the model is keyed for {self.key_fingerprint}"
        built = self.epoch if tables_epoch is None else tables_epoch
        if epoch is not None and self.sensor_tables and epoch != built:
            return f"it is from key epoch {epoch}, and the model reads key epoch {built}"
        return None

    def to_json(self) -> str:
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str, source: str = "manifest") -> Manifest:
        try:
            return cls.model_validate(json.loads(text))
        except (ValidationError, json.JSONDecodeError) as error:
            first = str(error).splitlines()[0]
            raise ModelError(f"{source} is not a valid keycam manifest ({first})") from None
