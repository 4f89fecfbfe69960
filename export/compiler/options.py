"""What a compile is asked for: the options of :func:`export.keyify.keyify`."""

from __future__ import annotations

from dataclasses import dataclass

from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec


@dataclass(frozen=True)
class KeyifyOptions:
    size: tuple[int, int] | None = None  # (H, W), for a model whose spatial size is dynamic
    mean: tuple[float, ...] | None = None  # per channel (or one for all), on the 0..255 scale
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"  # the measurement's: rgb | bgr
    model_order: str = "rgb"  # what the plain model expects
    spec: ReadoutSpec = DEFAULT_SPEC
    policy: str = "fresh"  # fresh | boundary
    split_after: str | None = None  # a tensor or node name: cut into feature and task models there
    epoch: int = 0  # the key epoch of the sensor layout
