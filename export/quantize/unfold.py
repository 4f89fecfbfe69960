"""Before quantising a ``boundary`` model: the plain model's own first layer and normalisation, back.

The compiler folds the input's normalisation into the first Conv (``export/compiler/inputs.py``,
``fold_into_first_conv``): the Conv reads ``raw - p`` with ``p[m] = mean[c] / scale`` and weights
``W'[:, m] = W[:, c] * scale / std[c]`` (``m`` the measurement channel that model channel ``c``
reads). In float that is the plain function up to rounding. For int8 it is another model: the
quantiser sees ``raw - p`` (one per-tensor grid over all channels) where the plain model has
``(x - mean) / std``, and per-output-channel weight scales taken over ``W'`` whose input channels were
scaled by different ``1 / std[c]``. So, before quantising, this rewrite puts the plain arithmetic back:

    x = Gather(codes, order, axis=1)                when the measurement's channel order is not the model's
                                                    and the natural-order gather did not put it right
    x = Cast(x)                                     (N, C, H, W) in natural order, the model's channels
    x = x * scale                                   codes to the 0..255 scale, when scale != 1
    x = (x - mean) / std                            the plain model's user's normalisation
    Conv(x, W)                                      W: the prepared plain model's own first weight

(the same float32 operations, in the same order, as ``edge.lab.verify.plain_input``; the channel
order is put right on the integer codes, before the cast, where it moves a quarter of the bytes), so that from
the first Conv on, the keyed graph *is* the prepared plain graph. ``W`` is taken from the plain model
when it is given (``export.prepare.graph.prepare``, exactly what the compiler folded); without it,
``W'`` cannot be unfolded exactly (``W' * std / scale`` rounds differently from ``W`` in about one
weight in fifteen), and the model is quantised as compiled. The rewrite declines, with a reason,
when the model has no folded first layer (nothing to do) or is not laid out as ``boundary`` emits it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from export.errors import ModelError
from firmware_sim.manifest import Manifest

FOLDED = "keycam/folded-weight/"
OFFSET = "keycam/code-offset/"


def _channel_order(manifest: Manifest) -> np.ndarray:
    """The channel order the folded Conv picked: the measurement's to the model's, unless the natural-order gather
    already put the channels in the model's order (a table of code indices, ``Manifest.table_groups``)."""
    spec = manifest.input
    channels = len(spec.mean)
    if channels == 3 and spec.channel_order != spec.model_channel_order and not manifest.table_groups:
        return np.array([2, 1, 0], np.int64)
    return np.arange(channels, dtype=np.int64)


def plain_first_weight(plain: onnx.ModelProto | str, manifest: Manifest) -> np.ndarray:
    """The first Conv's weight of the prepared plain model, as the compiler saw it before folding."""
    from export.prepare.graph import prepare

    graph = prepare(plain, tuple(manifest.input.shape[1:3]))
    if graph.digest != manifest.plain_sha256:
        raise ModelError(f"plain model (sha256 {graph.digest[:12]}...) is not the one this keyed model was compiled "
                         f"from (sha256 {manifest.plain_sha256[:12]}...); give that model, or leave out --plain")
    (conv,) = graph.consumers[graph.input_name][:1] or [None]
    if conv is None or conv.op_type != "Conv" or conv.input[1] not in graph.constants:
        raise ModelError("plain model's input does not feed a Conv with constant weights; leave out --plain")
    return graph.constants[conv.input[1]]


def _reorder_codes(g: onnx.GraphProto, producers: dict, raw: str, order: np.ndarray) -> bool:
    """The channel order put right on the integer codes, before their Cast to float (N, C, HW): a quarter of the
    bytes of the float planes, and the same values (moving values commutes with casting them)."""
    reshape = producers.get(raw)
    cast = producers.get(reshape.input[0]) if reshape is not None and reshape.op_type == "Reshape" else None
    if cast is None or cast.op_type != "Cast":
        return False
    const, out = "keycam/unfold/channels-value", "keycam/unfold/channels"
    g.initializer.append(numpy_helper.from_array(order, const))
    node = helper.make_node("Gather", [cast.input[0], const], [out], name="keycam/unfold/Gather-channels", axis=1)
    cast.input[0] = out
    g.node.insert(list(g.node).index(cast), node)
    return True


def unfold(model: onnx.ModelProto, manifest: Manifest, weight: np.ndarray) -> str | None:
    """Rewrite ``model`` in place (see the module docstring); returns None when done, else why not."""
    g = model.graph
    if manifest.policy != "boundary":
        return f"the {manifest.policy} policy keeps the first layer as a gather and a matrix product"
    inits = {i.name: i for i in g.initializer}
    convs = [n for n in g.node if n.op_type == "Conv" and len(n.input) > 1 and n.input[1].startswith(FOLDED)]
    if len(convs) != 1:
        return "the first layer reads the normalised input as the plain model does (nothing folded)"
    conv = convs[0]
    producers = {out: n for n in g.node for out in n.output}
    identity = producers.get(conv.input[0])
    if identity is None or identity.op_type != "Identity":
        return "the folded Conv's input is not the natural-order input boundary emits"
    raw, offset = identity.input[0], producers.get(identity.input[0])
    if offset is not None and offset.op_type == "Sub" and offset.input[1].startswith(OFFSET):
        raw = offset.input[0]
        g.node.remove(offset)
    folded = numpy_helper.to_array(inits[conv.input[1]])
    if folded.shape != weight.shape:
        raise ModelError(f"plain model's first weight has shape {weight.shape}, the keyed model's {folded.shape}; "
                         f"give the plain model it was compiled from")
    spec, order = manifest.input, _channel_order(manifest)
    channels = len(order)
    mean = np.asarray(spec.mean, np.float32).reshape(1, channels, 1, 1)
    std = np.asarray(spec.std, np.float32).reshape(1, channels, 1, 1)
    added: list[onnx.NodeProto] = []

    def step(op: str, constant: np.ndarray, name: str, **attributes) -> None:
        nonlocal raw
        const = f"keycam/unfold/{name}-value"
        g.initializer.append(numpy_helper.from_array(constant, const))
        out = f"keycam/unfold/{name}"
        added.append(helper.make_node(op, [raw, const], [out], name=f"keycam/unfold/{op}-{name}", **attributes))
        raw = out

    if not np.array_equal(order, np.arange(channels)) and not _reorder_codes(g, producers, raw, order):
        step("Gather", order, "channels", axis=1)
    if spec.code_scale != 1.0:
        step("Mul", np.array(spec.code_scale, np.float32), "to-255")
    if np.any(mean != 0):
        step("Sub", mean, "mean")
    if np.any(std != 1):
        step("Div", std, "std")
    identity.input[0] = raw
    at = list(g.node).index(identity)
    for k, node in enumerate(added):
        g.node.insert(at + k, node)
    conv.input[1] = "keycam/unfold/weight"
    g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(weight, np.float32), conv.input[1]))
    used = {name for node in g.node for name in node.input}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    return None
