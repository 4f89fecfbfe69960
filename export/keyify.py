"""keyify: compile a plain ONNX CNN into its exact keyed twin.

The keyed model takes the measurement exactly as the sensor emits it
(``firmware_sim``'s readout, batched): (N, H, W, C) codes of the spec's
output dtype, positions in the sensor layout L0. It first does what the plain
model's user did (codes to the 0..255 scale, channel order, (x - mean) / std),
then:

- ``fresh`` (the paper's policy): every feature map stays scrambled. Maps are
  (N, H*W, C) tokens; each spatial layer gathers its taps through an index
  table built from its input and output layouts and reduces them densely
  (``export/passes``). Layouts are one per class of tensors that must agree
  (a union-find over element-wise operands), key-derived, the input's class
  being L0.
- ``boundary``: one gather puts the measurement in natural order inside the
  model; the plain network then runs unchanged on onnxruntime's fast kernels.
  Scrambling protects the data where it crosses a trust boundary (the
  measurement, and the features at a split), not inside the model's memory.

With ``split_after`` the model is cut into a feature model (on the device)
and a task model (anywhere); the features leave scrambled in a key-derived
layout, and task(feature(x)) equals the keyed model's output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper

from export.builder import Builder
from export.context import Context, attrs
from export.errors import UnsupportedModel
from export.graph import BATCH, PlainGraph, prepare
from export.layout import Layout, layer_layout, sensor_layout
from export.passes import REGISTRY
from export.values import ChannelsLast, Dense, Flat, Same, Tokens
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import (
    FINGERPRINT_KEY,
    METADATA_KEY,
    InputSpec,
    LayoutRef,
    Manifest,
    OutputSpec,
    SplitSpec,
)
from firmware_sim.spec import DEFAULT_SPEC, ReadoutSpec

MEASUREMENT = "measurement"
FEATURES = "features"


@dataclass(frozen=True)
class KeyifyOptions:
    size: tuple[int, int] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    channel_order: str = "rgb"
    model_order: str = "rgb"
    spec: ReadoutSpec = DEFAULT_SPEC
    policy: str = "fresh"
    split_after: str | None = None
    epoch: int = 0


@dataclass
class KeyedModels:
    model: onnx.ModelProto
    manifest: Manifest
    feature: onnx.ModelProto | None = None
    feature_manifest: Manifest | None = None
    task: onnx.ModelProto | None = None
    task_manifest: Manifest | None = None
    stats: dict = field(default_factory=dict)
    epoch_recipes: dict = field(default_factory=dict)  # sensor table name -> epoch-free recipe (see Context.gather)


def _ref(layout: Layout) -> LayoutRef:
    return LayoutRef(**layout.describe())


class _Compiler:
    def __init__(self, graph: PlainGraph, key: MasterKey, options: KeyifyOptions) -> None:
        self.graph = graph
        self.key = key
        self.options = options
        self.salt = graph.digest[:12]
        self.builder = Builder(graph.opset)
        for node in graph.nodes:  # plain names stay reserved: copied nodes keep them
            for name in list(node.input) + list(node.output):
                self.builder.reserve(name)
        for name in graph.constants:
            self.builder.reserve(name)
        self.builder.reserve(MEASUREMENT)
        self.builder.reserve(FEATURES)
        self.sensor = sensor_layout(key, graph.height, graph.width, options.epoch)
        self.sensor_tables: list[str] = []
        self.epoch_recipes: dict[str, np.ndarray] = {}
        self._check_options()

    # -- input ----------------------------------------------------------------

    def _check_options(self) -> None:
        o, g = self.options, self.graph
        if o.policy not in ("fresh", "boundary"):
            raise UnsupportedModel("(options)", "policy", f"--layouts {o.policy!r}; use fresh or boundary")
        if o.spec.channels != g.channels:
            raise UnsupportedModel(
                g.input_name, "input",
                f"the model takes {g.channels} channels, the readout spec delivers {o.spec.channels}; use a "
                f"{g.channels}-channel spec",
            )
        for what, values in (("mean", o.mean), ("std", o.std)):
            if values is not None and len(values) not in (1, g.channels):
                raise UnsupportedModel("(options)", what, f"--{what} has {len(values)} values; the model has "
                                                          f"{g.channels} channels")
        if o.std is not None and any(v == 0 for v in o.std):
            raise UnsupportedModel("(options)", "std", "--std contains 0")
        for what, order in (("channel-order", o.channel_order), ("model-order", o.model_order)):
            if order not in ("rgb", "bgr"):
                raise UnsupportedModel("(options)", what, f"--{what} {order!r}; use rgb or bgr")

    def _norm(self) -> tuple[np.ndarray, np.ndarray, float]:
        c = self.graph.channels
        mean = np.broadcast_to(np.asarray(self.options.mean or (0.0,), np.float32), (c,)).copy()
        std = np.broadcast_to(np.asarray(self.options.std or (1.0,), np.float32), (c,)).copy()
        spec = self.options.spec
        scale = 1.0 if spec.output_bits == 8 else 255.0 / spec.output_max
        return mean, std, scale

    def _channel_map(self) -> np.ndarray:
        """model channel c reads measurement channel map[c]."""
        c = self.graph.channels
        if c == 3 and self.options.channel_order != self.options.model_order:
            return np.array([2, 1, 0])
        return np.arange(c)

    def input_spec(self) -> InputSpec:
        g, o = self.graph, self.options
        mean, std, scale = self._norm()
        return InputSpec(
            name=MEASUREMENT, shape=[None, g.height, g.width, g.channels], dtype=o.spec.output_dtype.name,
            channel_order=o.channel_order, model_channel_order=o.model_order,
            mean=[float(v) for v in mean], std=[float(v) for v in std], code_scale=scale,
            plain_layout=g.input_layout,
        )

    def _normalise(self, x: str, broadcast: list[int]) -> str:
        b = self.builder
        mean, std, scale = self._norm()
        if scale != 1.0:
            x = b.node("Mul", [x, b.const(np.array(scale, np.float32), "code-scale")], "to-255")
        if np.any(mean != 0):
            x = b.node("Sub", [x, b.const(mean.reshape(broadcast), "mean")], "mean")
        if np.any(std != 1):
            x = b.node("Div", [x, b.const(std.reshape(broadcast), "std")], "std")
        return x

    # -- the first layer reads the codes -------------------------------------

    def _fold_plan(self) -> dict | None:
        """Fold the division by std, the code scale and the channel order into the first Conv.

        normalised[c] = (raw[m] * scale - mean[c]) / std[c] = (raw[m] - p[m]) * scale / std[c] with m the
        measurement channel that model channel c reads and p[m] = mean[c] / scale. So the Conv gets
        W'[:, m] = W[:, c] * scale / std[c], its bias unchanged, and reads raw - p: one subtraction
        instead of three passes, and its zero padding still means a normalised 0. The result differs
        from the plain model by float rounding only.
        """
        g = self.graph
        consumers = g.consumers.get(g.input_name, [])
        if len(consumers) != 1 or consumers[0].op_type != "Conv" or g.input_name in g.outputs:
            return None
        node = consumers[0]
        weight = g.constants.get(node.input[1]) if len(node.input) > 1 else None
        if node.input[0] != g.input_name or weight is None or weight.ndim != 4 or attrs(node).get("group", 1) != 1:
            return None
        mean, std, scale = (np.asarray(v, np.float64) for v in self._norm())
        order = self._channel_map()
        folded = np.empty(weight.shape, np.float64)
        folded[:, order] = weight.astype(np.float64) * (scale / std)[None, :, None, None]
        offset = np.empty(len(order))
        offset[order] = mean / scale
        name = self.builder.const(folded.astype(np.float32), "folded-weight")
        g.constants[name] = folded.astype(np.float32)
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.input[1] = name
        g.nodes[g.nodes.index(node)] = new
        g.consumers[g.input_name] = [new]
        for output in new.output:
            g.producers[output] = new
        return {"offset": offset.astype(np.float32)}

    def _offset(self, x: str, offset: np.ndarray, broadcast: list[int]) -> str:
        if not np.any(offset):
            return x
        return self.builder.node("Sub", [x, self.builder.const(offset.reshape(broadcast), "code-offset")], "offset")

    def fresh_input(self) -> Tokens:
        g, b = self.graph, self.builder
        n, c = g.height * g.width, g.channels
        x = b.reshape(MEASUREMENT, [-1, n, c], "tokens")  # (N, H, W, C) -> (N, HW, C), sensor layout
        x = b.node("Cast", [x], "float", to=onnx.TensorProto.FLOAT)
        plan = self._fold_plan()
        if plan is not None:
            return Tokens(self._offset(x, plan["offset"], [c]), c, g.height, g.width, self.sensor)
        order = self._channel_map()
        if not np.array_equal(order, np.arange(c)):
            x = b.gather(x, order, axis=2, hint="channels")
        x = self._normalise(x, [c])
        return Tokens(x, c, g.height, g.width, self.sensor)

    def boundary_input(self) -> None:
        """Positions back in natural order with one row gather (C codes per row), then NCHW."""
        g, b = self.graph, self.builder
        n, c = g.height * g.width, g.channels
        plan = self._fold_plan()
        rows = b.reshape(MEASUREMENT, [-1, n, c], "rows")  # (N, H, W, C) -> (N, HW, C), sensor layout
        table = b.const(self.sensor.inv.astype(np.int32), "sensor-index")  # natural a <- physical inv[a]
        self.sensor_tables.append(table)
        self.epoch_recipes[table] = np.arange(n, dtype=np.int32)  # any epoch's table is inv_E[a]
        x = b.node("Gather", [rows, table], "natural", axis=1)  # (N, HW, C), natural order
        x = b.transpose(x, [0, 2, 1])  # -> (N, C, HW)
        order = np.arange(c) if plan is not None else self._channel_map()
        if not np.array_equal(order, np.arange(c)):
            x = b.gather(x, order, axis=1, hint="channels")  # whole planes: cheap
        x = b.node("Cast", [x], "float", to=onnx.TensorProto.FLOAT)
        x = b.reshape(x, [-1, c, g.height, g.width])  # (N, C, HW) -> (N, C, H, W)
        if plan is not None:
            x = self._offset(x, plan["offset"], [1, c, 1, 1])
        else:
            x = self._normalise(x, [1, c, 1, 1])
        b.node("Identity", [x], outputs=[g.input_name])

    # -- bodies ---------------------------------------------------------------

    def fresh(self, split_tensor: str | None = None) -> dict[str, object]:
        g = self.graph
        ctx = Context(g, self.key, self.builder, self.salt)
        self.ctx = ctx
        ctx.sensor = self.sensor
        ctx.classes.add(g.input_name)
        for node in g.nodes:
            if any(ctx.is_map(name) for name in node.input):
                handler = REGISTRY.get(node.op_type)
                if handler is None:
                    raise ctx.refuse(node, f"{node.op_type} on a feature map is not supported by the keyed compiler")
                handler.constrain(ctx, node)
        for root in ctx.classes.roots():  # a class spans one spatial size
            sizes = {ctx.hw(name) for name in ctx.classes._parent if ctx.classes.find(name) == root}
            if len(sizes) > 1:
                raise UnsupportedModel(root, "layout", f"tensors of sizes {sorted(sizes)} must share a layout")
        ctx.assign_layouts()
        ctx.set(g.input_name, self.fresh_input())
        for node in g.nodes:
            values = [ctx.value(name) if name else None for name in node.input]
            keyed = any(v is not None and not isinstance(v, Same) for v in values)
            if keyed and node.op_type not in REGISTRY and all(
                    v is None or isinstance(v, Same) or (isinstance(v, Tokens) and v.size == 1 and v.pad is None)
                    for v in values):
                # a 1 x 1 map (after global pooling) has no positions to hide: any operator (tf2onnx's Squeeze,
                # an Unsqueeze, a Slice of channels) reads it as the plain tensor
                values = [Same(self.builder.reshape(v.name, [-1, v.channels, 1, 1]))  # -> (N, C, 1, 1)
                          if isinstance(v, Tokens) else v for v in values]
                keyed = False
            if keyed:
                handler = REGISTRY.get(node.op_type)
                if handler is None:
                    raise ctx.refuse(node, f"{node.op_type} on a keyed tensor is not supported by the keyed compiler")
                handler.emit(ctx, node)
                value = ctx.values.get(split_tensor)
                if split_tensor in node.output and isinstance(value, Tokens) and value.flat:
                    # the split tensor crosses devices under one name: its (N, HW, C) form
                    ctx.set(split_tensor, Tokens(ctx.as3d(value), value.channels, value.height, value.width,
                                                 value.layout))
            else:
                self._copy(node, [v.name if v else "" for v in values])
                for name in node.output:
                    if name:
                        ctx.set(name, Same(name))
        self.sensor_tables.extend(ctx.sensor_tables)
        self.epoch_recipes.update(ctx.epoch_recipes)
        return ctx.values

    def _copy(self, node: onnx.NodeProto, inputs: list[str]) -> None:
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        del copy.input[:]
        copy.input.extend(inputs)
        self.builder.nodes.append(copy)

    # -- outputs --------------------------------------------------------------

    def emit_output(self, name: str, value) -> OutputSpec:
        b, g = self.builder, self.graph
        shape = list(g.shapes.get(name, ()))
        if isinstance(value, Same):
            if value.name != name:
                b.node("Identity", [value.name], outputs=[name])
            return OutputSpec(name=name, shape=shape, kind="plain")
        if isinstance(value, Tokens):
            if value.pad is not None:
                raise UnsupportedModel(name, "output", "a spatial Pad is the model's output")
            if value.size == 1:
                b.reshape(value.name, [-1, value.channels, 1, 1], output=name)
                return OutputSpec(name=name, shape=shape, kind="plain")
            moved = b.transpose(self.ctx.as3d(value), [0, 2, 1])  # (N, HW, C) -> (N, C, HW)
            b.reshape(moved, [-1, value.channels, value.height, value.width], output=name)  # -> (N, C, H, W)
            return OutputSpec(name=name, shape=shape, kind="dense", form="nchw", layout=_ref(value.layout))
        if isinstance(value, Flat):
            b.node("Identity", [value.name], outputs=[name])
            return OutputSpec(name=name, shape=shape, kind="dense", form=f"flat-{value.order}",
                              layout=_ref(value.layout))
        if isinstance(value, ChannelsLast):
            b.reshape(value.name, [-1, value.height, value.width, value.channels], output=name)
            return OutputSpec(name=name, shape=shape, kind="dense", form="channels-last", layout=_ref(value.layout))
        if isinstance(value, Dense):
            b.node("Identity", [value.name], outputs=[name])
            return OutputSpec(name=name, shape=shape, kind="dense", form="anchors", layout=_ref(value.layout),
                              group=value.group)
        raise AssertionError(type(value))

    # -- assembly -------------------------------------------------------------

    def model(self, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
              rename: dict[str, str] | None = None) -> onnx.ModelProto:
        nodes = self.builder.nodes
        if rename:  # the task model reads the split tensor under its public name
            nodes = []
            for node in self.builder.nodes:
                copy = onnx.NodeProto()
                copy.CopyFrom(node)
                for i, name in enumerate(copy.input):
                    copy.input[i] = rename.get(name, name)
                nodes.append(copy)
        forbidden = None
        if rename is not None:  # the task side: nothing the feature side computed but the features themselves
            feature_nodes, _ = _prune(self.builder.nodes, self._initializers(), [FEATURES], {MEASUREMENT})
            forbidden = {n for node in feature_nodes for n in node.output} - {FEATURES} - set(rename)
        nodes, initializers = _prune(nodes, self._initializers(), [o.name for o in outputs],
                                     {i.name for i in inputs}, forbidden)
        graph = helper.make_graph(nodes, "keycam-keyed", inputs, outputs, initializers)
        model = helper.make_model(graph, opset_imports=list(self.graph.model.opset_import),
                                  producer_name="keycam", producer_version="0.1.0")
        model.ir_version = self.graph.model.ir_version
        return model

    def _initializers(self) -> list[onnx.TensorProto]:
        return list(self.graph.model.graph.initializer) + self.builder.initializers


def _prune(nodes, initializers, outputs: list[str], inputs: set[str], forbidden: set[str] | None = None):
    """Keep the nodes and initializers the outputs need; fail if something needed has no source.

    ``forbidden``: tensors computed before a split point, which the task side must not read.
    """
    producers = {}
    for index, node in enumerate(nodes):
        for name in node.output:
            producers[name] = index
    constants = {init.name: init for init in initializers}
    keep: set[int] = set()
    used_constants: set[str] = set()
    stack = list(outputs)
    seen: set[str] = set()
    while stack:
        name = stack.pop()
        if not name or name in seen:
            continue
        seen.add(name)
        if name in inputs:
            continue
        if forbidden and name in forbidden:
            raise UnsupportedModel(name, "split", "the task part reads this tensor, computed before the split point; "
                                                  "choose a later split")
        if name in producers:
            index = producers[name]
            if index not in keep:
                keep.add(index)
                stack.extend(nodes[index].input)
        elif name in constants:
            used_constants.add(name)
        else:
            raise UnsupportedModel(name, "graph", "a tensor the outputs need comes from before the split point; "
                                                  "choose a later split")
    kept = [nodes[i] for i in sorted(keep)]
    return kept, [constants[n] for n in constants if n in used_constants]


def _value_info(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [BATCH if d is None else d for d in shape])


def _attach(model: onnx.ModelProto, manifest: Manifest) -> None:
    del model.metadata_props[:]
    helper.set_model_props(model, {METADATA_KEY: manifest.to_json(), FINGERPRINT_KEY: manifest.key_fingerprint})


def _split_target(graph: PlainGraph, name: str) -> str:
    if name in graph.shapes and (name in graph.producers or name == graph.input_name):
        return name
    for node in graph.nodes:
        if node.name == name:
            return node.output[0]
    raise UnsupportedModel(name, "split", "no node or tensor of that name in the model")


def keyify(plain: onnx.ModelProto | str, key: MasterKey, options: KeyifyOptions = KeyifyOptions()) -> KeyedModels:
    """Compile ``plain`` into its keyed twin (and a feature/task pair when ``options.split_after`` is set)."""
    graph = prepare(plain, options.size)
    compiler = _Compiler(graph, key, options)
    b = compiler.builder
    split_tensor = _split_target(graph, options.split_after) if options.split_after else None
    split_spec = None
    task_rename: dict[str, str] = {}
    elem = onnx.helper.np_dtype_to_tensor_dtype(options.spec.output_dtype)
    measurement = _value_info(MEASUREMENT, elem, [None, graph.height, graph.width, graph.channels])

    if options.policy == "boundary":
        compiler.boundary_input()
        split_layout = None
        if split_tensor is not None:
            shape = graph.shape(split_tensor)
            if len(shape) != 4 or shape[2] * shape[3] == 1:
                raise UnsupportedModel(split_tensor, "split", "the split tensor must be a feature map larger than 1x1")
            c, h, w = shape[1], shape[2], shape[3]
            split_layout = layer_layout(key, f"{compiler.salt}.split", h, w)
            moved = b.transpose(b.reshape(split_tensor, [-1, c, h * w]), [0, 2, 1])  # (N,C,H,W) -> (N, HW, C)
            b.node("Gather", [moved, b.const(split_layout.perm.astype(np.int64), "split-index")], outputs=[FEATURES],
                   axis=1)
            back = b.gather(FEATURES, split_layout.inv, axis=1, hint="unsplit")  # (N, HW, C) natural order
            decoded = b.reshape(b.transpose(back, [0, 2, 1]), [-1, c, h, w])  # -> (N, C, H, W)
            rename = {split_tensor: decoded}
        else:
            rename = {}
        for node in graph.nodes:
            compiler._copy(node, [rename.get(name, name) for name in node.input])
        outputs = [OutputSpec(name=o, shape=list(graph.shapes.get(o, ())), kind="plain") for o in graph.outputs]
        if split_tensor is not None:
            split_spec = SplitSpec(after=options.split_after, tensor=split_tensor, features=OutputSpec(
                name=FEATURES, shape=[None, h * w, c], kind="dense", form="tokens", layout=_ref(split_layout)))
    else:
        values = compiler.fresh(split_tensor)
        outputs = [compiler.emit_output(name, values[name]) for name in graph.outputs]
        if split_tensor is not None:
            value = values[split_tensor] if split_tensor != graph.input_name else None
            if isinstance(value, Tokens) and value.pad is None and value.size > 1:
                b.node("Identity", [value.name], outputs=[FEATURES])
                features = OutputSpec(name=FEATURES, shape=[None, value.size, value.channels], kind="dense",
                                      form="tokens", layout=_ref(value.layout))
            elif isinstance(value, Tokens) and value.pad is None:  # a 1x1 map: no positions to hide
                b.node("Identity", [value.name], outputs=[FEATURES])
                features = OutputSpec(name=FEATURES, shape=[None, 1, value.channels], kind="plain", form="tokens")
            elif isinstance(value, Same):
                b.node("Identity", [value.name], outputs=[FEATURES])
                features = OutputSpec(name=FEATURES, shape=list(graph.shape(split_tensor)), kind="plain")
            else:
                raise UnsupportedModel(split_tensor, "split", "split after a feature map, a pooled vector or a "
                                                              "logit; this tensor cannot cross devices")
            split_spec = SplitSpec(after=options.split_after, tensor=split_tensor, features=features)
            task_rename = {value.name: FEATURES}

    out_infos = [_value_info(o.name, graph.dtypes.get(o.name, onnx.TensorProto.FLOAT), o.shape) for o in outputs]
    full = compiler.model([measurement], out_infos)
    base = dict(
        key_fingerprint=key.fingerprint, policy=options.policy, spec=options.spec, epoch=options.epoch,
        plain_sha256=graph.digest, layout_salt=compiler.salt, input=compiler.input_spec(),
    )
    live = {init.name for init in full.graph.initializer}
    tables = [t for t in compiler.sensor_tables if t in live]
    base["epoch_rotation"] = all(t in compiler.epoch_recipes for t in tables)
    manifest = Manifest(role="full", outputs=outputs, split=split_spec, sensor_tables=tables, **base)
    _attach(full, manifest)
    result = KeyedModels(model=full, manifest=manifest,
                         epoch_recipes={t: compiler.epoch_recipes[t] for t in tables if t in compiler.epoch_recipes})
    if split_spec is not None:
        feature_info = _value_info(FEATURES, onnx.TensorProto.FLOAT, split_spec.features.shape)
        feature = compiler.model([measurement], [feature_info])
        task = compiler.model([feature_info], out_infos, rename=task_rename)
        feature_tables = [t for t in tables if t in {i.name for i in feature.graph.initializer}]
        result.feature_manifest = Manifest(role="feature", outputs=[split_spec.features], split=split_spec,
                                           sensor_tables=feature_tables, **base)
        task_base = dict(base)
        result.task_manifest = Manifest(role="task", outputs=outputs, split=split_spec, **task_base)
        if any(t in {i.name for i in task.graph.initializer} for t in tables):
            raise UnsupportedModel(split_tensor, "split", "the task part would read the sensor layout; split later")
        _attach(feature, result.feature_manifest)
        _attach(task, result.task_manifest)
        result.feature, result.task = feature, task
    result.stats = {"plain_nodes": len(graph.nodes), "keyed_nodes": len(full.graph.node),
                    "plain_input_layout": graph.input_layout}
    return result
