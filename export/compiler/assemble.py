"""Assembly: the keyed graph's nodes become the keyed model, and with a split its feature and task
models, each with its manifest in its metadata.

Each model keeps only the nodes and constants its outputs need (:func:`_prune`), in an order
where every tensor is made before it is read (:func:`_in_order`; the emission order where it
already is one). The task model reads ``features`` in place of the split tensor's keyed form; it
is refused (naming the tensor) if it would read anything else computed before the split (choose
a later split) or a table that depends on the sensor layout (the layers that reveal L0 stay on
the device). A manifest lists the sensor tables its model holds, so that a key epoch can rebuild
them from their recipes (``export/package/save.py`` writes those beside the model).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import onnx
from onnx import helper

from export.compiler.compilation import FEATURES, MEASUREMENT, Compilation
from export.compiler.inputs import input_spec, measured_channels
from export.compiler.metadata import decoder_of, kpt_shape_of, labels_of, plain_metadata, task_of
from export.compiler.split import Cut
from export.errors import UnsupportedModel
from export.prepare.graph import BATCH
from firmware_sim.manifest import FINGERPRINT_KEY, METADATA_KEY, Manifest, OutputSpec


@dataclass
class KeyifyResult:
    """The keyed model and its manifest; with a split, the feature and task models and theirs too."""

    model: onnx.ModelProto
    manifest: Manifest
    feature: onnx.ModelProto | None = None
    feature_manifest: Manifest | None = None
    task: onnx.ModelProto | None = None
    task_manifest: Manifest | None = None
    stats: dict = field(default_factory=dict)
    epoch_recipes: dict = field(default_factory=dict)  # sensor table name -> epoch-free recipe (see Context.gather)


def assemble(job: Compilation, outputs: list[OutputSpec], cut: Cut | None = None) -> KeyifyResult:
    graph, options = job.graph, job.options
    elem = helper.np_dtype_to_tensor_dtype(options.spec.output_dtype)
    measurement = _value_info(MEASUREMENT, elem, [graph.batch, graph.height, graph.width, measured_channels(job)])
    out_infos = [_value_info(o.name, graph.dtypes.get(o.name, onnx.TensorProto.FLOAT), o.shape) for o in outputs]
    full = _model(job, [measurement], out_infos)
    metadata = plain_metadata(graph.model)
    base = dict(
        key_fingerprint=job.key.fingerprint, policy=options.policy, spec=options.spec, epoch=options.epoch,
        plain_sha256=graph.digest, layout_salt=job.salt, input=input_spec(job), batch=graph.batch,
        task=task_of(metadata, options.task), labels=labels_of(metadata, options.labels),
        decoder=decoder_of(metadata), kpt_shape=kpt_shape_of(metadata),
    )
    split = cut.spec if cut is not None else None
    tables = [t for t in job.sensor_tables if t in _initializer_names(full)]
    base["epoch_rotation"] = all(t in job.epoch_recipes for t in tables)
    manifest = Manifest(role="full", outputs=outputs, split=split, sensor_tables=tables,
                        table_groups=_groups(job, tables), **base)
    _attach(full, manifest, metadata)
    result = KeyifyResult(model=full, manifest=manifest,
                          epoch_recipes={t: job.epoch_recipes[t] for t in tables if t in job.epoch_recipes})
    if cut is not None:
        feature_info = _value_info(FEATURES, onnx.TensorProto.FLOAT, split.features.shape)
        feature = _model(job, [measurement], [feature_info])
        task = _model(job, [feature_info], out_infos, rename=cut.rename)
        feature_tables = [t for t in tables if t in _initializer_names(feature)]
        result.feature_manifest = Manifest(role="feature", outputs=[split.features], split=split,
                                           sensor_tables=feature_tables,
                                           table_groups=_groups(job, feature_tables), **base)
        result.task_manifest = Manifest(role="task", outputs=outputs, split=split, **base)
        if any(t in _initializer_names(task) for t in tables):
            raise UnsupportedModel(split.tensor, "split", "the task part would read the sensor layout; split later")
        _attach(feature, result.feature_manifest, metadata)
        _attach(task, result.task_manifest, metadata)
        result.feature, result.task = feature, task
    result.stats = {"plain_nodes": len(graph.nodes), "keyed_nodes": len(full.graph.node),
                    "plain_input_layout": graph.input_layout}
    return result


def _groups(job: Compilation, tables: list[str]) -> dict[str, int]:
    return {t: job.table_groups[t] for t in tables if t in job.table_groups}


def _model(job: Compilation, inputs: list[onnx.ValueInfoProto], outputs: list[onnx.ValueInfoProto],
           rename: dict[str, str] | None = None) -> onnx.ModelProto:
    """A model of the keyed graph's nodes from ``inputs`` to ``outputs``; ``rename``: the task side's reads."""
    nodes = job.builder.nodes
    initializers = list(job.graph.model.graph.initializer) + job.builder.initializers
    if rename:  # the task model reads the split tensor under its public name
        nodes = []
        for node in job.builder.nodes:
            copy = onnx.NodeProto()
            copy.CopyFrom(node)
            for i, name in enumerate(copy.input):
                copy.input[i] = rename.get(name, name)
            nodes.append(copy)
    forbidden = None
    if rename is not None:  # the task side: nothing the feature side computed but the features themselves
        feature_nodes, _ = _prune(job.builder.nodes, initializers, [FEATURES], {MEASUREMENT})
        forbidden = {n for node in feature_nodes for n in node.output} - {FEATURES} - set(rename)
    nodes, initializers = _prune(nodes, initializers, [o.name for o in outputs], {i.name for i in inputs}, forbidden)
    graph = helper.make_graph(_in_order(nodes), "keycam-keyed", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=list(job.graph.model.opset_import),
                              producer_name="keycam", producer_version="0.1.0")
    model.ir_version = job.graph.model.ir_version
    return model


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


def _in_order(nodes: list[onnx.NodeProto]) -> list[onnx.NodeProto]:
    """The nodes in topological order (ONNX requires one), the earliest emitted first among those ready.

    A list already in topological order comes back as it is. (A split's task model reads nodes emitted
    after the body: the ones that put the features back in order.)
    """
    made = {name: index for index, node in enumerate(nodes) for name in node.output if name}
    needs = [{made[name] for name in node.input if name in made} for node in nodes]
    readers: dict[int, list[int]] = {}
    for index, sources in enumerate(needs):
        for source in sources:
            readers.setdefault(source, []).append(index)
    waiting = [len(sources) for sources in needs]
    ready = [index for index, count in enumerate(waiting) if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for reader in readers.get(index, []):
            waiting[reader] -= 1
            if waiting[reader] == 0:
                heapq.heappush(ready, reader)
    if len(order) != len(nodes):  # pragma: no cover - the compiler never writes a cycle
        raise AssertionError("the keyed graph has a cycle")
    return [nodes[index] for index in order]


def _initializer_names(model: onnx.ModelProto) -> set[str]:
    return {init.name for init in model.graph.initializer}


def _value_info(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, [BATCH if d is None else d for d in shape])


def _attach(model: onnx.ModelProto, manifest: Manifest, plain: dict[str, str]) -> None:
    """The plain model's metadata (ultralytics' names, stride, imgsz, task, ...), then the manifest and fingerprint."""
    del model.metadata_props[:]
    helper.set_model_props(model, {**plain, METADATA_KEY: manifest.to_json(), FINGERPRINT_KEY: manifest.key_fingerprint})
