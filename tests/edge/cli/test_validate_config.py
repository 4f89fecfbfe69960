"""``keycam validate-config`` makes the checks ``keycam run`` makes at start, with the same functions: every file
that run refuses for a reason inside the file is refused by validate-config in the same words, and a file that
validate-config passes starts a run. A table of the cases found by hand, and a property test over generated
configurations (hypothesis). Both run `keycam` in this process (tests/inprocess.py)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.inprocess import keycam


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    """A key, a keyed classifier (full), a folder of pictures, a FIFO, a token file of mode 0644, a task model's
    stand-in (the full model, named as a split's task model would be)."""
    from edge.default import default_model
    from firmware_sim.keys import MasterKey

    folder = tmp_path_factory.mktemp("validate")
    key = MasterKey.generate()
    key.save(folder / "k.key")
    (folder / "open.key").write_bytes((folder / "k.key").read_bytes())
    (folder / "open.key").chmod(0o644)
    model = default_model(folder, key)
    (folder / "imgs").mkdir()
    rng = np.random.default_rng(3)
    for i in range(2):
        cv2.imwrite(str(folder / "imgs" / f"{i}.png"), rng.integers(0, 256, (28, 28, 3), np.uint8))
    os.mkfifo(folder / "fifo")
    (folder / "token").write_text("secret\n")
    (folder / "token").chmod(0o644)
    return {"dir": folder, "key": folder / "k.key", "open_key": folder / "open.key", "model": model,
            "epochs": model.with_name(model.name.replace(".onnx", ".epochs.npz")), "imgs": folder / "imgs",
            "fifo": folder / "fifo", "token": folder / "token"}


def _toml(sections: dict) -> str:
    lines = []
    for name, fields in sections.items():
        lines.append(f"[{name}]")
        for field, value in fields.items():
            shown = str(value).lower() if isinstance(value, bool) else value
            lines.append(f"{field} = {shown if isinstance(value, (int, float)) else _quoted(value)}")
    return "\n".join(lines) + "\n"


def _quoted(value) -> str:
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _both(text: str, where: Path):
    """validate-config's and run's answers to one configuration file."""
    config = where / "c.toml"
    config.write_text(text)
    checked = keycam("validate-config", str(config), cwd=where, timeout=120)
    ran = keycam("run", "--config", str(config), "--max-frames", "1", cwd=where, timeout=120)
    return checked, ran


def _error(done, command: str) -> str | None:
    """The error line (without the command's name), or None when the command succeeded."""
    if done.returncode == 0:
        return None
    assert done.returncode == 1 and "Traceback" not in done.stderr, (command, done.returncode, done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(f"keycam {command}: error: "), (command, done.stderr)
    return last.removeprefix(f"keycam {command}: error: ")


def _agree(text: str, where: Path) -> str | None:
    checked, ran = _both(text, where)
    refused = _error(checked, "validate-config")
    failed = _error(ran, "run")
    if failed is not None:  # a run that failed must have failed at start, before a frame: nothing to count
        assert not any(" frames at " in line for line in ran.stderr.splitlines()), ran.stderr
    assert refused == failed, (text, checked.stderr, ran.stderr)
    return refused


def _base(place, **sections) -> dict:
    config = {"source": {"kind": "folder", "path": place["imgs"]},
              "model": {"path": place["model"], "key": place["key"]}}
    for name, fields in sections.items():
        config[name] = {**config.get(name, {}), **fields}
    return config


FORWARD = {"model": "m", "connect_s": 0}
# (what the issue found, the configuration's changes, words the refusal holds)
CASES = [
    ("results path is the key", {"results": {"path": "{key}"}}, "is the key"),
    ("results path is the epoch recipes", {"results": {"path": "{epochs}"}}, "epoch recipes"),
    ("results path is a FIFO", {"results": {"path": "{fifo}"}}, "is a FIFO"),
    ("results and record on one file", {"results": {"path": "{dir}/o/same.mcap"},
                                        "record": {"path": "{dir}/o/same.mcap"}}, "is also"),
    ("record path not .mcap", {"record": {"path": "{dir}/o/r.txt"}}, "should be a folder"),
    ("an ftp:// URL", {"model": {"path": ""}, "forward": {**FORWARD, "url": "ftp://server/x"}}, "http://"),
    ("an URL that does not parse", {"model": {"path": ""}, "forward": {**FORWARD, "url": "http://[::1"}},
     "is not a URL"),
    ("a password in a bad URL is never shown", {"model": {"path": ""},
                                                "forward": {**FORWARD, "url": "http://me:hunter2@h:99999"}}, "***"),
    ("spool_max_mb = inf", {"model": {"path": ""}, "forward": {**FORWARD, "url": "http://127.0.0.1:9",
                                                               "spool_max_mb": float("inf")}}, "spool_max_mb"),
    ("a 0644 token file", {"model": {"path": ""}, "forward": {**FORWARD, "url": "http://127.0.0.1:9",
                                                              "token_file": "{token}"}}, "chmod 600"),
    ("a spool that is a file", {"model": {"path": ""}, "forward": {**FORWARD, "url": "http://127.0.0.1:9",
                                                                  "spool": "{key}"}}, "is a file, not a folder"),
    ("a missing task model", {"model": {"task": "{dir}/gone.onnx"}}, "does not exist"),
    ("a wrong-role task model", {"model": {"task": "{model}"}}, "task model of a split"),
    ("a missing source", {"source": {"path": "{dir}/gone"}}, "does not exist"),
    ("a pattern outside the folder", {"source": {"pattern": "/etc/*"}}, "reaches outside"),
    ("a key readable by others", {"model": {"key": "{open_key}"}}, "open.key"),
    ("a key epoch of 1e-300 s", {"readout": {"rotate_seconds": 1e-300}}, "nanosecond"),
    ("a detector's settings for a classifier", {"task": {"kind": "detect"}}, ""),
]


def _filled(changes: dict, place) -> dict:
    return {name: {f: v.format(**place) if isinstance(v, str) else v for f, v in fields.items()}
            for name, fields in changes.items()}


@pytest.mark.parametrize("case, changes, words", CASES, ids=[c[0] for c in CASES])
def test_validate_config_refuses_what_run_refuses_in_the_same_words(case, changes, words, place, tmp_path):
    (tmp_path / "o").mkdir()
    config = _base(place, **_filled(changes, {**place, "dir": tmp_path}))
    refused = _agree(_toml(config), tmp_path)
    assert refused is not None and words in refused, (case, refused)
    assert "hunter2" not in refused


def test_a_file_that_validates_runs(place, tmp_path):
    (tmp_path / "o").mkdir()
    config = _base(place, results={"path": tmp_path / "o" / "r.jsonl"}, record={"path": tmp_path / "o" / "r.mcap"})
    assert _agree(_toml(config), tmp_path) is None
    assert (tmp_path / "o" / "r.jsonl").read_text() and (tmp_path / "o" / "r.mcap").stat().st_size


# -- the property: over generated configurations, validate-config and run's start-up agree ------------------------

RESULTS = ["{out}/r.jsonl", "{key}", "{epochs}", "{model}", "{fifo}", "{out}", "{out}/gone/r.jsonl", "{out}/r.mcap"]
RECORD = ["{out}/r.mcap", "", "{out}/r.txt", "{out}/r.jsonl", "{out}/segments", "{key}"]
SOURCES = [("{imgs}", "*"), ("{imgs}", "*.png"), ("{dir}/gone", "*"), ("{imgs}", "/etc/*"), ("{imgs}", "../*")]
MODELS = ["{model}", "{dir}/gone.onnx", "{imgs}/0.png"]
KEYS = ["{key}", "{open_key}", "{dir}/gone.key"]
TASKS = ["", "{model}", "{dir}/gone.onnx"]
READOUTS = [{}, {"epoch": 0}, {"epoch": 7}, {"rotate_frames": 3}, {"rotate_seconds": 1e-300},
            {"rotate_seconds": 2.5}, {"rotate_frames": 2, "rotate_seconds": 1.0}]
TASK_KINDS = ["auto", "classify", "detect", "tensors", "segment"]
FORWARDS = [{}, {"url": "ftp://x", "model": "m"}, {"url": "http://[::1", "model": "m"},
            {"url": "http://127.0.0.1:9", "model": "m", "spool_max_mb": float("inf")},
            {"url": "http://127.0.0.1:9", "model": "m", "token_file": "{token}"}]


CHOICES = {"source": SOURCES, "model": MODELS, "key": KEYS, "task_model": TASKS, "readout": READOUTS,
           "task": TASK_KINDS, "results": RESULTS, "record": RECORD, "forward": FORWARDS[1:]}


@st.composite
def configurations(draw):
    """A configuration that runs, with none, one, two or three of its settings changed to another choice (the
    first of each list is the one that runs)."""
    changed = draw(st.lists(st.sampled_from(sorted(CHOICES)), max_size=3, unique=True))
    pick = {name: draw(st.sampled_from(CHOICES[name])) if name in changed else CHOICES[name][0] for name in CHOICES}
    source, pattern = pick["source"]
    config = {"source": {"kind": "folder", "path": source, "pattern": pattern},
              "model": {"path": pick["model"], "key": pick["key"], "task": pick["task_model"]},
              "readout": pick["readout"], "task": {"kind": pick["task"]},
              "results": {"path": pick["results"]}, "record": {"path": pick["record"]}}
    if "forward" in changed:
        config["forward"] = pick["forward"]
        config["model"]["path"] = draw(st.sampled_from(["", pick["model"]]))
    return config


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                                   HealthCheck.too_slow])
@given(config=configurations())
def test_validate_config_and_runs_start_agree_on_generated_configurations(config, place):
    with tempfile.TemporaryDirectory() as where:
        where = Path(where)
        out = where / "out"
        out.mkdir()
        names = {**place, "dir": where, "out": out}
        filled = _filled(config, names)
        _agree(_toml(filled), where)


@pytest.mark.parametrize("force", [False, True])
def test_results_and_recording_on_one_file_are_refused_and_the_file_is_kept(place, tmp_path, force):
    """`[results] path` and the recording on one file: refused before anything is opened, with or without
    --force, and the file that was there is kept byte for byte (no empty file is left either)."""
    same = tmp_path / "same.mcap"
    config = tmp_path / "c.toml"
    config.write_text(_toml(_base(place, results={"path": same})))
    done = keycam("record", str(same), "--config", str(config), *(["--force"] if force else []), cwd=tmp_path,
                  timeout=120)
    assert done.returncode == 1 and "is also" in done.stderr and not same.exists(), done.stderr
    same.write_text('{"kept": true}\n')
    done = keycam("record", str(same), "--config", str(config), *(["--force"] if force else []), cwd=tmp_path,
                  timeout=120)
    assert done.returncode == 1 and same.read_text() == '{"kept": true}\n', done.stderr


@pytest.mark.parametrize("extra, words", [
    ('[task.anchors]\nstrides = [8, 0]\n', "strides"),
    ('[task.anchors]\naspect_ratios = [1.0, nan]\n', "aspect_ratios"),
    ('[task.anchors]\naspect_ratios = [-1.0]\n', "aspect_ratios"),
    ('[mqtt]\nhost = "127.0.0.1"\ntopic_prefix = "home/#"\n', "topic_prefix"),
    ('[mqtt]\nhost = "127.0.0.1"\ntopic_prefix = "home/+/cams"\n', "topic_prefix"),
], ids=["stride 0", "aspect ratio nan", "aspect ratio negative", "topic prefix #", "topic prefix +"])
def test_anchors_and_mqtt_wildcards_are_refused_alike(extra, words, place, tmp_path):
    """Issue 26, items 20 and 21: anchor strides of 0 and NaN aspect ratios, and MQTT topic prefixes holding a
    wildcard, refused by both commands in the same line, naming the setting."""
    refused = _agree(_toml(_base(place)) + extra, tmp_path)
    assert refused is not None and words in refused, refused
