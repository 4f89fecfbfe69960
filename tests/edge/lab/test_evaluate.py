"""keycam eval privacy: the paper's table from the command line (in-process: tests/inprocess.py), on real models
and real images."""

from __future__ import annotations

import shutil

import onnx

from edge.lab.datasets import FASHION_MNIST
from export.zoo.keras_cifar import convert
from edge.lab.datasets import foolbox_images
from tests.inprocess import keycam
from edge.default import ASSET  # noqa: E402 - keycam's own Fashion-MNIST CNN


def _rows(stdout: str) -> dict[str, str]:
    return {line.split("|")[1].strip(): line.split("|")[2].strip() for line in stdout.splitlines()
            if line.startswith("| ") and not line.startswith("| |")}


def test_eval_privacy_on_labelled_cifar10_images(tmp_path):
    data = tmp_path / "cifar10"
    data.mkdir()
    for path, _ in foolbox_images("cifar10"):
        shutil.copy(path, data / path.name)
    onnx.save(convert(), tmp_path / "cifar.onnx")
    done = keycam("eval", "privacy", "--model", str(tmp_path / "cifar.onnx"), "--data", str(data),
                  "--wrong-keys", "3")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert rows["plain model, plain images"] == "100.00 %"
    assert rows["keyed model, with the key"].startswith("100.00 % (same prediction as plain on 100.00 %)")
    assert "keyed model, wrong keys (3)" in rows


def test_eval_privacy_on_fashion_mnist_idx_files():
    done = keycam("eval", "privacy", "--model", str(ASSET), "--data", str(FASHION_MNIST),
                  "--mean", "72.94", "--std", "90.0", "--limit", "500", "--layouts", "boundary")
    assert done.returncode == 0, done.stderr
    rows = _rows(done.stdout)
    assert "same prediction as plain on 100.00 %" in rows["keyed model, with the key"]
    wrong = float(rows["keyed model, wrong keys (5)"].split("%")[0])
    assert wrong < 30.0  # chance is 10 %
    assert done.stdout.startswith("500 images")


def test_eval_privacy_errors(tmp_path):
    done = keycam("eval", "privacy", "--model", str(ASSET), "--data", str(tmp_path / "none"))
    assert done.returncode == 1 and "does not exist" in done.stderr
    (tmp_path / "unlabelled.png").write_bytes(b"")
    done = keycam("eval", "privacy", "--model", str(ASSET), "--data", str(tmp_path))
    assert done.returncode == 1 and "no label after its last underscore" in done.stderr
