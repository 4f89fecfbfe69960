"""The keycam command line, in-process (tests/inprocess.py: what a process would print and return) and, where
only a process shows it, as a user runs it (the installed console script)."""

from __future__ import annotations

import shutil
import stat
import subprocess
import sys

import cv2
import numpy as np
from scipy.stats import chisquare
import pytest

from edge.cli import main
from edge.lab.demo import shipped_photo
from firmware_sim.keys import MasterKey
from tests.inprocess import keycam as run

KEYCAM = shutil.which("keycam") or str(__import__("pathlib").Path(sys.executable).with_name("keycam"))


def process(*args: str, cwd=None) -> subprocess.CompletedProcess:
    """The installed console script, for what only a process shows."""
    return subprocess.run([KEYCAM, *args], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.fixture
def photo(tmp_path):
    """A 60 x 90 crop of a package-shipped photo, written as a PNG."""
    frame = cv2.imread(str(shipped_photo()))[100:160, 150:240]
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), frame)
    return path


def test_keygen_writes_0600_prints_fingerprint_and_refuses_overwrite(tmp_path):
    path = tmp_path / "k.key"
    done = run("keygen", str(path))
    assert done.returncode == 0, done.stderr
    key = MasterKey.load(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key.fingerprint in done.stdout and key._secret.hex() not in done.stdout
    again = run("keygen", str(path))
    assert again.returncode == 1 and "--force" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    assert MasterKey.load(path) == key
    assert run("keygen", "--force", str(path)).returncode == 0
    assert MasterKey.load(path) != key


def test_scramble_output_is_byte_identical_to_firmware_sim(tmp_path, key_file, photo, key):
    for epoch in ("0", "7"):
        scrambled, simulated = tmp_path / f"s{epoch}.png", tmp_path / f"f{epoch}.png"
        a = run("scramble", "--key", str(key_file), "--epoch", epoch, str(photo), str(scrambled))
        b = run("firmware-sim", "--key", str(key_file), "--epoch", epoch, str(photo), str(simulated))
        assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
        assert scrambled.read_bytes() == simulated.read_bytes()
        assert key.fingerprint in a.stdout
        restored = tmp_path / f"u{epoch}.png"
        c = run("unscramble", "--key", str(key_file), "--epoch", epoch, str(scrambled), str(restored))
        assert c.returncode == 0 and "PLAIN" in c.stderr
        assert np.array_equal(cv2.imread(str(restored)), cv2.imread(str(photo)))


def test_sixteen_bit_measurements_go_through_npy(tmp_path, key_file):
    frame = (np.arange(9 * 11 * 3, dtype=np.uint16) * 37 % 4096).reshape(9, 11, 3)
    source = tmp_path / "in.npy"
    np.save(source, frame)
    spec = tmp_path / "spec.toml"
    spec.write_text("input_bits = 12\noutput_bits = 10\nblack_level = 64\ngain_q16 = 16384\n")
    outs = []
    for command in ("scramble", "firmware-sim"):
        out = tmp_path / f"{command}.npy"
        assert main([command, "--key", str(key_file), "--spec", str(spec), str(source), str(out)]) == 0
        outs.append(np.load(out))
    assert outs[0].dtype == np.uint16 and outs[0].tobytes() == outs[1].tobytes()
    assert outs[0].max() <= 1023


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["fingerprint", "{tmp}/absent.key"], "does not exist; create one with `keycam keygen"),
        (["scramble", "--key", "{key}", "{photo}", "{tmp}/out.jpg"], "suffix '.jpg'"),
        (["scramble", "--key", "{key}", "--spec", "rgb12", "{photo}", "{tmp}/out.npy"], "expects uint16"),
        (["scramble", "--key", "{key}", "--spec", "nope", "{photo}", "{tmp}/out.png"], "neither a preset"),
        (["scramble", "--key", "{key}", "{tmp}/absent.png", "{tmp}/out.png"], "does not exist"),
        (["unscramble", "--key", "{key}", "--spec", "gray8", "{photo}", "{tmp}/out.png"], "expected (H, W, 1)"),
    ],
)
def test_known_errors_are_one_line_and_exit_1(tmp_path, key_file, photo, key, args, fragment):
    args = [a.format(tmp=tmp_path, key=key_file, photo=photo) for a in args]
    done = run(*args)
    assert done.returncode == 1
    assert fragment in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert key._secret.hex() not in done.stderr + done.stdout
    assert not (tmp_path / "out.png").exists() and not (tmp_path / "out.npy").exists()


def test_open_key_file_is_refused_by_every_command(tmp_path, key_file, photo):
    key_file.chmod(0o644)
    done = run("scramble", "--key", str(key_file), str(photo), str(tmp_path / "o.png"))
    assert done.returncode == 1 and f"chmod 600 {key_file}" in done.stderr


def test_usage_errors_exit_2():
    assert run("scramble").returncode == 2
    assert run("scramble", "--key", "k", "--epoch", "minus", "a.png", "b.png").returncode == 2
    done = process()  # the console script, its arguments from the real command line
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr


def test_golden_vectors_command_checks_the_bundled_file():
    done = process("golden-vectors", "--check")  # and exit status 0 through the console script
    assert done.returncode == 0 and "match" in done.stdout


def test_spec_command_prints_toml(tmp_path):
    done = run("spec", "rgb16to12")
    assert done.returncode == 0 and "gain_q16 = 4096" in done.stdout
    (tmp_path / "s.toml").write_text(done.stdout)
    assert main(["spec", str(tmp_path / "s.toml")]) == 0


def test_demo_is_the_main_job(tmp_path):
    done = run("demo", "--out", str(tmp_path / "demo"))
    assert done.returncode == 0, done.stderr
    assert "byte for byte: True" in done.stdout and "restores the picture exactly: True" in done.stdout
    key = MasterKey.load(tmp_path / "demo" / "demo.key")
    assert key.fingerprint in done.stdout and key._secret.hex() not in done.stdout
    panel = cv2.imread(str(tmp_path / "demo" / "keycam-demo.png"))
    plain = cv2.imread(str(shipped_photo()))
    assert "tag included: True" in done.stdout
    assert panel.shape == (plain.shape[0] + 28, 5 * plain.shape[1], 3)
    tiles = [panel[28:, i * plain.shape[1] : (i + 1) * plain.shape[1]] for i in range(5)]
    assert np.array_equal(tiles[0], plain) and np.array_equal(tiles[3], plain)
    assert not any(np.array_equal(tiles[i], plain) for i in (1, 2, 4))
    # the paper's measurement is the same multiset of pixels, only reordered; the sealed one is not: uniform bytes
    assert np.array_equal(np.sort(tiles[1].reshape(-1, 3), axis=0), np.sort(plain.reshape(-1, 3), axis=0))
    assert chisquare(np.bincount(tiles[2].reshape(-1), minlength=256)).pvalue > 1e-4
    assert chisquare(np.bincount(tiles[1].reshape(-1), minlength=256)).pvalue < 1e-100


def test_plain_pictures_written_on_request_are_private(tmp_path, key_file, photo):
    scrambled, plain = tmp_path / "s.png", tmp_path / "p.png"
    assert run("scramble", "--key", str(key_file), str(photo), str(scrambled)).returncode == 0
    done = run("unscramble", "--key", str(key_file), str(scrambled), str(plain))
    assert done.returncode == 0 and "PLAIN" in done.stderr
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600 and stat.S_IMODE(scrambled.stat().st_mode) != 0o600


def test_a_fifo_or_a_symlink_as_key_is_refused_at_once(tmp_path, key_file, photo):
    import os

    fifo = tmp_path / "fifo.key"
    os.mkfifo(fifo)
    done = run("fingerprint", str(fifo), timeout=60)  # a hang (opening a FIFO waits for a writer) fails the test
    assert done.returncode == 1 and "not a regular file" in done.stderr  # and it did not hang
    (tmp_path / "dangling.key").symlink_to(tmp_path / "gone.key")
    done = run("fingerprint", str(tmp_path / "dangling.key"))
    assert done.returncode == 1 and "symbolic link" in done.stderr and "does not exist" in done.stderr
    assert "too many levels" not in done.stderr


def test_results_files_are_appended_or_rotated_never_truncated_by_a_restart(tmp_path):
    config = tmp_path / "keycam.toml"
    results = tmp_path / "results.jsonl"
    config.write_text(f'[results]\npath = "{results}"\n')
    for _ in range(2):
        assert run("run", "--config", str(config), "--max-frames", "3", cwd=tmp_path).returncode == 0
    assert len(results.read_text().splitlines()) == 6  # the first run's results survive the second
    config.write_text(f'[results]\npath = "{results}"\nexisting = "rotate"\n')
    assert run("run", "--config", str(config), "--max-frames", "2", cwd=tmp_path).returncode == 0
    assert len(results.read_text().splitlines()) == 2
    assert len((tmp_path / "results.jsonl.1").read_text().splitlines()) == 6


def test_validate_config_refuses_what_run_refuses(tmp_path, key_file):
    from edge.default import default_model
    from firmware_sim.keys import MasterKey

    model = default_model(tmp_path, MasterKey.load(key_file))
    MasterKey.generate().save(tmp_path / "other.key")
    cases = {
        '[record]\nplain_debug = true\n': "record.plain_debug needs record.path",
        '[forward]\nurl = "http://h:1"\nmodel = "m"\nretry_min_s = 5\nretry_max_s = 1\n': "retry_min_s (5.0) is larger",
        '[loop]\nqueue = "4"\n': "loop.queue = '4'",
        f'[model]\npath = "{model}"\nkey = "{tmp_path / "other.key"}"\n': "is keyed for",
        f'[model]\npath = "{model}"\nkey = "{tmp_path / "absent.key"}"\n': "does not exist",
    }
    for text, fragment in cases.items():
        (tmp_path / "c.toml").write_text(text)
        validated = run("validate-config", str(tmp_path / "c.toml"))
        ran = run("run", "--config", str(tmp_path / "c.toml"), "--max-frames", "1", cwd=tmp_path)
        assert validated.returncode == ran.returncode == 1, (text, validated.stderr, ran.stderr)
        assert fragment in validated.stderr and fragment in ran.stderr, (text, validated.stderr, ran.stderr)


def test_a_busy_metrics_port_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        (tmp_path / "c.toml").write_text(f"[metrics]\nport = {port}\n")
        done = run("run", "--config", str(tmp_path / "c.toml"), "--max-frames", "1", cwd=tmp_path)
    assert done.returncode == 1 and f"metrics port {port}" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_record_replaces_an_existing_recording_only_with_force(tmp_path):
    out = tmp_path / "r.mcap"
    assert run("record", str(out), "--max-frames", "2", cwd=tmp_path).returncode == 0
    refused = run("record", str(out), "--max-frames", "2", cwd=tmp_path)
    assert refused.returncode == 1 and "pass --force to replace it" in refused.stderr
    assert run("record", str(out), "--max-frames", "3", "--force", cwd=tmp_path).returncode == 0


def test_memory_errors_and_unnamed_os_errors_become_one_line(capsys, monkeypatch):
    from edge.cli import build_parser

    args = build_parser().parse_args(["fingerprint", "x.key"])

    class Parser:  # the real arguments, with a handler that fails as a huge model or a full disk would
        def parse_args(self, argv):
            return args

    monkeypatch.setattr("edge.cli.build_parser", Parser)

    def exhausted(_):
        raise MemoryError()

    def disk_full(_):
        raise OSError(28, "No space left on device", "/mnt/full/out.png")

    args.handler = exhausted
    assert main([]) == 1
    assert capsys.readouterr().err.strip() == ("keycam fingerprint: error: out of memory: the model or the input is "
                                               "too large for this machine")
    args.handler = disk_full
    assert main([]) == 1
    assert "'/mnt/full/out.png': No space left on device" in capsys.readouterr().err


def test_opencv_prints_nothing_of_its_own_and_a_bad_demo_picture_leaves_no_key(tmp_path):
    (tmp_path / "broken.avi").write_bytes(b"RIFF" + bytes(200))
    # a process: OpenCV's own logging is set up when keycam imports it first, which this process may not show
    done = process("replay", str(tmp_path / "broken.avi"), "--output", str(tmp_path / "o.jsonl"), cwd=tmp_path)
    assert done.returncode == 1 and "[ERROR" not in done.stderr and "[ WARN" not in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    done = run("demo", "--out", str(tmp_path / "demo"), "--image", str(tmp_path / "broken.avi"))
    assert done.returncode == 1 and not (tmp_path / "demo").exists()


def test_a_reader_that_leaves_early_is_not_blamed_on_the_path_or_the_disk(tmp_path):
    """`keycam inspect M | head`: the pipe's reader is gone before keycam writes (its end closed first, so the
    write fails every time); keycam exits 141 (128 + SIGPIPE, as a shell reports it) and says nothing of paths,
    permissions or free space."""
    import os

    from edge.default import default_model

    key = MasterKey.generate()
    model = default_model(tmp_path, key)
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run([KEYCAM, "inspect", str(model)], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=120)
    finally:
        os.close(write_end)
    assert done.returncode == 141, done.stderr
    assert "free space" not in done.stderr and "Traceback" not in done.stderr and "Exception" not in done.stderr


@pytest.mark.parametrize("what", ["folder", "fifo"])
def test_inspect_names_a_folder_or_a_fifo_as_what_it_is(tmp_path, what):
    import os

    target = tmp_path / "m.onnx"
    target.mkdir() if what == "folder" else os.mkfifo(target)
    done = run("inspect", str(target), timeout=60)
    said = {"folder": "is a folder", "fifo": "is a FIFO"}[what]
    assert done.returncode == 1 and said in done.stderr and "does not exist" not in done.stderr, done.stderr


def test_the_demo_names_its_picture_in_plain_words_when_it_would_write_over_an_input(tmp_path, photo):
    out = tmp_path / "demo"
    out.mkdir()
    picture = out / "keycam-demo.png"
    picture.write_bytes(photo.read_bytes())
    done = run("demo", "--out", str(out), "--image", str(picture), timeout=120)
    assert done.returncode == 1 and "choose another the" not in done.stderr, done.stderr
    assert "give the demo's picture another path" in done.stderr, done.stderr
