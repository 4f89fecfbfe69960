"""Putting dense keyed outputs back in order, for key holders.

A keyed model's dense outputs (segmentation masks, heat maps, anchor lists,
scrambled features) keep their positions in a layout named in the manifest by
its key-schedule coordinates. With the key, :func:`layout_perm` rebuilds the
permutation (physical q holds logical ``perm[q]``) and :func:`restore_output`
moves every position back to raster order.

An anchor list (``form = "anchors"``) has ``group`` consecutive entries per position along its
position axis (``axis``, 1 unless the manifest says otherwise): physical entry ``j`` holds logical
entry ``perm[j // group] * group + j % group``. A detector's heads concatenated along that axis
(``segments``) are runs of their own lengths, layouts and groups; a run at offset ``o`` maps its
entry ``o + j`` to ``o + perm[j // group] * group + j % group`` (``layout`` None: in order).

Restoring is a pure function of the output's spec, the key and the frame's key epoch. A layout of kind
``sensor`` names the epoch the model was compiled for, but an output in the sensor's layout class (a
model with no spatial layer before it, or a split's task model fed such features) carries the layout
of whatever epoch the measurement was read out in: the device rebuilds a model's sensor tables for the
frame's epoch, or the model has none. So a sensor layout is taken at the frame's epoch
(:func:`at_epoch`); layer layouts do not depend on epochs.

A dense output that does not fit its spec (a damaged model, a server's wrong answer) raises
:class:`~edge.errors.FrameError`: that frame's answer is lost, not the run.
"""

from __future__ import annotations

import numpy as np

from edge.errors import FrameError
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import LayoutRef, OutputSpec
from firmware_sim.permutation import permutation_table


def at_epoch(ref: LayoutRef | None, epoch: int | None) -> LayoutRef | None:
    """The layout ``ref`` names, for a measurement of key epoch ``epoch`` (None: as compiled)."""
    if ref is None or epoch is None or ref.kind != "sensor" or ref.epoch == epoch:
        return ref
    return ref.model_copy(update={"epoch": epoch})


def layout_perm(ref: LayoutRef, key: MasterKey) -> np.ndarray:
    if ref.kind == "natural":
        return np.arange(ref.height * ref.width)
    if ref.kind == "sensor":
        return permutation_table(key.sensor_key(ref.height, ref.width, ref.epoch), ref.height * ref.width)
    return permutation_table(key.layer_key(ref.label, ref.height, ref.width), ref.height * ref.width)


class Permutations:
    """The layouts' permutations for one key, each built once: a keyed PRF over every position costs
    milliseconds, the restore itself microseconds, so a device restoring every frame keeps them."""

    LIMIT = 64  # layouts kept (key epochs bring new sensor layouts; older ones are dropped)

    def __init__(self, key: MasterKey) -> None:
        self.key = key
        self._kept: dict[tuple, np.ndarray] = {}

    def __call__(self, ref: LayoutRef) -> np.ndarray:
        name = (ref.kind, ref.height, ref.width, ref.label, ref.epoch)
        if name not in self._kept:
            if len(self._kept) >= self.LIMIT:
                self._kept.clear()
            perm = layout_perm(ref, self.key)
            perm.setflags(write=False)
            self._kept[name] = perm
        return self._kept[name]


def restore_output(output: np.ndarray, spec: OutputSpec, key: MasterKey | Permutations,
                   epoch: int | None = None) -> np.ndarray:
    """The plain model's output from the keyed model's dense output ``output`` (batched), read out in key epoch
    ``epoch`` (None: the epoch the model was compiled for); ``key`` may be a :class:`Permutations` of the key,
    which keeps what it builds for the next frame."""
    if spec.kind != "dense" or (spec.layout is None and not spec.segments):
        return output
    perms = key if isinstance(key, Permutations) else Permutations(key)
    if spec.form == "anchors":
        return _restore_anchors(output, spec, perms, epoch)
    perm = perms(at_epoch(spec.layout, epoch))
    n = perm.size
    if output.ndim < 2 or output.shape[0] < 1 or output[0].size % n:
        raise FrameError(f"output {spec.name!r} has shape {list(output.shape)}, which does not hold the {n} "
                         f"positions of its layout ({spec.form}); the model or the server's answer is not the one "
                         f"the manifest describes")
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
    else:  # the manifest's schema admits no other form
        raise FrameError(f"output {spec.name!r}: unknown dense output form {spec.form!r}")
    return restored


def restore_outputs(outputs: dict[str, np.ndarray], specs: list[OutputSpec], perms: Permutations,
                    epoch: int | None = None) -> dict[str, np.ndarray]:
    """Every output of ``outputs`` (by name) that its spec says is dense, back in natural order for key epoch
    ``epoch``; outputs without a spec are passed on as they are."""
    by_name = {spec.name: spec for spec in specs}
    return {name: restore_output(value, by_name[name], perms, epoch) if name in by_name else value
            for name, value in outputs.items()}


def _anchor_targets(length: int, layout, group: int, perms: Permutations) -> np.ndarray:
    """Where each physical entry of a run of ``length`` entries belongs (its logical index in the run)."""
    if layout is None:
        return np.arange(length)
    perm = perms(layout)
    if length % perm.size:
        raise FrameError(f"an anchor run of {length} entries does not hold the {perm.size} positions of its layout")
    group = length // perm.size if group == 1 else group
    entries = np.arange(length)
    return perm[entries // group] * group + entries % group


def _restore_anchors(output: np.ndarray, spec: OutputSpec, perms: Permutations, epoch: int | None) -> np.ndarray:
    """An anchor list, one run or several (``spec.segments``), back in natural order along its position axis."""
    axis = 1 if spec.axis is None else spec.axis
    if not -output.ndim <= axis < output.ndim:
        raise FrameError(f"output {spec.name!r} has shape {list(output.shape)}, no position axis {axis}")
    size = output.shape[axis]
    runs = [(s.length, at_epoch(s.layout, epoch), s.group) for s in spec.segments] if spec.segments \
        else [(size, at_epoch(spec.layout, epoch), 1)]
    if sum(length for length, _, _ in runs) != size:
        raise FrameError(f"output {spec.name!r}: its segments hold {sum(r[0] for r in runs)} entries, the output "
                         f"{size} along axis {axis}")
    targets, offset = [], 0
    for length, layout, group in runs:
        targets.append(offset + _anchor_targets(length, layout, group, perms))
        offset += length
    target = np.concatenate(targets)  # (size,): physical entry q belongs at logical target[q]
    restored = np.empty_like(output)
    index = [slice(None)] * output.ndim
    index[axis] = target
    restored[tuple(index)] = output
    return restored
