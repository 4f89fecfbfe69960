"""A TFLite model as users bring it: mediapipe 0.10.21's palm detector (``palm_detection_lite.tflite`` from its
wheel), converted to ONNX by tf2onnx 1.17 (``python -m tf2onnx.convert --tflite``), keyed with the documented
`keycam keyify` command under both layout policies, and equal to the plain ONNX model on real pictures
(docs/compiler.md, "Converting TFLite models").

tf2onnx imports TensorFlow for every conversion, TFLite included (tensorflow-cpu 2.21.0: a 274 MB wheel, about
1.3 GB installed, and it pins h5py below 3.15), so it lives in a virtual environment of its own: the converter
runs in ``$KEYCAM_TF2ONNX_PYTHON``, else in ``<prefix>/share/keycam/tf2onnx/bin/python`` (where
scripts/setup-venv.sh puts it), else in this environment when it has tf2onnx and TensorFlow. The model is
``$KEYCAM_PALM_TFLITE``, else ``<prefix>/share/keycam/palm_detection_lite.tflite``. Without either, the test is
skipped and says which is missing and how to get it.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest

from edge.lab.demo import shipped_photo
from firmware_sim.keys import MasterKey
from firmware_sim.manifest import Manifest
from tests.export.helpers import TOLERANCE, relative_error, restore, session
from tests.inprocess import keycam

PALM = "palm_detection_lite.tflite"
FLAGS = ["--mean", "0", "--std", "255", "--fit", "letterbox", "--pad", "0"]  # its graph: [0, 1], zero borders


SHARE = Path(sys.prefix) / "share" / "keycam"


def _converter() -> str | None:
    python = os.environ.get("KEYCAM_TF2ONNX_PYTHON")
    if python:
        return python
    if (SHARE / "tf2onnx" / "bin" / "python").is_file():
        return str(SHARE / "tf2onnx" / "bin" / "python")
    have = all(importlib.util.find_spec(name) is not None for name in ("tf2onnx", "tensorflow"))
    return sys.executable if have else None


@pytest.fixture(scope="module")
def palm(tmp_path_factory) -> Path:
    python = _converter()
    tflite = Path(os.environ.get("KEYCAM_PALM_TFLITE") or SHARE / PALM)
    if python is None:
        pytest.skip(f"no tf2onnx with TensorFlow: make {SHARE / 'tf2onnx'} a virtual environment with pip install "
                    f"tf2onnx==1.17.0 tensorflow-cpu==2.21.0 (docs/compiler.md), or set KEYCAM_TF2ONNX_PYTHON")
    if not tflite.is_file():
        pytest.skip(f"{tflite} is missing: unzip mediapipe/modules/palm_detection/{PALM} from mediapipe 0.10.21's "
                    f"wheel there (docs/compiler.md), or set KEYCAM_PALM_TFLITE")
    out = tmp_path_factory.mktemp("palm") / "palm.onnx"
    done = subprocess.run([python, "-m", "tf2onnx.convert", "--tflite", str(tflite), "--output", str(out)],
                          capture_output=True, text=True, timeout=900, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pictures() -> np.ndarray:
    """Real photographs (scikit-image's samples: a person, a cat, ...), RGB, 192 x 192."""
    names = ("astronaut", "chelsea", "coffee", "motorcycle_left", "rocket", "hubble_deep_field")
    return np.stack([cv2.resize(cv2.imread(str(shipped_photo(name)))[:, :, ::-1], (192, 192)) for name in names])


@pytest.mark.parametrize("policy", ["boundary", "fresh"])
def test_palm_detection_converted_by_tf2onnx_is_keyed_exactly(palm, pictures, tmp_path, policy):
    plain = onnx.load(palm)
    shapes = [[d.dim_value for d in v.type.tensor_type.shape.dim] for v in (*plain.graph.input, *plain.graph.output)]
    assert shapes == [[1, 192, 192, 3], [1, 2016, 18], [1, 2016, 1]]  # NHWC, a fixed batch of one
    keyfile, out = tmp_path / "k.key", tmp_path / "palm-keyed.onnx"
    assert keycam("keygen", str(keyfile)).returncode == 0
    done = keycam("keyify", str(palm), "--key", str(keyfile), "-o", str(out), "--layouts", policy, *FLAGS)
    assert done.returncode == 0, done.stderr
    manifest = Manifest.from_json(out.with_name("palm-keyed.manifest.json").read_text())
    assert (manifest.batch, manifest.input.fit, manifest.input.pad) == (1, "letterbox", 0.0)

    from edge.sensor import Readout

    key = MasterKey.load(keyfile)
    readout = Readout.for_model(manifest, key)
    plain_run, keyed_run = session(plain, optimise=False), session(onnx.load(out))
    scores = []
    for picture in pictures[:6]:
        want = plain_run.run(None, {plain.graph.input[0].name: picture[None].astype(np.float32) / 255})
        got = keyed_run.run(None, {"measurement": readout.measure(picture, manifest.epoch)[None]})
        for spec, w, g in zip(manifest.outputs, want, got):
            if spec.kind == "dense":  # fresh: the anchors leave in the key's order
                assert not np.allclose(g, w)
                g = restore(g, spec, key)
            assert g.shape == w.shape and relative_error(g, w) <= TOLERANCE, (policy, spec.name)
        scores.append(want[1].max())
    assert np.ptp(scores) > 0  # the pictures give the detector different answers: agreement means something
