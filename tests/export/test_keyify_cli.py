"""keycam keyify / verify / inspect, run as a user runs them (in-process: tests/inprocess.py)."""

from __future__ import annotations

import json

import cv2
import onnx
import pytest

from edge.lab.demo import shipped_photo
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from firmware_sim.manifest import Manifest
from tests.inprocess import Done, keycam


def run(*args) -> Done:
    return keycam(*map(str, args))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("keyify")
    onnx.save(resnet20(), folder / "plain.onnx")
    images = folder / "images"
    images.mkdir()
    photo = cv2.imread(str(shipped_photo()))
    for i in range(6):  # six 32 x 32 crops of a real photo
        cv2.imwrite(str(images / f"crop_{i}.png"), cv2.resize(photo[i * 40: i * 40 + 120, i * 50: i * 50 + 160], (32, 32)))
    return folder


@pytest.fixture
def keyfile(workdir):
    path = workdir / "k.key"
    if not path.exists():
        assert run("keygen", path).returncode == 0
    return path


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_keyify_verify_inspect(workdir, keyfile, policy):
    out = workdir / f"keyed-{policy}.onnx"
    mean, std = ",".join(map(str, CIFAR_MEAN)), ",".join(map(str, CIFAR_STD))
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--mean", mean, "--std", std,
               "--layouts", policy)
    assert done.returncode == 0, done.stderr
    manifest = Manifest.from_json((workdir / f"keyed-{policy}.manifest.json").read_text())
    assert manifest.policy == policy and manifest.input.shape == [None, 32, 32, 3]
    model = onnx.load(out)
    props = {p.key: p.value for p in model.metadata_props}
    assert props["keycam.fingerprint"] == manifest.key_fingerprint
    assert json.loads(props["keycam.manifest"])["policy"] == policy
    secret = keyfile.read_bytes()
    assert secret not in out.read_bytes() and secret.hex() not in done.stdout

    verified = run("verify", workdir / "plain.onnx", out, "--key", keyfile, "--images", workdir / "images")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "top-1 agree   100.00 %" in verified.stdout and "exact" in verified.stdout

    shown = run("inspect", out)
    assert shown.returncode == 0 and manifest.key_fingerprint in shown.stdout and secret.hex() not in shown.stdout


def test_verify_with_another_key_is_one_line(workdir, keyfile, tmp_path):
    out = workdir / "keyed-v.onnx"
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out).returncode == 0
    other = tmp_path / "other.key"
    run("keygen", other)
    done = run("verify", workdir / "plain.onnx", out, "--key", other, "--images", workdir / "images")
    assert done.returncode == 1 and "keyed for" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_inspect_of_a_plain_model(workdir):
    done = run("inspect", workdir / "plain.onnx")
    assert done.returncode == 0 and "not a keyed model" in done.stdout


def test_dynamic_size_needs_size(workdir, keyfile, tmp_path):
    model = onnx.load(workdir / "plain.onnx")
    for dim, name in ((2, "height"), (3, "width")):
        model.graph.input[0].type.tensor_type.shape.dim[dim].Clear()
        model.graph.input[0].type.tensor_type.shape.dim[dim].dim_param = name
    onnx.save(model, tmp_path / "dynamic.onnx")
    done = run("keyify", tmp_path / "dynamic.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx")
    assert done.returncode == 1 and "pass --size HxW" in done.stderr
    done = run("keyify", tmp_path / "dynamic.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", "--size", "32x32")
    assert done.returncode == 0, done.stderr
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k2.onnx", "--size", "64x64")
    assert done.returncode == 1 and "conflicts" in done.stderr


def test_unsupported_operator_is_refused_by_name(keyfile, tmp_path):
    from tests.export.helpers import op_model, weights

    body = """  a = Conv <pads=[1,1,1,1]> (x, w)
  y = LRN <size=3> (a)
"""
    onnx.save(op_model(body, ["N", 3, 8, 8], {"w": weights(4, 3, 3, 3)}), tmp_path / "lrn.onnx")
    done = run("keyify", tmp_path / "lrn.onnx", "--key", keyfile, "-o", tmp_path / "lrn-keyed.onnx", "--layouts", "fresh")
    assert done.returncode == 1
    assert "(LRN): LRN on a keyed tensor is not supported" in done.stderr or "(LRN): LRN on a feature map" in done.stderr
    assert not (tmp_path / "lrn-keyed.onnx").exists()
    # the boundary policy runs the plain network in natural order, so it can keep any operator
    done = run("keyify", tmp_path / "lrn.onnx", "--key", keyfile, "-o", tmp_path / "lrn-b.onnx", "--layouts", "boundary")
    assert done.returncode == 0, done.stderr


def test_bad_arguments(workdir, keyfile, tmp_path):
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--size", "32").returncode == 2
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--mean", "1,2")
    assert done.returncode == 1 and "--mean has 2 values" in done.stderr
    done = run("keyify", tmp_path / "absent.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx")
    assert done.returncode == 1 and "does not exist" in done.stderr
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--spec", "gray8")
    assert done.returncode == 1 and "use a 3-channel spec" in done.stderr


def test_labels_file_goes_into_the_manifest(workdir, keyfile, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    out = tmp_path / "labelled.onnx"
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--labels", labels, "--layouts", "fresh",
               "--task", "classify")
    assert done.returncode == 0, done.stderr
    manifest = Manifest.from_json((tmp_path / "labelled.manifest.json").read_text())
    assert manifest.labels == [f"class {i}" for i in range(10)] and manifest.task == "classify"
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--task", "pose").returncode == 2
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--labels",
               tmp_path / "absent.txt")
    assert done.returncode == 1 and "labels file" in done.stderr and "does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
