"""A measurement tagged with what produced it: the key's fingerprint, the epoch and the spec.

Raw arrays carry no provenance; a :class:`Measurement` lets a keyed model refuse data scrambled
under another key (or epoch) before it computes garbage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_sim.spec import ReadoutSpec


@dataclass(frozen=True)
class Measurement:
    data: np.ndarray  # (H, W, C) or (N, H, W, C) output codes
    fingerprint: str
    epoch: int
    spec: ReadoutSpec
