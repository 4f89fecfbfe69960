"""The command line's contract, over every command: a bad argument is refused in one line on stderr, with exit
status 1 (a known error) or 2 (usage), never a traceback, and nothing is written.

The tables run `keycam` in this process (tests/inprocess.py: stdout and stderr at the file descriptors, an
exception that escapes ``main()`` fails the test, process state put back after each call); a few real
`keycam` processes check what only a process shows: the console script's exit statuses and its one line."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import build_parser
from tests.inprocess import keycam

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
    "golden-vectors": [["golden-vectors", "--check", GONE + ".json"], ["golden-vectors"],
                       ["golden-vectors", "--check", "{fifo}"]],
    "keyify": [["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx"],
               ["keyify", "{png}", "--key", "{key}", "-o", "{tmp}/out.onnx"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--mean", "nan"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--std", "0"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{png}"],  # exists: --force replaces it
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--fit", "squash"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--pad", "256"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--fit", "crop", "--pad", "1"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--normalize", "none",
                "--mean", "1"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--normalize", "some"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--mean", "1e308", "--std", "1"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--mean", "0", "--std", "1e-320"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--labels", "{fifo}"],
               ["keyify", GONE + ".onnx", "--key", "{key}", "-o", "{tmp}/out.onnx", "--split-after", ""]],
    "quantize": [["quantize", GONE + ".onnx", "--key", "{key}", "--calibration", "{folder}", "-o", "{tmp}/out.onnx"],
                 ["quantize", GONE + ".onnx", "--key", "{key}", "--calibration", "{folder}", "-o", "{tmp}/out.onnx",
                  "--limit", "0"],
                 ["quantize", "{png}", "--key", "{key}", "--calibration", GONE, "-o", "{tmp}/out.onnx"],
                 ["quantize", GONE + ".onnx", "--key", "{key}", "--calibration", "{folder}", "-o", "{png}"]],
    "verify": [["verify", GONE + ".onnx", GONE + ".onnx", "--key", "{key}", "--images", "{folder}"],
               ["verify", GONE + ".onnx", GONE + ".onnx", "--key", "{key}", "--images", "{folder}", "--limit", "0"]],
    "inspect": [["inspect", GONE + ".onnx"], ["inspect", "{png}"], ["inspect", "{folder}"], ["inspect", "{fifo}"],
                ["inspect", "/dev/null"]],
    "run": [["run", "--config", GONE + ".toml"], ["run", "--max-frames", "-1"], ["run", "--config", "{png}"]],
    "replay": [["replay", GONE], ["replay", "{folder}", "--model", GONE + ".onnx", "--key", "{key}"]],
    "record": [["record", "{tmp}/out.mcap", "--config", GONE + ".toml"], ["record", "{tmp}/out.txt",
                                                                          "--max-frames", "x"]],
    "preview": [["preview", GONE, "-o", "{tmp}/out.png"], ["preview", "-o", "{tmp}/out.png", "--frames", "0"]],
    "validate-config": [["validate-config", GONE + ".toml"], ["validate-config", "{folder}"],
                        ["validate-config", "{fifo}"]],
    "eval": [["eval", "privacy", "--model", GONE + ".onnx", "--data", "{folder}"],
             ["eval", "privacy", "--model", GONE + ".onnx", "--data", "{folder}", "--wrong-keys", "0"], ["eval"]],
    "demo": [["demo", "--out", "{tmp}/demo", "--image", GONE + ".png"]],
    "serve": [["serve", "--model-repository", GONE], ["serve", "--model-repository", "{folder}", "--port", "0"],
              ["serve", "--model-repository", "{folder}", "--max-body-mb", "nan"],
              ["serve", "--model-repository", "{folder}", "--threads", "3000"]],
    "export": [["export", "triton", GONE + ".onnx", "--name", "m", "--repository", "{tmp}/repo"], ["export"],
               ["export", "triton", GONE + ".onnx", "--name", "m", "--repository", "{tmp}/repo", "--max-batch-size",
                "2147483648"],
               ["export", "triton", GONE + ".onnx", "--name", "m", "--repository", "{tmp}/repo", "--instances",
                "2147483648"]],
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
    os.mkfifo(tmp_path / "fifo")  # read where a file is expected, it would wait for a writer for ever
    return {"tmp": tmp_path / "work", "key": tmp_path / "k.key", "folder": tmp_path / "empty", "png": tmp_path / "p.png",
            "fifo": tmp_path / "fifo"}


@pytest.mark.parametrize("argv", [argv for cases in CASES.values() for argv in cases], ids=lambda a: " ".join(a))
def test_a_bad_argument_is_one_line_and_no_traceback(argv, places):
    places["tmp"].mkdir()
    args = [a.format(**places) for a in argv]
    done = keycam(*args, cwd=places["tmp"], timeout=120)
    assert done.returncode in (1, 2), (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith("keycam"), done.stderr
    assert not [p for p in places["tmp"].rglob("*") if p.name.startswith("out")]  # nothing written


# the console script itself, as a user runs it: a known error (exit 1) from a command that loads the model
# libraries, and a usage error (exit 2); each one line, no traceback, nothing written
CONSOLE = [["keyify", "{png}", "--key", "{key}", "-o", "{tmp}/out.onnx"], ["run", "--max-frames", "-1"]]


@pytest.mark.parametrize("argv, status", list(zip(CONSOLE, (1, 2))), ids=["known error", "usage error"])
def test_the_console_script_refuses_in_one_line_with_its_exit_status(argv, status, places):
    places["tmp"].mkdir()
    args = [a.format(**places) for a in argv]
    done = subprocess.run([KEYCAM, *args], capture_output=True, text=True, timeout=120, cwd=places["tmp"])
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"keycam {argv[0]}: error: "), done.stderr
    assert not list(places["tmp"].rglob("*"))  # nothing written


# -- hostile and careless inputs: every command's input files, broken every way a file can be ---------------------

BROKEN = ("missing", "folder", "empty", "truncated", "corrupt", "huge-header", "not-utf8-name", "fifo", "device")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """One valid file of each kind a command reads: a picture, a .npy, a plain and a keyed model, a recording,
    a configuration, a key and a golden-vectors file."""
    import cv2
    import numpy as np

    from edge.default import ASSET, default_model
    from edge.recording import Recorder
    from edge.transform import AdcTransform
    from firmware_sim.keys import MasterKey
    from firmware_sim.spec import PRESETS
    from firmware_sim.vectors import GOLDEN_PATH

    folder = tmp_path_factory.mktemp("samples")
    key = MasterKey.generate()
    key.save(folder / "k.key")
    cv2.imwrite(str(folder / "p.png"), np.random.default_rng(0).integers(0, 256, (28, 28, 3), np.uint8))
    np.save(folder / "f.npy", np.zeros((28, 28, 3), np.uint8))
    (folder / "plain.onnx").write_bytes(ASSET.read_bytes())
    keyed = default_model(folder, key)
    with Recorder(folder / "r.mcap", PRESETS["gray8"], key.fingerprint) as recorder:
        for i in range(3):
            recorder.write(AdcTransform(key, PRESETS["gray8"])(np.zeros((28, 28, 1), np.uint8)), 0, i, i)
    (folder / "c.toml").write_text(f'[model]\npath = "{keyed}"\nkey = "{folder / "k.key"}"\n')
    (folder / "g.json").write_bytes(GOLDEN_PATH.read_bytes())
    (folder / "cal").mkdir()
    cv2.imwrite(str(folder / "cal" / "p.png"), np.random.default_rng(1).integers(0, 256, (28, 28, 3), np.uint8))
    return {"png": folder / "p.png", "npy": folder / "f.npy", "onnx": folder / "plain.onnx", "keyed": keyed,
            "mcap": folder / "r.mcap", "toml": folder / "c.toml", "key": folder / "k.key", "json": folder / "g.json",
            "cal": folder / "cal"}


def _broken(kind: str, sample: Path, where: Path) -> Path:
    import os

    target = where / f"bad{sample.suffix}"
    data = sample.read_bytes()
    if kind == "missing":
        return where / f"absent{sample.suffix}"
    if kind == "fifo":  # opened as a file, it waits for a writer for ever
        os.mkfifo(target)
        return target
    if kind == "device":  # a link named like the input, to a device that never ends
        target.symlink_to("/dev/zero")
        return target
    if kind == "folder":
        target.mkdir()
    elif kind == "empty":
        target.write_bytes(b"")
    elif kind == "truncated":
        target.write_bytes(data[: max(1, len(data) // 3)])
    elif kind == "corrupt":
        noisy = bytearray(data)
        for offset in range(16, len(noisy), max(1, len(noisy) // 200)):
            noisy[offset] ^= 0x5A
        target.write_bytes(bytes(noisy))
    elif kind == "huge-header":  # a header that promises far more than the file holds
        target.write_bytes(b"\x93NUMPY\x01\x00v\x00{'descr': '|u1', 'fortran_order': False, 'shape': "
                           b"(100000, 100000, 3), }" + b" " * 40 + b"\n" + data[:64])
    elif kind == "not-utf8-name":
        target = Path(os.fsdecode(bytes(where) + b"/caf\xe9" + sample.suffix.encode()))
        target.write_bytes(data)
    if kind == "empty" and sample.suffix == ".key":
        target.chmod(0o600)
    if target.exists() and target.is_file():
        target.chmod(0o600)
    return target


# (command line with {BAD} for the input under test, the kind of file it should be); {out} is an empty folder
INPUTS = [
    (["fingerprint", "{BAD}"], "key"),
    (["spec", "{BAD}"], "toml"),
    (["scramble", "--key", "{key}", "{BAD}", "{out}/o.png"], "png"),
    (["scramble", "--key", "{key}", "{BAD}", "{out}/o.npy"], "npy"),
    (["scramble", "--key", "{BAD}", "{png}", "{out}/o.png"], "key"),
    (["unscramble", "--key", "{key}", "{BAD}", "{out}/o.png"], "png"),
    (["firmware-sim", "--key", "{key}", "{BAD}", "{out}/o.npy"], "npy"),
    (["golden-vectors", "--check", "{BAD}"], "json"),
    (["keyify", "{BAD}", "--key", "{key}", "-o", "{out}/o.onnx", "--spec", "gray8"], "onnx"),
    (["verify", "{BAD}", "{keyed}", "--key", "{key}", "--images", "{out}"], "onnx"),
    (["verify", "{onnx}", "{BAD}", "--key", "{key}", "--images", "{out}"], "keyed"),
    (["inspect", "{BAD}"], "keyed"),
    (["quantize", "{BAD}", "--key", "{key}", "--calibration", "{cal}", "-o", "{out}/o.onnx"], "keyed"),
    (["quantize", "{keyed}", "--key", "{BAD}", "--calibration", "{cal}", "-o", "{out}/o.onnx"], "key"),
    (["keyify", "{BAD}", "--key", "{key}", "-o", "{out}/o.onnx", "--spec", "gray8", "--int8", "--calibration",
      "{cal}"], "onnx"),
    (["run", "--config", "{BAD}", "--max-frames", "2"], "toml"),
    (["replay", "{BAD}", "--model", "{keyed}", "--key", "{key}", "--output", "{out}/o.jsonl"], "mcap"),
    (["replay", "{mcap}", "--model", "{BAD}", "--key", "{key}", "--output", "{out}/o.jsonl"], "keyed"),
    (["preview", "{BAD}", "-o", "{out}/o.png", "--model", "{keyed}", "--key", "{key}"], "mcap"),
    (["validate-config", "{BAD}"], "toml"),
    (["demo", "--out", "{out}/demo", "--image", "{BAD}"], "png"),
    (["export", "triton", "{BAD}", "--name", "m", "--repository", "{out}/repo"], "keyed"),
]


def _digests(folder: Path) -> dict:
    import hashlib

    return {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


CASES_BROKEN = [(argv, sample, kind) for argv, sample in INPUTS for kind in BROKEN
                if kind != "huge-header" or sample == "npy"]  # a header that lies is a .npy's


@pytest.mark.parametrize("argv, sample, kind", CASES_BROKEN,
                         ids=[" ".join(a[:2]) + f" <{s}> {k}" for a, s, k in CASES_BROKEN])
def test_a_broken_input_file_is_one_line_never_a_traceback_and_changes_nothing(argv, sample, kind, samples,
                                                                              tmp_path):
    where, out = tmp_path / "in", tmp_path / "out"
    where.mkdir()
    out.mkdir()
    bad = _broken(kind, samples[sample], where)
    before = _digests(samples["png"].parent) | _digests(where)
    args = [a.format(BAD=bad, out=out, **samples) for a in argv]
    done = keycam(*args, cwd=tmp_path, timeout=180)  # a crash here would end the whole test run, loudly
    assert "Traceback" not in done.stderr, done.stderr  # no traceback (one escaping main() fails in keycam())
    legitimate = (kind == "not-utf8-name" or (kind == "corrupt" and sample in ("key", "npy"))
                  or (kind in ("empty", "truncated") and sample == "toml")  # an empty configuration is the default
                  or (kind == "truncated" and sample == "mcap"))  # a recording cut short replays what it holds
    if legitimate and done.returncode == 0:
        # a good file with an awkward name is read, not refused; flipped bits in a format without a checksum
        # (a key is any 32 bytes, a .npy's codes any codes) cannot be told from data: either way, no crash
        assert done.returncode in (0, 1), done.stderr
        return
    assert done.returncode in (1, 2), (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    if any(line.startswith("keycam: ") and " frames at " in line for line in lines):  # a run started, then judged
        assert lines[-1].startswith(f"keycam {argv[0]}: error: ") and "Traceback" not in done.stderr, done.stderr
        assert not [p for p in out.rglob("*") if p.is_file() and p.stat().st_size]  # no frame came out of it
    else:
        assert len(lines) == 1 and done.stderr.startswith("keycam"), done.stderr
        assert not [p for p in out.rglob("*") if p.is_file()]  # no partial output
    assert _digests(samples["png"].parent) | _digests(where) == before  # every input as it was


@pytest.mark.parametrize("argv, sample, kind", [(["inspect", "{BAD}"], "keyed", "corrupt"),
                                                (["scramble", "--key", "{key}", "{BAD}", "{out}/o.npy"], "npy",
                                                 "huge-header")],
                         ids=["corrupt model", "npy header promising 28 GiB"])
def test_a_hostile_input_does_not_crash_the_console_script(argv, sample, kind, samples, tmp_path):
    """What only a process shows: native code reading a hostile file neither crashes keycam (SIGSEGV: 139) nor
    gets it killed for memory (137); one line, exit 1."""
    where, out = tmp_path / "in", tmp_path / "out"
    where.mkdir()
    out.mkdir()
    bad = _broken(kind, samples[sample], where)
    args = [a.format(BAD=bad, out=out, **samples) for a in argv]
    done = subprocess.run([KEYCAM, *args], capture_output=True, text=True, errors="replace", timeout=180,
                          cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr, (done.returncode, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith(f"keycam {argv[0]}: error: ")
    assert not list(out.iterdir())


# (command line with {OUT} for the output under test)
OUTPUTS = [
    ["scramble", "--key", "{key}", "{png}", "{OUT}"],
    ["unscramble", "--key", "{key}", "{png}", "{OUT}"],
    ["keyify", "{onnx}", "--key", "{key}", "-o", "{OUT}", "--spec", "gray8", "--mean", "72.94", "--std", "90"],
    ["replay", "{mcap}", "--model", "{keyed}", "--key", "{key}", "--output", "{OUT}"],
    ["replay", "{mcap}", "--model", "{keyed}", "--key", "{key}", "--record", "{OUT}"],
    ["record", "{OUT}", "--config", "{toml}", "--max-frames", "2"],
    ["preview", "{mcap}", "-o", "{OUT}", "--model", "{keyed}", "--key", "{key}"],
    ["keygen", "{OUT}"],
    ["quantize", "{keyed}", "--key", "{key}", "--calibration", "{cal}", "-o", "{OUT}"],
    ["golden-vectors", "--write", "{OUT}"],
]
SUFFIX = {"scramble": ".png", "unscramble": ".png", "keyify": ".onnx", "quantize": ".onnx", "replay": ".jsonl",
          "record": ".mcap",
          "preview": ".png", "keygen": ".key", "golden-vectors": ".json"}


@pytest.mark.parametrize("case", ["is-an-input", "read-only-folder", "is-a-folder", "folder-missing"])
@pytest.mark.parametrize("argv", OUTPUTS, ids=[" ".join(a[:1] + a[-3:-1]) for a in OUTPUTS])
def test_an_output_that_cannot_or_must_not_be_written_is_refused_and_nothing_is_lost(argv, case, samples, tmp_path):
    import os

    suffix = ".mcap" if "--record" in argv else SUFFIX[argv[0]]
    inputs = {name: value for name, value in samples.items()}
    if case == "is-an-input":
        if argv[0] == "golden-vectors":
            pytest.skip("--write PATH replaces a vectors file: that is what it is for")
        name = {"scramble": "png", "unscramble": "png", "keyify": "onnx", "replay": "mcap", "record": "toml",
                "preview": "mcap", "keygen": "key", "quantize": "keyed"}[argv[0]]
        target = samples[name]
    elif case == "read-only-folder":
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        target = folder / f"o{suffix}"
        if os.geteuid() == 0:  # root writes into any folder: a read-only file system stops it
            mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)],
                                     capture_output=True)
            if mounted.returncode != 0:
                pytest.skip("root writes into read-only folders, and no read-only tmpfs could be mounted")
            request_unmount = folder
    elif case == "is-a-folder":
        target = tmp_path / f"o{suffix}"
        target.mkdir()
    else:
        target = tmp_path / "nowhere" / f"o{suffix}"
    before = _digests(samples["png"].parent)
    args = [a.format(OUT=target, **inputs) for a in argv]
    try:
        done = keycam(*args, cwd=tmp_path, timeout=180)
    finally:
        if case == "read-only-folder" and os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(request_unmount)], capture_output=True)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines()[-1].startswith("keycam") and "error" in done.stderr
    assert _digests(samples["png"].parent) == before  # the inputs, byte for byte


SIDE = ("replay", "preview", "quantize", "record")  # the commands that read the keyed sample


@pytest.mark.parametrize("case", ["a-sidecar", "the-default-key", "a-fifo", "a-dangling-link"])
@pytest.mark.parametrize("argv", OUTPUTS, ids=[" ".join(a[:1] + a[-3:-1]) for a in OUTPUTS])
def test_an_output_that_is_an_input_by_another_name_or_a_special_file_is_refused(argv, case, samples, tmp_path,
                                                                                   monkeypatch):
    """Sidecars (a keyed model's epoch recipes), the embedded default's key, a FIFO (opening it would wait for
    ever) and a link (keycam never writes through one) are refused before anything is written."""
    import hashlib

    data = tmp_path / "data"
    data.mkdir()
    (data / "default.key").write_bytes(samples["key"].read_bytes())
    (data / "default.key").chmod(0o600)
    monkeypatch.setenv("KEYCAM_DATA", str(data))
    if case == "a-sidecar":
        if argv[0] not in SIDE:
            pytest.skip("no keyed model among this command's inputs")
        target = samples["keyed"].with_name(samples["keyed"].name.replace(".onnx", ".epochs.npz"))
    elif case == "the-default-key":
        if argv[0] == "golden-vectors":
            pytest.skip("--write PATH replaces a vectors file: that is what it is for")
        target = data / "default.key"
    elif case == "a-fifo":
        target = tmp_path / "fifo"
        os.mkfifo(target)
    else:
        target = tmp_path / "link"
        target.symlink_to(tmp_path / "elsewhere")
    args = [a.format(OUT=target, **samples) for a in argv]
    if argv[0] == "record" and case == "a-sidecar":
        (tmp_path / "c.toml").write_text(f'[model]\npath = "{samples["keyed"]}"\nkey = "{samples["key"]}"\n'
                                         f'[source]\nkind = "folder"\npath = "{samples["cal"]}"\n')
        args = ["record", str(target), "--config", str(tmp_path / "c.toml"), "--max-frames", "2"]
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in [*samples["png"].parent.rglob("*"),
                                                                       data / "default.key"] if p.is_file()}
    done = keycam(*args, cwd=tmp_path, timeout=120)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, (done.returncode, done.stderr)
    assert done.stderr.strip().splitlines()[-1].startswith("keycam") and "error" in done.stderr, done.stderr
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in before}
    assert after == before  # every input, byte for byte
    if case == "a-dangling-link":
        assert not (tmp_path / "elsewhere").exists()


@pytest.mark.parametrize("argv", [["replay", "nope.mcap"], ["run", "--config", "c.toml"], ["validate-config", "c.toml"],
                                  ["preview", "nope.mcap", "-o", "p.png"]])
def test_a_command_refused_at_start_makes_no_key_and_compiles_nothing(argv, tmp_path, monkeypatch):
    """Refusals come before the embedded default's key is made or its model compiled: its folder stays absent."""
    monkeypatch.setenv("KEYCAM_DATA", str(tmp_path / "data"))
    (tmp_path / "c.toml").write_text('[source]\nkind = "folder"\npath = "gone"\n')
    done = keycam(*argv, cwd=tmp_path, timeout=120)
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "data").exists() and not (tmp_path / "p.png").exists()
