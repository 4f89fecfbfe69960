"""Rewrite passes of the ``fresh`` policy: one file per family of operators, the maths in each docstring.

``base.py`` holds the :class:`~export.passes.base.Pass` base and the registry, ``taps.py`` the
windows of spatial layers (shared by ``conv.py`` and ``pool.py``), ``anchors.py`` what the passes
do to anchor lists (a detection head's positions along one axis); every other module is one
family. :data:`REGISTRY` lists every pass, explicitly: adding a pass is one file and one entry
below. A node whose inputs are all plain-equivalent (vectors, shapes) is copied as it is, without
a pass (``export/compiler/fresh.py``).
"""

from __future__ import annotations

from export.passes.base import Registry
from export.passes.conv import ConvPass
from export.passes.elementwise import BinaryPass, ConcatPass
from export.passes.flatten import DensePass, FlattenPass, ShapePass, TransposePass
from export.passes.pad import PadPass
from export.passes.pointwise import BatchNormPass, ChannelSoftmaxPass, PReluPass, UnaryPass
from export.passes.pool import GlobalPoolPass, WindowPoolPass
from export.passes.resize import ConvTransposePass, ResizePass
from export.passes.slice import SlicePass, SplitPass

REGISTRY = Registry(
    ConvPass,
    BinaryPass, ConcatPass,
    FlattenPass, TransposePass, DensePass, ShapePass,
    PadPass,
    UnaryPass, ChannelSoftmaxPass, BatchNormPass, PReluPass,
    WindowPoolPass, GlobalPoolPass,
    ResizePass, ConvTransposePass,
    SplitPass, SlicePass,
)
