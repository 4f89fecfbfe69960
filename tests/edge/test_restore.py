"""Dense keyed outputs back in order for key holders: anchor lists over several heads (YOLO's three scales
concatenated along the anchors, each in its own layout), on any position axis."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import FrameError
from edge.restore import layout_perm, restore_output
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import LayoutRef, OutputSpec, Segment


def _scrambled(natural: np.ndarray, runs, key, axis):
    """Scramble by hand, head by head: within a head, position p's ``group`` entries move to where the layout
    puts p (the inverse of what restore does, written the other way round)."""
    parts, offset = [], 0
    for length, layout, _group in runs:
        part = np.take(natural, np.arange(offset, offset + length), axis=axis)
        if layout is not None:
            perm = layout_perm(layout, key)  # physical q holds logical perm[q]
            blocks = np.split(part, len(perm), axis=axis)  # one block of `group` entries per position
            part = np.concatenate([blocks[p] for p in perm], axis=axis)
        parts.append(part)
        offset += length
    return np.concatenate(parts, axis=axis)


@pytest.mark.parametrize("axis", [1, 2])
def test_a_three_head_anchor_list_is_restored_head_by_head(axis):
    key = MasterKey.generate()
    heads = [LayoutRef(kind="layer", height=8, width=8, label="p3"), None,  # the middle head left in order
             LayoutRef(kind="layer", height=2, width=2, label="p5")]
    runs = [(64, heads[0], 1), (16 * 3, heads[1], 3), (4 * 2, heads[2], 2)]
    total = sum(r[0] for r in runs)
    shape = (1, total, 5) if axis == 1 else (1, 5, total)
    natural = np.random.default_rng(0).normal(size=shape).astype(np.float32)
    keyed = _scrambled(natural, runs, key, axis)
    assert not np.array_equal(keyed, natural)
    spec = OutputSpec(name="output0", shape=list(shape), kind="dense", form="anchors", axis=axis,
                      segments=[Segment(length=n, layout=layout, group=g) for n, layout, g in runs])
    assert np.array_equal(restore_output(keyed, spec, key), natural)
    wrong = restore_output(keyed, spec, MasterKey.generate())
    assert not np.array_equal(wrong, natural)


def test_segments_that_do_not_add_up_to_the_output_are_refused():
    spec = OutputSpec(name="output0", shape=[1, 5, 70], kind="dense", form="anchors", axis=2,
                      segments=[Segment(length=64, layout=LayoutRef(kind="layer", height=8, width=8, label="a"))])
    with pytest.raises(FrameError, match="segments hold 64 entries, the output 70 along axis 2"):
        restore_output(np.zeros((1, 5, 70), np.float32), spec, MasterKey.generate())
