"""Golden vectors: the implementation must not drift from the checked-in file."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from firmware_sim import vectors
from firmware_sim.keys import MasterKey
from firmware_sim.spec import ReadoutSpec


def test_vectors_cover_the_matrix_the_spec_promises():
    cases = vectors.load()["cases"]
    sizes = {(c["height"], c["width"]) for c in cases}
    assert (1, 1) in sizes and any(h == 1 and w > 1 for h, w in sizes) and any(w == 1 and h > 1 for h, w in sizes)
    assert any(h != w and h % 2 and w % 2 for h, w in sizes)
    assert {c["spec"]["input_bits"] for c in cases} == {8, 10, 12, 16}
    assert {c["spec"]["output_bits"] for c in cases} == {8, 10, 12}
    assert {c["spec"]["channels"] for c in cases} == {1, 3}
    identity = [ReadoutSpec(**c["spec"]).is_identity for c in cases]
    assert any(identity) and not all(identity)
    assert len({c["key_hex"] for c in cases}) >= 3 and len({c["epoch"] for c in cases}) >= 3


def test_reference_has_not_drifted_from_the_golden_file():
    assert vectors.drift() == []


def test_stored_fingerprints_match_the_keys():
    for case in vectors.load()["cases"]:
        assert MasterKey(bytes.fromhex(case["key_hex"])).fingerprint == case["fingerprint"]


def test_drift_is_detected(tmp_path):
    data = vectors.load()
    data["cases"][3]["output"][0] ^= 1
    path = tmp_path / "golden.json"
    path.write_text(vectors.dumps(data))
    assert vectors.drift(path) == [data["cases"][3]["name"]]
    assert vectors.main(["--check", str(path)]) == 1


def test_regenerate_command_writes_the_same_file(tmp_path):
    path = tmp_path / "golden.json"
    done = subprocess.run(
        [sys.executable, "-m", "firmware_sim.vectors", "--write", str(path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert path.read_text() == vectors.GOLDEN_PATH.read_text()
    assert json.loads(path.read_text())["spec_version"] == 1


def test_vector_inputs_exercise_both_saturation_ends():
    for case in vectors.load()["cases"]:
        spec = ReadoutSpec(**case["spec"])
        codes = np.array(case["input"])
        assert codes.min() == 0 and codes.max() == spec.input_max or case["height"] * case["width"] * spec.channels < 2
