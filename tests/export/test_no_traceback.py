"""keyify never ends in a traceback: over every model fixture, every exporter variant, the zoo, ultralytics' YOLO
exports, a fixed-batch model and tiny models with what the compiler cannot do, under both policies, it either
compiles or raises one KeycamError of one line (an UnsupportedModel names the node, the op and why)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest

from export.errors import UnsupportedModel
from export.keyify import KeyifyOptions, KeyifyResult, keyify
from export.zoo import NETWORKS, ssd_head
from firmware_sim.errors import KeycamError
from tests.export.detection import DEFAULT_VARIANTS
from tests.export.helpers import op_model, weights

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
POLICIES = ["fresh", "boundary"]
REFUSAL = re.compile(r"^node '[^']*' \([^)]*\): \S.*$")


def outcome(plain, key, options: KeyifyOptions) -> str:
    """'ok', or the one-line refusal; anything else (a traceback, a message of several lines) fails the test."""
    try:
        result = keyify(plain, key, options)
    except KeycamError as error:
        message = str(error)
        assert message and "\n" not in message, repr(message)
        if isinstance(error, UnsupportedModel):
            assert REFUSAL.match(message), message
        return message
    assert isinstance(result, KeyifyResult)
    onnx.checker.check_model(result.model)
    return "ok"


W = {"w0": weights(4, 3, 3, 3, seed=1), "w1": weights(4, 4, 3, 3, seed=2)}
CONV = "  a = Conv <pads=[1,1,1,1]> (x, w0)\n"
TINY = {  # name: (body, input shape, extra initializers, what fresh does)
    "lrn": (CONV + "  y = LRN <size=3> (a)\n", ["N", 3, 8, 8], {}, "refused"),
    "spatial softmax": (CONV + "  y = Softmax <axis=2> (a)\n", ["N", 3, 8, 8], {}, "refused"),
    "top-k of positions": (CONV + "  f = Flatten(a)\n  y, i = TopK(f, k)\n", ["N", 3, 8, 8],
                           {"k": np.array([3], np.int64)}, "refused"),
    "reflect pad": (CONV + "  y = Pad <mode=\"reflect\"> (a, pads)\n", ["N", 3, 8, 8],
                    {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)}, "refused"),
    "maxpool indices": (CONV + "  y, i = MaxPool <kernel_shape=[2,2]> (a)\n", ["N", 3, 8, 8], {}, "refused"),
    "gather of positions": (CONV + "  y = Gather <axis=2> (a, rows)\n", ["N", 3, 8, 8],
                            {"rows": np.array([0, 2], np.int64)}, "refused"),
    "squeeze of a map": ("  a = Conv (x, w8)\n  y = Squeeze(a, two)\n", ["N", 3, 8, 6],
                         {"w8": weights(4, 3, 8, 1), "two": np.array([2], np.int64)}, "refused"),
    "a fixed batch with a hard-coded reshape": (CONV + "  r = Reshape(a, fixed)\n  y = Softmax <axis=1> (r)\n",
                                                [1, 3, 8, 8], {"fixed": np.array([1, 4, 64], np.int64)}, "ok"),
    "five channels": ("  y = Relu(x)\n", ["N", 5, 8, 8], {}, "refused"),
    "rank 3 input": ("  y = Relu(x)\n", ["N", 3, 8], {}, "refused"),
    "a dynamic size": ("  y = Relu(x)\n", ["N", 3, "H", "W"], {}, "refused"),
    "two inputs": ("  y = Add(x, z)\n", ["N", 3, 8, 8], {}, "refused"),
    "fails when it runs": (CONV + "  s = Shape(a)\n  n = Gather <axis=0> (s, zero)\n  u = Unsqueeze(n, axes)\n"
                           "  t = Concat <axis=0> (u, seven)\n  y = Reshape(a, t)\n", ["N", 3, 8, 8],
                           {"zero": np.array(0, np.int64), "axes": np.array([0], np.int64),
                            "seven": np.array([7, -1], np.int64)}, "refused"),
}


def _tiny(name: str) -> onnx.ModelProto:
    body, shape, extra, _ = TINY[name]
    return op_model(body, shape, {**W, **extra}, extra_inputs=", float[N, 3, 8, 8] z" if "two" in name else "")


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(TINY))
def test_tiny_models_compile_or_are_refused_in_one_line(key, name, policy):
    result = outcome(_tiny(name), key, KeyifyOptions(policy=policy))
    expected = TINY[name][3] if policy == "fresh" else "ok"
    structural = name in ("five channels", "rank 3 input", "a dynamic size", "two inputs", "fails when it runs")
    assert (result == "ok") == (expected == "ok" and not structural), result


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.onnx")))
def test_every_model_fixture(key, name, policy):
    assert outcome(str(FIXTURES / name), key, KeyifyOptions(policy=policy)) == "ok"


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("tflite_*.onnx")))
def test_every_tflite_fixture_with_the_fixed_batch_a_tflite_model_has(key, name, policy):
    plain = onnx.load(FIXTURES / name)
    batch = plain.graph.input[0].type.tensor_type.shape.dim[0]
    batch.Clear()
    batch.dim_value = 1
    assert outcome(plain, key, KeyifyOptions(policy=policy)) == "ok"


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("name", sorted(NETWORKS) + ["ssd_head", "ssd_head-fixed"])
def test_every_zoo_network(key, name, policy):
    plain = ssd_head(1 if name.endswith("fixed") else None) if name.startswith("ssd") else NETWORKS[name][0]()
    assert outcome(plain, key, KeyifyOptions(policy=policy)) == "ok"


EXPORTS = [(imgsz, dynamic, "") for imgsz, dynamic in DEFAULT_VARIANTS] + [
    ((320, 320), False, "pristine"),  # ultralytics' own random initialisation
    ((320, 320), False, "raw"),  # not simplified (onnxslim missing, or simplify=False)
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("imgsz, dynamic, kind", EXPORTS)
def test_ultralytics_exports(key, yolo, policy, imgsz, dynamic, kind):
    path = yolo(imgsz, dynamic, detecting=kind != "pristine", simplify=kind != "raw")
    assert outcome(str(path), key, KeyifyOptions(policy=policy, size=imgsz if dynamic else None)) == "ok"
    if dynamic:
        assert "pass --size HxW" in outcome(str(path), key, KeyifyOptions(policy=policy))


@pytest.mark.parametrize("policy", POLICIES)
def test_files_and_options_that_cannot_be_used(key, tmp_path, policy):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"\x08\x07garbage" * 10)
    custom = op_model("  y = Relu(x)\n", ["N", 3, 8, 8])
    custom.graph.node[0].domain = "com.example"
    custom.opset_import.append(onnx.helper.make_opsetid("com.example", 1))
    cases = [
        (str(tmp_path / "missing.onnx"), KeyifyOptions(policy=policy), "does not exist"),
        (str(broken), KeyifyOptions(policy=policy), "is not a readable ONNX file"),
        (custom, KeyifyOptions(policy=policy), "cannot load the plain model"),
        (_tiny("lrn"), KeyifyOptions(policy=policy, split_after="nowhere"), "no node or tensor of that name"),
        (_tiny("lrn"), KeyifyOptions(policy=policy, mean=(1.0, 2.0)), "--mean has 2 values"),
    ]
    for plain, options, message in cases:
        result = outcome(plain, key, options)
        assert message in result, result
