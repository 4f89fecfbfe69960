"""Putting dense keyed outputs back in order, for key holders.

A keyed model's dense outputs (segmentation masks, heat maps, anchor lists,
scrambled features) keep their positions in a layout named in the manifest by
its key-schedule coordinates. With the key, :func:`layout_perm` rebuilds the
permutation (physical q holds logical ``perm[q]``) and :func:`restore_output`
moves every position back to raster order.
"""

from __future__ import annotations

import numpy as np

from firmware_sim.keys import MasterKey
from firmware_sim.manifest import LayoutRef, OutputSpec
from firmware_sim.permutation import permutation_table


def layout_perm(ref: LayoutRef, key: MasterKey) -> np.ndarray:
    if ref.kind == "natural":
        return np.arange(ref.height * ref.width)
    if ref.kind == "sensor":
        return permutation_table(key.sensor_key(ref.height, ref.width, ref.epoch), ref.height * ref.width)
    return permutation_table(key.layer_key(ref.label, ref.height, ref.width), ref.height * ref.width)


def restore_output(output: np.ndarray, spec: OutputSpec, key: MasterKey) -> np.ndarray:
    """The plain model's output from the keyed model's dense output ``output`` (batched)."""
    if spec.kind != "dense" or spec.layout is None:
        return output
    perm = layout_perm(spec.layout, key)
    n = perm.size
    restored = np.empty_like(output)
    if spec.form == "nchw":  # (N, C, H, W) with positions permuted
        flat = output.reshape(output.shape[0], output.shape[1], n)  # -> (N, C, HW)
        out = restored.reshape(flat.shape)
        out[:, :, perm] = flat
    elif spec.form in ("tokens", "channels-last"):  # (N, HW, C) or (N, H, W, C)
        flat = output.reshape(output.shape[0], n, -1)  # -> (N, HW, C)
        out = restored.reshape(flat.shape)
        out[:, perm] = flat
    elif spec.form.startswith("flat-"):  # (N, HW*C) in keyed order, restored to the plain flatten order
        channels = output.shape[1] // n
        keyed = output.reshape(output.shape[0], n, channels)  # -> (N, HW, C) physical
        natural = np.empty_like(keyed)
        natural[:, perm] = keyed
        if spec.form == "flat-chw":
            restored = natural.transpose(0, 2, 1).reshape(output.shape)  # (N, C, HW) -> (N, C*HW)
        else:
            restored = natural.reshape(output.shape)
    elif spec.form == "anchors":  # (N, HW*group, ...) with group consecutive entries per position
        grouped = output.reshape(output.shape[0], n, -1)  # -> (N, HW, group*rest)
        out = restored.reshape(grouped.shape)
        out[:, perm] = grouped
    else:
        raise ValueError(f"unknown dense output form {spec.form!r}")
    return restored
