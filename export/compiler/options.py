"""What a compile is asked for: the options of :func:`export.keyify.keyify`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from export.errors import UnsupportedModel
from firmware_sim.manifest import IspSpec
from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec


@dataclass(frozen=True)
class IspOptions:
    """The mini-ISP a keyed model for a Bayer spec begins with (see ``firmware_sim.manifest.IspSpec``).

    ``black_level`` is subtracted from every code (output codes), ``wb_gains`` multiply R, G (the mean of
    Gr and Gb) and B, ``ccm`` (9 numbers, row-major) mixes them, the result is clipped to [0, white]
    (default: the spec's top output code minus the black level), raised to ``1 / gamma`` on [0, 1] when
    ``gamma`` is given, and put on the 0..255 scale that ``mean`` and ``std`` are given in.
    """

    black_level: float = 0.0
    wb_gains: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ccm: tuple[float, ...] | None = None
    gamma: float | None = None
    white: float | None = None

    def __post_init__(self) -> None:
        def refuse(flag: str, reason: str) -> None:
            raise UnsupportedModel("(options)", "isp", f"--isp-{flag} {reason}")

        if not _finite(self.black_level) or self.black_level < 0:
            refuse("black", f"{self.black_level!r}: the black level must be a finite number >= 0 (output codes)")
        if len(self.wb_gains) != 3 or not all(_finite(g) and g > 0 for g in self.wb_gains):
            refuse("wb", f"{_text(self.wb_gains)}: give 3 finite gains greater than 0 (R,G,B)")
        if self.ccm is not None and (len(self.ccm) != 9 or not all(_finite(v) for v in self.ccm)):
            refuse("ccm", f"{_text(self.ccm)}: give 9 finite numbers, the 3x3 colour matrix row by row")
        if self.gamma is not None and not (_finite(self.gamma) and self.gamma > 0):
            refuse("gamma", f"{self.gamma!r}: the gamma must be a finite number greater than 0 (e.g. 2.2)")
        if self.white is not None and not (_finite(self.white) and self.white > 0):
            refuse("white", f"{self.white!r}: the white level must be a finite number greater than 0")

    def resolve(self, spec: ReadoutSpec) -> IspSpec:
        """The manifest's record of this ISP for ``spec``'s output codes (the default white level filled in)."""
        if self.black_level >= spec.output_max:
            raise UnsupportedModel("(options)", "isp", f"--isp-black {self.black_level:g} is not below the spec's "
                                                       f"top output code {spec.output_max}; use a smaller black level")
        white = self.white if self.white is not None else spec.output_max - self.black_level
        return IspSpec(black_level=float(self.black_level), wb_gains=[float(g) for g in self.wb_gains],
                       ccm=None if self.ccm is None else [float(v) for v in self.ccm],
                       gamma=None if self.gamma is None else float(self.gamma), white=float(white))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _text(values) -> str:
    try:
        return ",".join(f"{v:g}" for v in values)
    except (TypeError, ValueError):
        return repr(values)


MEAN_MAX = 1e4  # |mean|, 0..255 scale: the folded weights stay finite and exact enough in float32
STD_MIN, STD_MAX = 1e-3, 1e6  # a smaller std (1e-320) makes the folded weights inf or NaN


@dataclass(frozen=True)
class KeyifyOptions:
    size: tuple[int, int] | None = None  # (H, W), for a model whose spatial size is dynamic
    # per channel (or one for all), on the 0..255 scale; None: what the model's metadata says, else 0 and 1
    # (export/compiler/preprocessing.py; ``normalize``: "metadata" refuses a model that says nothing, "none"
    # asks for the raw 0..255 values)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"  # the measurement's: rgb | bgr (a Bayer spec's cells are R, Gr, Gb, B: rgb)
    model_order: str | None = None  # what the plain model expects (None: its metadata's, else rgb)
    spec: ReadoutSpec | None = DEFAULT_SPEC  # None: the sealed preset that fits the model (sealed_default)
    policy: str = "boundary"  # boundary | fresh (the paper's: every feature map scrambled, chosen explicitly)
    split_after: str | None = None  # a tensor or node name: cut into feature and task models there
    epoch: int = 0  # the key epoch of the sensor layout
    isp: IspOptions | None = None  # Bayer specs: the mini-ISP (None: IspOptions(), identity gains, no ccm/gamma)
    # class names in index order, or a labels file (one name per line); None: the plain model's metadata `names`
    labels: tuple[str, ...] | str | Path | None = None
    task: str | None = None  # classify | detect | segment for the manifest (None: the plain model's metadata `task`)
    fit: str | None = None  # how frames are fitted: crop | letterbox | stretch (None: its metadata's, else crop)
    pad: float | None = None  # letterbox padding, 0..255 scale (None: its metadata's, else 114 for a letterbox)
    normalize: str | None = None  # None: as above; "metadata": refuse a model that says nothing; "none": 0 and 1
    split_reveals_picture: bool = False  # accept a split at or before the first spatial layer (export/compiler/split.py)

    def __post_init__(self) -> None:
        def refuse(flag: str, reason: str) -> None:
            raise UnsupportedModel("(options)", "normalize", f"--{flag} {reason}")

        if self.mean is not None and not all(_finite(v) and abs(v) <= MEAN_MAX for v in self.mean):
            refuse("mean", f"{_text(self.mean)}: each mean is a finite number on the 0..255 scale, within "
                           f"+-{MEAN_MAX:g} (ImageNet's: 123.675,116.28,103.53)")
        if self.std is not None and not all(_finite(v) and STD_MIN <= v <= STD_MAX for v in self.std):
            refuse("std", f"{_text(self.std)}: each std is a finite number on the 0..255 scale, in {STD_MIN:g}.."
                          f"{STD_MAX:g} (ImageNet's: 58.395,57.12,57.375; pixels / 255: 255)")

    @property
    def isp_spec(self) -> IspSpec | None:
        """The mini-ISP for a Bayer spec (the default one when none is given), None for a pixel spec."""
        if not self.spec.is_bayer:
            return None
        return (self.isp or IspOptions()).resolve(self.spec)
