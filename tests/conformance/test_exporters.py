"""Models as real exporters write them: torch.onnx's two exporters (tests/fixtures/make_torch_exported.py),
the legacy one with run-time pad and shape subgraphs, both with a dynamic batch."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from export.keyify import KeyifyOptions
from tests.export.helpers import assert_keyed_equals_plain

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
@pytest.mark.parametrize("name", ["torch_exported.onnx", "torch_legacy_exported.onnx"])
def test_torch_exported_models(key, name, policy):
    plain = onnx.load(FIXTURES / name)
    options = KeyifyOptions(policy=policy, mean=(120.0, 115.0, 100.0), std=(60.0, 60.0, 60.0))
    keyed = assert_keyed_equals_plain(plain, key, options, count=3)
    assert keyed.manifest.input.shape == [None, 16, 20, 3]
    if policy == "fresh":
        ops = {n.op_type for n in keyed.model.graph.node}
        assert not ops & {"Conv", "MaxPool", "AveragePool", "Resize"}  # every spatial layer is keyed
