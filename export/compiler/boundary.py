"""The ``boundary`` policy: one gather puts the measurement in natural order inside the model, and
the plain network then runs unchanged, on onnxruntime's own kernels (any operator).

Scrambling protects the data where it crosses a trust boundary (the measurement, and the
features at a split, ``split.py``), not inside the model's memory.
"""

from __future__ import annotations

from export.compiler.compilation import Compilation
from export.compiler.inputs import natural_input
from export.compiler.values import Same, Value


def compile_boundary(job: Compilation) -> dict[str, Value]:
    """Emit the natural-order input and the plain nodes; returns every tensor's keyed form (itself)."""
    natural_input(job)
    values: dict[str, Value] = {job.graph.input_name: Same(job.graph.input_name)}
    for node in job.graph.nodes:
        job.copy(node, list(node.input))
        values.update((name, Same(name)) for name in node.output if name)
    return values
