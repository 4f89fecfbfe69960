"""keycam keyify / verify / inspect, run as a user runs them (in-process: tests/inprocess.py)."""

from __future__ import annotations

import json
import re

import cv2
import onnx
import pytest

from edge.lab.demo import shipped_photo
from export.zoo import CIFAR_MEAN, CIFAR_STD, resnet20
from firmware_sim.spec import PRESETS
from firmware_sim.manifest import Manifest
from firmware_sim.words import model_files
from tests.inprocess import Done, keycam

RAW = ("--normalize", "none")  # resnet20's metadata says nothing of its normalisation: asked for explicitly


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
    assert manifest.spec == PRESETS["rgb8-sealed"] and "sealed" in done.stdout  # no --spec: a new one is sealed
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
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, *RAW).returncode == 0
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
    done = run("keyify", tmp_path / "dynamic.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", *RAW)
    assert done.returncode == 1 and "pass --size HxW" in done.stderr
    done = run("keyify", tmp_path / "dynamic.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", "--size", "32x32",
               *RAW)
    assert done.returncode == 0, done.stderr
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k2.onnx", "--size", "64x64",
               *RAW)
    assert done.returncode == 1 and "conflicts" in done.stderr


def test_unsupported_operator_is_refused_by_name(keyfile, tmp_path):
    from tests.export.helpers import op_model, weights

    body = """  a = Conv <pads=[1,1,1,1]> (x, w)
  y = LRN <size=3> (a)
"""
    onnx.save(op_model(body, ["N", 3, 8, 8], {"w": weights(4, 3, 3, 3)}), tmp_path / "lrn.onnx")
    done = run("keyify", tmp_path / "lrn.onnx", "--key", keyfile, "-o", tmp_path / "lrn-keyed.onnx", "--layouts", "fresh",
               *RAW)
    assert done.returncode == 1
    assert "(LRN): LRN on a keyed tensor is not supported" in done.stderr or "(LRN): LRN on a feature map" in done.stderr
    assert not (tmp_path / "lrn-keyed.onnx").exists()
    # the boundary policy runs the plain network in natural order, so it can keep any operator
    done = run("keyify", tmp_path / "lrn.onnx", "--key", keyfile, "-o", tmp_path / "lrn-b.onnx", "--layouts", "boundary",
               *RAW)
    assert done.returncode == 0, done.stderr


def test_bad_arguments(workdir, keyfile, tmp_path):
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--size", "32").returncode == 2
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--mean", "1,2")
    assert done.returncode == 1 and "--mean has 2 values" in done.stderr
    done = run("keyify", tmp_path / "absent.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx")
    assert done.returncode == 1 and "does not exist" in done.stderr
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--spec", "gray8", *RAW)
    assert done.returncode == 1 and "use a 3-channel spec" in done.stderr


def test_labels_file_goes_into_the_manifest(workdir, keyfile, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"class {i}\n" for i in range(10)))
    out = tmp_path / "labelled.onnx"
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--labels", labels, "--layouts", "fresh",
               "--task", "classify", *RAW)
    assert done.returncode == 0, done.stderr
    manifest = Manifest.from_json((tmp_path / "labelled.manifest.json").read_text())
    assert manifest.labels == [f"class {i}" for i in range(10)] and manifest.task == "classify"
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--task", "juggle").returncode == 2
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "x.onnx", "--labels",
               tmp_path / "absent.txt", *RAW)
    assert done.returncode == 1 and "labels file" in done.stderr and "does not exist" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def _with_metadata(workdir, path, **props):
    model = onnx.load(workdir / "plain.onnx")
    for name, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = name, value
    onnx.save(model, path)
    return path


def test_an_existing_output_is_replaced_only_with_force(workdir, keyfile, tmp_path):
    out = tmp_path / "cam.onnx"
    files = model_files(out)
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--split-after", "relu_25", *RAW)
    assert done.returncode == 0, done.stderr
    split = [p for model in (files.feature, files.task) for p in (model, model_files(model).manifest,
                                                                  model_files(model).epochs) if p.exists()]
    assert len(split) >= 4  # each model and its manifest (and the feature model's epoch recipes)
    before = {p: p.read_bytes() for p in [out, files.manifest, *split]}
    other = tmp_path / "other.key"
    assert run("keygen", other).returncode == 0
    done = run("keyify", workdir / "plain.onnx", "--key", other, "-o", out, *RAW)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"'{out}' already exists" in done.stderr and "pass --force" in done.stderr
    failed = run("keyify", workdir / "plain.onnx", "--key", other, "-o", out, "--split-after", "nope", "--force", *RAW)
    assert failed.returncode == 1 and "nope" in failed.stderr  # a compile that fails replaces nothing
    assert {p: p.read_bytes() for p in before} == before
    lone = tmp_path / "lone.onnx"  # any file the name stands for is enough
    model_files(lone).task.write_bytes(b"an earlier task model")
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", lone, *RAW)
    assert done.returncode == 1 and "lone.task.onnx' already exists" in done.stderr

    done = run("keyify", workdir / "plain.onnx", "--key", other, "-o", out, "--force", *RAW)
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in split) and done.stdout.count("removed ") == len(split)
    fingerprint = Manifest.from_json(files.manifest.read_text()).key_fingerprint
    assert fingerprint == run("fingerprint", other).stdout.split()[-1]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave nothing behind


def test_sizes_count_external_data(workdir, keyfile, tmp_path):
    from export.package.save import stored_size

    onnx.save_model(onnx.load(workdir / "plain.onnx"), tmp_path / "ext.onnx", save_as_external_data=True,
                    all_tensors_to_one_file=True, location="ext.onnx.data", size_threshold=0)
    weights = (tmp_path / "ext.onnx.data").stat().st_size
    assert weights > 1_000_000 and stored_size(tmp_path / "ext.onnx") == (tmp_path / "ext.onnx").stat().st_size + weights
    done = run("keyify", tmp_path / "ext.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", *RAW)
    assert done.returncode == 0, done.stderr
    ratio = float(re.search(r"wrote \S+k\.onnx \(([\d.]+)x the plain model\)", done.stdout).group(1))
    assert 0.95 <= ratio <= 1.1, done.stdout  # boundary: the plain weights and one gather table


@pytest.mark.parametrize("said, words", [("segment", "keycam run would refuse this model (its metadata's task "
                                                     "'segment'): "),
                                         ("pose", "'pose'"),  # a pose decoder refuses (N, 10), or none exists
                                         ("juggle", "is a 'juggle' model (its metadata's task), and keycam decodes")])
def test_a_task_run_would_refuse_is_refused_at_compile_time(workdir, keyfile, tmp_path, said, words):
    plain = _with_metadata(workdir, tmp_path / f"{said}.onnx", task=said)
    done = run("keyify", plain, "--key", keyfile, "-o", tmp_path / "k.onnx", *RAW)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert words in done.stderr and "--task tensors" in done.stderr
    assert said == "juggle" or "(N, 10)" in done.stderr  # the outputs the decoder could not read
    assert not list(tmp_path.glob("k.*"))  # refused before anything was written
    done = run("keyify", plain, "--key", keyfile, "-o", tmp_path / "k.onnx", "--task", "tensors", *RAW)
    assert done.returncode == 0, done.stderr
    assert Manifest.from_json((tmp_path / "k.manifest.json").read_text()).task == ""
    done = run("keyify", plain, "--key", keyfile, "-o", tmp_path / "c.onnx", "--task", "classify", *RAW)
    assert done.returncode == 0, done.stderr


def test_a_task_option_that_does_not_fit_the_outputs_is_refused(workdir, keyfile, tmp_path):
    for task in ("detect", "segment"):
        done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", "--task", task,
                   "--split-after", "relu_25", *RAW)  # the task model's manifest is the one checked
        assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert f"(--task {task})" in done.stderr and "(N, 10)" in done.stderr and "choose another --task" in done.stderr
        assert not list(tmp_path.glob("k*"))


def test_normalisation_is_asked_for_and_inspect_says_where_it_came_from(workdir, keyfile, tmp_path):
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx")
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--mean" in done.stderr and "--std" in done.stderr and "--normalize none" in done.stderr
    assert not (tmp_path / "k.onnx").exists()
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", "--normalize", "none",
               "--fit", "letterbox", "--pad", "114")
    assert done.returncode == 0, done.stderr
    spec = Manifest.from_json((tmp_path / "k.manifest.json").read_text()).input
    assert (spec.fit, spec.pad, spec.mean, spec.std) == ("letterbox", 114.0, [0.0] * 3, [1.0] * 3)
    shown = run("inspect", tmp_path / "k.onnx").stdout
    assert re.search(r"^fit +letterbox, pad 114 +\[--fit; --pad\]$", shown, re.M), shown
    assert re.search(r"^mean +0,0,0 \(0\.\.255 scale\) +\[--normalize none\]$", shown, re.M), shown
    ultralytics = _with_metadata(workdir, tmp_path / "u.onnx", author="Ultralytics", task="classify")
    done = run("keyify", ultralytics, "--key", keyfile, "-o", tmp_path / "u-k.onnx", "--mean", "1,2,3")
    assert done.returncode == 0, done.stderr
    shown = run("inspect", tmp_path / "u-k.onnx").stdout
    assert re.search(r"^mean +1,2,3 .*\[--mean\]$", shown, re.M) and re.search(r"^std +255,255,255 .*\[ultralytics", shown,
                                                                               re.M), shown


def test_inspect_of_a_manifest_written_before_sources_were_recorded(workdir, keyfile, tmp_path):
    out = tmp_path / "k.onnx"
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", out, "--mean", "1", "--std", "2")
    assert done.returncode == 0, done.stderr
    model = onnx.load(out)
    (entry,) = [p for p in model.metadata_props if p.key == "keycam.manifest"]
    data = json.loads(entry.value)
    assert data["input"].pop("sources")
    entry.value = json.dumps(data)
    onnx.save(model, tmp_path / "old.onnx")
    shown = run("inspect", tmp_path / "old.onnx")
    assert shown.returncode == 0, shown.stderr
    assert re.search(r"^mean +1,1,1 \(0\.\.255 scale\) +\[not recorded\]$", shown.stdout, re.M), shown.stdout
    assert re.search(r"^fit +crop +\[not recorded\]$", shown.stdout, re.M), shown.stdout


@pytest.mark.parametrize("flags, words", [(["--normalize", "none", "--mean", "1"], "leave out --mean and --std"),
                                          (["--fit", "crop", "--pad", "3"], "--fit crop does not pad"),
                                          (["--pad", "300"], "must be one number in 0..255"),
                                          (["--fit", "squash"], "invalid choice")])
def test_bad_preprocessing_flags_are_usage_errors(workdir, keyfile, tmp_path, flags, words):
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", *flags)
    assert done.returncode == 2 and words in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_pad_where_the_frames_are_not_letterboxed_is_refused(workdir, keyfile, tmp_path):
    done = run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", tmp_path / "k.onnx", "--pad", "3", *RAW)
    assert done.returncode == 1 and "--pad 3 would not be used" in done.stderr and "--fit letterbox" in done.stderr
    assert not (tmp_path / "k.onnx").exists()


def test_quantize_replaces_an_existing_output_only_with_force(workdir, keyfile, tmp_path):
    keyed, out = tmp_path / "q.onnx", tmp_path / "q.int8.onnx"
    assert run("keyify", workdir / "plain.onnx", "--key", keyfile, "-o", keyed, *RAW).returncode == 0
    out.write_bytes(b"an earlier int8 model")
    stale = model_files(out).task  # an earlier split's int8 task model
    stale.write_bytes(b"an earlier int8 task model")
    quantize = ("quantize", keyed, "--key", keyfile, "--calibration", workdir / "images", "-o", out)
    done = run(*quantize)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"'{out}' already exists (and 1 more of its files); pass --force" in done.stderr
    assert out.read_bytes() == b"an earlier int8 model"
    done = run(*quantize, "--force")
    assert done.returncode == 0, done.stderr
    assert onnx.load(out).graph.node and not stale.exists() and f"removed {stale}" in done.stdout


def test_a_gray_model_without_spec_gets_the_gray_sealed_readout(keyfile, tmp_path):
    from edge.default import ASSET, MEAN, STD

    done = run("keyify", ASSET, "--key", keyfile, "-o", tmp_path / "k.onnx",
               "--mean", MEAN[0], "--std", STD[0])
    assert done.returncode == 0, done.stderr
    assert Manifest.from_json((tmp_path / "k.manifest.json").read_text()).spec == PRESETS["gray8-sealed"]


def test_a_keyify_killed_while_writing_leaves_nothing_readable_and_the_next_one_clears_it(tmp_path):
    """SIGKILL at the worst moment (every file staged, none renamed into place), in a real process under umask
    022: what is left is private (a 0700 staging folder, 0600 files: no world-readable copy of the keyed model),
    no model stands without its sidecars, and the next keyify of that output removes the leftovers."""
    import os
    import signal
    import stat
    import subprocess
    import sys

    from edge.default import ASSET
    from firmware_sim.keys import MasterKey

    MasterKey.generate().save(tmp_path / "k.key")
    (tmp_path / "plain.onnx").write_bytes(ASSET.read_bytes())
    argv = ["keyify", "plain.onnx", "--key", "k.key", "-o", "kk.onnx", "--spec", "gray8", "--mean", "72.94",
            "--std", "90"]
    killer = ("import os, signal, sys\n"
              "os.umask(0o022)\n"
              "os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
              "from edge.cli import main\n"
              f"sys.exit(main({argv!r}))\n")
    done = subprocess.run([sys.executable, "-c", killer], cwd=tmp_path, capture_output=True, timeout=300)
    assert done.returncode == -signal.SIGKILL, done.stderr
    left = [p for p in tmp_path.rglob("*") if p.name not in ("k.key", "plain.onnx")]
    assert left and not (tmp_path / "kk.onnx").exists()  # staged, never renamed: no model without its sidecars
    loose = {str(p.relative_to(tmp_path)): oct(stat.S_IMODE(p.lstat().st_mode)) for p in left
             if stat.S_IMODE(p.lstat().st_mode) & 0o077 and not p.name.endswith(".manifest.json")}
    assert loose == {}
    for folder in (p for p in left if p.is_dir()):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    again = keycam(*argv, cwd=tmp_path, timeout=300)
    assert again.returncode == 0, again.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], os.listdir(tmp_path)


@pytest.mark.parametrize("count", [3, 11])
def test_class_names_that_do_not_name_every_class_are_refused_and_nothing_is_written(tmp_path, count):
    from edge.default import ASSET
    from firmware_sim.keys import MasterKey

    MasterKey.generate().save(tmp_path / "k.key")
    (tmp_path / "plain.onnx").write_bytes(ASSET.read_bytes())  # a classifier of 10 classes
    (tmp_path / "labels.txt").write_text("".join(f"class{i}\n" for i in range(count)))
    done = keycam("keyify", "plain.onnx", "--key", "k.key", "-o", "kk.onnx", "--spec", "gray8", "--mean", "72.94",
                  "--std", "90", "--labels", "labels.txt", cwd=tmp_path, timeout=300)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{count} class names" in done.stderr and "of 10 classes" in done.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("kk", "."))]


@pytest.mark.parametrize("case", ["labels-is-the-manifest", "plain-is-the-feature-model", "plain-is-the-recipes"])
def test_an_input_named_like_a_file_of_the_output_is_never_written_over(tmp_path, case):
    """The output's files are more than -o: its manifest, epoch recipes and a split's models count as outputs,
    and an input named like one of them (the labels, the plain model) is refused before anything is written."""
    import hashlib

    from edge.default import ASSET
    from firmware_sim.keys import MasterKey

    MasterKey.generate().save(tmp_path / "k.key")
    plain = {"labels-is-the-manifest": "plain.onnx", "plain-is-the-feature-model": "kk.feature.onnx",
             "plain-is-the-recipes": "kk.epochs.npz"}[case]
    (tmp_path / plain).write_bytes(ASSET.read_bytes())
    (tmp_path / "kk.manifest.json").write_text("".join(f"class{i}\n" for i in range(10)))
    labels = ["--labels", "kk.manifest.json"] if case == "labels-is-the-manifest" else []
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    done = keycam("keyify", plain, "--key", "k.key", "-o", "kk.onnx", "--spec", "gray8", "--mean", "72.94", "--std",
                  "90", *labels, cwd=tmp_path, timeout=300)
    assert done.returncode == 1 and "would destroy the input" in done.stderr, done.stderr
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()} == before
