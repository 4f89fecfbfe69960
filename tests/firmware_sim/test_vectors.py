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
    pixel = [c for c in cases if c["spec"].get("cfa", "none") == "none"]
    assert {c["spec"]["channels"] for c in pixel} == {1, 3}
    identity = [ReadoutSpec(**c["spec"]).is_identity for c in cases]
    assert any(identity) and not all(identity)
    assert len({c["key_hex"] for c in cases}) >= 3 and len({c["epoch"] for c in cases}) >= 3


def test_version_2_vectors_cover_every_phase_both_alignments_and_a_transfer():
    cases = [c for c in vectors.load()["cases"] if c["spec"]["spec_version"] == 2]
    bayer = [c for c in cases if c["spec"]["cfa"] != "none"]
    assert {c["spec"]["channels"] for c in bayer} == {4}
    for phase in ("RGGB", "GRBG", "GBRG", "BGGR"):
        assert {c["spec"]["input_alignment"] for c in bayer if c["spec"]["cfa"] == phase} == {"lsb", "msb"}, phase
    assert {c["spec"]["input_bits"] for c in bayer} == {8, 10, 12, 16}
    assert {c["spec"]["output_bits"] for c in bayer} == {8, 10, 12}
    assert any(c["spec"]["black_level"] and c["spec"]["gain_q16"] != 65536 for c in bayer if c["spec"]["input_alignment"] == "msb")
    assert any((1, 1) == (c["height"], c["width"]) for c in bayer) and any(c["height"] != c["width"] for c in bayer)
    assert {c["spec"]["channels"] for c in cases if c["spec"]["cfa"] == "none"} == {1, 3}  # MSB pixel specs
    for c in bayer:  # the mosaic: 2H x 2W photosites, the measurement H x W cells of 4 codes
        assert c["input_shape"] == [2 * c["height"], 2 * c["width"], 1] and len(c["input"]) == 4 * c["height"] * c["width"]
        assert len(c["output"]) == 4 * c["height"] * c["width"]
    msb = [np.array(c["input"]) for c in cases if c["spec"]["input_alignment"] == "msb"]
    assert all(words.max() == 0xFFFF for words in msb) and any(np.any(words & 0xF) for words in msb)  # low bits carry noise


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
        codes = np.array(case["input"]) >> spec.alignment_shift  # MSB-aligned words: their top input_bits bits
        assert codes.min() == 0 and codes.max() == spec.input_max or case["height"] * case["width"] * spec.channels < 2
