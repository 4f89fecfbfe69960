"""The ``fresh`` policy (the paper's): every spatial layer emits a new key-derived layout.

Feature maps are (N, H*W, C) tokens; each spatial layer gathers its taps through an index
table built from its input and output layouts and reduces them densely (``export/passes``).
The driver runs in three steps over the plain nodes, in graph order:

1. constrain: each node with a feature-map input asks its pass which tensors must share a
   layout (a union-find over element-wise operands), and which of its outputs are anchor lists
   (a node that reads one goes to the pass's ``constrain_list``); an operator on a feature map
   that has no pass is refused here, naming the node, before anything is emitted. A class may
   not span two spatial sizes.
2. assign: one layout per class, the sensor's L0 for the input's class, a key-derived one for
   every other.
3. emit: a node that reads a keyed tensor is rewritten by its pass (``emit_list`` when it reads
   an anchor list); a node that reads only plain-equivalent values (shapes, constants, vectors,
   a 1 x 1 map) is copied as it is.

A pass that fails in a way it did not foresee still ends in a refusal naming the node and the op
(never a traceback), and the message says it is the compiler's fault.
"""

from __future__ import annotations

from export.compiler.compilation import Compilation
from export.compiler.context import Context
from export.compiler.inputs import tokens_input
from export.compiler.values import Anchors, Same, Tokens
from export.errors import UnsupportedModel
from export.passes import REGISTRY
from firmware_sim.errors import KeycamError


def compile_fresh(job: Compilation, crossing: str | None = None) -> Context:
    """Emit the keyed body; returns the context, whose ``values`` hold every plain tensor's keyed form.

    ``crossing``: a tensor that leaves the model at a split, kept as one (N, HW, C) tensor.
    """
    g = job.graph
    ctx = Context(g, job.key, job.builder, job.salt)
    ctx.sensor = job.sensor
    ctx.classes.add(g.input_name)
    for node in g.nodes:
        if any(name in ctx.lists for name in node.input):
            handler = REGISTRY.get(node.op_type)
            if handler is None:
                raise ctx.refuse(node, f"{node.op_type} on an anchor list (a detection head's positions) is not "
                                       "supported by the keyed compiler")
            _guarded(ctx, node, handler.constrain_list)
        elif any(ctx.is_map(name) for name in node.input):
            handler = REGISTRY.get(node.op_type)
            if handler is None:
                raise ctx.refuse(node, f"{node.op_type} on a feature map is not supported by the keyed compiler")
            _guarded(ctx, node, handler.constrain)
    for root, members in ctx.classes.members().items():  # a class spans one spatial size
        sizes = {ctx.hw(name) for name in members}
        if len(sizes) > 1:
            raise UnsupportedModel(root, "layout", f"tensors of sizes {sorted(sizes)} must share a layout")
    ctx.assign_layouts()
    ctx.set(g.input_name, tokens_input(job))
    for node in g.nodes:
        values = [ctx.value(name) if name else None for name in node.input]
        if any(isinstance(v, Anchors) for v in values):
            _guarded(ctx, node, REGISTRY.get(node.op_type).emit_list)
            continue
        keyed = any(v is not None and not isinstance(v, Same) for v in values)
        if keyed and node.op_type not in REGISTRY and all(
                v is None or isinstance(v, Same) or (isinstance(v, Tokens) and v.size == 1 and v.pad is None)
                for v in values):
            # a 1 x 1 map (after global pooling) has no positions to hide: any operator (tf2onnx's Squeeze,
            # an Unsqueeze, a Slice of channels) reads it as the plain tensor
            values = [Same(job.builder.reshape(v.name, [-1, v.channels, 1, 1]))  # -> (N, C, 1, 1)
                      if isinstance(v, Tokens) else v for v in values]
            keyed = False
        if keyed:
            handler = REGISTRY.get(node.op_type)
            if handler is None:
                raise ctx.refuse(node, f"{node.op_type} on a keyed tensor is not supported by the keyed compiler")
            _guarded(ctx, node, handler.emit)
            value = ctx.values.get(crossing)
            if crossing in node.output and isinstance(value, Tokens) and value.flat:
                # the split tensor crosses devices under one name: its (N, HW, C) form
                ctx.set(crossing, Tokens(ctx.as3d(value), value.channels, value.height, value.width,
                                         value.layout))
        else:
            job.copy(node, [v.name if v else "" for v in values])
            for name in node.output:
                if name:
                    ctx.set(name, Same(name))
    job.sensor_tables.extend(ctx.sensor_tables)
    job.epoch_recipes.update(ctx.epoch_recipes)
    return ctx


def _guarded(ctx: Context, node, step) -> None:
    """Run a pass's step; anything it did not foresee becomes a refusal naming the node (never a traceback)."""
    try:
        step(ctx, node)
    except KeycamError:
        raise
    except Exception as error:  # noqa: BLE001 - a bug in a pass: still one line, naming the node
        text = " ".join(str(error).split())[:300]
        raise ctx.refuse(node, f"the keyed compiler failed here ({type(error).__name__}: {text}); this is a "
                               "compiler bug, please report it with the model") from None
