"""The command line's contract, over every command: a bad argument is refused in one line on stderr, with exit
status 1 (a known error) or 2 (usage), never a traceback, and nothing is written."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import build_parser

KEYCAM = shutil.which("keycam") or str(Path(sys.executable).with_name("keycam"))
GONE = "{tmp}/missing"  # a path that does not exist

# One or more bad invocations per command; {tmp} is a fresh folder, {key} a valid key file, {folder} an empty folder.
CASES = {
    "keygen": [["keygen", "{tmp}/no/such/folder/k.key"], ["keygen", "{key}"]],
    "fingerprint": [["fingerprint", GONE], ["fingerprint", "{folder}"]],
    "spec": [["spec", GONE + ".toml"], ["spec", "nope"]],
    "scramble": [["scramble", "--key", "{key}", GONE + ".png", "{tmp}/out.png"],
                 ["scramble", "--key", GONE, "{png}", "{tmp}/out.png"],
                 ["scramble", "--key", "{key}", "--epoch", "-1", "{png}", "{tmp}/out.png"]],
    "unscramble": [["unscramble", "--key", "{key}", "{png}", "{tmp}/out.gif"]],
    "firmware-sim": [["firmware-sim", "--key", "{key}", "{folder}", "{tmp}/out.png"]],
    "golden-vectors": [["golden-vectors", "--check", GONE + ".json"], ["golden-vectors"]],
    "keyify": [["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx"],
               ["keyify", "{png}", "--key", "{key}", "-o", "{tmp}/out.onnx"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--mean", "nan"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--std", "0"]],
    "verify": [["verify", GONE + ".onnx", GONE + ".onnx", "--key", "{key}", "--images", "{folder}"],
               ["verify", GONE + ".onnx", GONE + ".onnx", "--key", "{key}", "--images", "{folder}", "--limit", "0"]],
    "inspect": [["inspect", GONE + ".onnx"], ["inspect", "{png}"]],
    "run": [["run", "--config", GONE + ".toml"], ["run", "--max-frames", "-1"], ["run", "--config", "{png}"]],
    "replay": [["replay", GONE], ["replay", "{folder}", "--model", GONE + ".onnx", "--key", "{key}"]],
    "record": [["record", "{tmp}/out.mcap", "--config", GONE + ".toml"], ["record", "{tmp}/out.txt",
                                                                          "--max-frames", "x"]],
    "preview": [["preview", GONE, "-o", "{tmp}/out.png"], ["preview", "-o", "{tmp}/out.png", "--frames", "0"]],
    "validate-config": [["validate-config", GONE + ".toml"], ["validate-config", "{folder}"]],
    "eval": [["eval", "privacy", "--model", GONE + ".onnx", "--data", "{folder}"],
             ["eval", "privacy", "--model", GONE + ".onnx", "--data", "{folder}", "--wrong-keys", "0"], ["eval"]],
    "demo": [["demo", "--out", "{tmp}/demo", "--image", GONE + ".png"]],
    "serve": [["serve", "--model-repository", GONE], ["serve", "--model-repository", "{folder}", "--port", "0"],
              ["serve", "--model-repository", "{folder}", "--max-body-mb", "nan"]],
    "export": [["export", "triton", GONE + ".onnx", "--name", "m", "--repository", "{tmp}/repo"], ["export"]],
}


def test_the_table_covers_every_command():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == set(CASES)


@pytest.fixture
def places(tmp_path, key):
    import cv2
    import numpy as np

    key.save(tmp_path / "k.key")
    (tmp_path / "empty").mkdir()
    cv2.imwrite(str(tmp_path / "p.png"), np.zeros((8, 8, 3), np.uint8))
    return {"tmp": tmp_path / "work", "key": tmp_path / "k.key", "folder": tmp_path / "empty", "png": tmp_path / "p.png"}


@pytest.mark.parametrize("argv", [argv for cases in CASES.values() for argv in cases], ids=lambda a: " ".join(a))
def test_a_bad_argument_is_one_line_and_no_traceback(argv, places):
    places["tmp"].mkdir()
    args = [a.format(**places) for a in argv]
    done = subprocess.run([KEYCAM, *args], capture_output=True, text=True, timeout=120, cwd=places["tmp"])
    assert done.returncode in (1, 2), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("keycam"), done.stderr
    assert not [p for p in places["tmp"].rglob("*") if p.name.startswith("out")]  # nothing written
