"""The paper's fine-tuned row: the plain network, converted to PyTorch, fine-tuned on labelled measurements.

Needs PyTorch. scripts/setup-venv.sh installs it for the tests on x86_64, where these tests must run; on other
machines they are skipped with the reason.
"""

from __future__ import annotations

import platform
import shutil

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from edge.lab.datasets import FASHION_MNIST
from export.zoo.keras_cifar import convert
from edge.lab.datasets import foolbox_images

try:
    import torch
except ImportError:
    if platform.machine() == "x86_64":
        raise ImportError("PyTorch is missing, but scripts/setup-venv.sh installs it for the tests on x86_64: "
                          "run scripts/setup-venv.sh test, or pip install torch==2.13.0") from None
    pytest.skip(f"PyTorch is not installed on this {platform.machine()} machine (setup-venv.sh installs it on "
                "x86_64 only)", allow_module_level=True)

from edge.errors import LabError as UnsupportedModel  # noqa: E402 - what the interpreter raises for a node
from edge.lab.attacks.finetune import BINARY, UNARY, OnnxModule  # noqa: E402
from firmware_sim.words import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY  # noqa: E402
from tests.inprocess import keycam  # noqa: E402 - `keycam` in this process
from edge.default import ASSET  # noqa: E402 - keycam's own Fashion-MNIST CNN


def _rows(stdout: str) -> dict[str, str]:
    return {line.split("|")[1].strip(): line.split("|")[2].strip() for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| |")}


@pytest.mark.parametrize("name", ["fashion-mnist-cnn", "cifar10-keras-cnn"])
def test_the_converted_plain_model_computes_what_onnxruntime_computes(name):
    model = onnx.load(ASSET) if name == "fashion-mnist-cnn" else convert()
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = (np.random.default_rng(0).standard_normal([4, *dims]) * 2).astype(np.float32)  # (4, C, H, W)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0]
    with torch.no_grad():
        got = OnnxModule(model)(torch.from_numpy(x)).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * np.abs(expected).max()


def test_the_interpreters_element_wise_operators_are_the_shared_families():
    assert set(UNARY) <= set(ELEMENTWISE_UNARY), sorted(set(UNARY) - set(ELEMENTWISE_UNARY))
    assert set(BINARY) <= set(ELEMENTWISE_BINARY), sorted(set(BINARY) - set(ELEMENTWISE_BINARY))


@pytest.mark.parametrize("op", [*UNARY, *BINARY])
def test_each_element_wise_operator_computes_what_onnxruntime_computes(op):
    node = {"Clip": "y = Clip(x, lo, hi)", "LeakyRelu": "y = LeakyRelu <alpha = 0.2> (x)"}.get(op, f"y = {op}(x)")
    if op in BINARY:
        node = f"y = {op}(x, c)"
    model = onnx.parser.parse_model(f"""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[2, 3, 4, 4] x) => (float[2, 3, 4, 4] y)
          <float lo = {{-0.5}}, float hi = {{1.5}}, float[3, 1, 1] c = {{0.5, 2.0, -1.5}}> {{ {node} }}
    """)
    x = np.random.default_rng(1).standard_normal([2, 3, 4, 4]).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"x": x})[0]
    with torch.no_grad():
        got = OnnxModule(model)(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)


def test_an_operator_without_a_torch_twin_is_declined_by_name():
    model = onnx.parser.parse_model("""
        <ir_version: 8, opset_import: ["" : 17]>
        g (float[1, 3, 8, 8] x) => (float[1, 3, 8, 8] y) { y = LRN <size = 3> (x) }
    """)
    with pytest.raises(UnsupportedModel, match=r"\(LRN\): no PyTorch equivalent"):
        OnnxModule(model)


def test_eval_privacy_adds_the_fine_tuned_row_and_it_beats_the_plain_model_on_scrambled_images():
    done = keycam("eval", "privacy", "--model", str(ASSET), "--data", str(FASHION_MNIST),
                  "--mean", "72.94", "--std", "90.0", "--limit", "500", "--layouts", "boundary",
                  "--wrong-keys", "1", "--finetune-epochs", "1", "--finetune-limit", "2000")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    scrambled = float(rows["plain model, scrambled images"].split("%")[0])
    finetuned = float(rows["plain model fine-tuned on scrambled images (2000 images, 1 epoch)"].split("%")[0])
    assert finetuned > scrambled + 10.0  # labelled measurements teach the plain network something
    assert finetuned < float(rows["plain model, plain images"].split("%")[0])  # but not the plain accuracy
    assert "fine-tune epoch 1/1" in done.stderr


def test_eval_privacy_will_not_fine_tune_without_a_separate_training_set(tmp_path):
    data = tmp_path / "cifar10"
    data.mkdir()
    for path, _ in foolbox_images("cifar10"):
        shutil.copy(path, data / path.name)
    onnx.save(convert(), tmp_path / "cifar.onnx")
    base = ["eval", "privacy", "--model", str(tmp_path / "cifar.onnx"), "--data", str(data),
            "--finetune-epochs", "1"]
    done = keycam(*base)
    assert done.returncode == 1 and "too few to fine-tune on" in done.stderr
    done = keycam(*base, "--finetune-data", str(data))
    assert done.returncode == 1 and "is the evaluation folder" in done.stderr
