"""The plain model's metadata in the keyed model, and its task and class names in the manifest (ultralytics writes
``task`` and ``names``; ``--labels FILE`` overrides them)."""

from __future__ import annotations

import onnx
import pytest

from export.errors import ModelError, UnsupportedModel
from export.keyify import KeyifyOptions, keyify
from tests.export.helpers import op_model, weights

ULTRALYTICS = {"description": "Ultralytics YOLOv8n model", "stride": "32", "task": "detect", "batch": "1",
               "imgsz": "[8, 6]", "names": "{0: 'person', 1: 'bicycle', 2: 'car'}"}


def _model(metadata: dict[str, str] | None = None) -> onnx.ModelProto:
    body = "  a = Conv <pads=[1,1,1,1]> (x, w0)\n  p = GlobalAveragePool(a)\n  y = Flatten(p)\n"
    model = op_model(body, ["N", 3, 8, 6], {"w0": weights(3, 3, 3, 3)})
    if metadata:
        onnx.helper.set_model_props(model, metadata)
    return model


def _props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}


@pytest.mark.parametrize("policy", ["fresh", "boundary"])
def test_ultralytics_metadata_gives_the_task_and_labels_and_is_kept(key, policy):
    keyed = keyify(_model(ULTRALYTICS), key, KeyifyOptions(policy=policy))
    assert keyed.manifest.task == "detect"
    assert keyed.manifest.labels == ["person", "bicycle", "car"]
    props = _props(keyed.model)
    assert {k: props[k] for k in ULTRALYTICS} == ULTRALYTICS  # names, stride, imgsz, task, ... as the plain model's
    assert list(props)[-2:] == ["keycam.manifest", "keycam.fingerprint"]
    assert '"task": "detect"' in props["keycam.manifest"]


def test_a_split_keeps_the_metadata_in_both_models(key):
    keyed = keyify(_model(ULTRALYTICS), key, KeyifyOptions(policy="fresh", split_after="a"))
    for model, manifest in ((keyed.feature, keyed.feature_manifest), (keyed.task, keyed.task_manifest)):
        assert _props(model)["names"] == ULTRALYTICS["names"]
        assert manifest.task == "detect" and manifest.labels == ["person", "bicycle", "car"]


@pytest.mark.parametrize("names, labels", [
    ("{0: 'a', 2: 'c'}", ["a", "1", "c"]),  # a missing index gets its number
    ("['cat', 'dog']", ["cat", "dog"]),  # a list
    ("__import__('os').system('echo no')", []),  # never evaluated: not names
    ("{'a': 0}", []),
    ("", []),
])
def test_names_are_read_as_literals_only(key, names, labels):
    keyed = keyify(_model({"names": names}), key, KeyifyOptions(policy="boundary"))
    assert keyed.manifest.labels == labels


def test_a_task_without_a_decoder_family_is_left_unknown(key):
    keyed = keyify(_model({"task": "depth", "names": "{0: 'person'}"}), key, KeyifyOptions(policy="boundary"))
    assert keyed.manifest.task == "" and keyed.manifest.labels == ["person"]
    assert '"task"' not in keyed.manifest.to_json()


def test_no_metadata_writes_the_manifest_as_before(key):
    keyed = keyify(_model(), key, KeyifyOptions(policy="boundary"))
    text = keyed.manifest.to_json()
    assert '"task"' not in text and '"labels"' not in text and '"batch"' not in text
    assert list(_props(keyed.model)) == ["keycam.manifest", "keycam.fingerprint"]


def test_labels_given_override_the_metadata(key, tmp_path):
    names = ("face", "hand", "foot")  # one per class of the model's 3
    keyed = keyify(_model(ULTRALYTICS), key, KeyifyOptions(policy="boundary", labels=names, task="classify"))
    assert keyed.manifest.labels == list(names) and keyed.manifest.task == "classify"
    with pytest.raises(UnsupportedModel, match="1 class names for output 'y' of 3 classes"):
        keyify(_model(ULTRALYTICS), key, KeyifyOptions(policy="boundary", labels=("face",), task="classify"))
    path = tmp_path / "labels.txt"
    path.write_text("cat\ndog \n\n")  # trailing blank lines end the file; names are stripped
    keyed = keyify(_model(ULTRALYTICS), key, KeyifyOptions(policy="boundary", labels=path))
    assert keyed.manifest.labels == ["cat", "dog"] and keyed.manifest.task == "detect"


@pytest.mark.parametrize("text, message", [
    (None, r"labels file '.*missing.txt' does not exist"),
    ("", r"labels file '.*' has no class names; write one name per line"),
    ("cat\n\ndog\n", r"labels file '.*' line 2 is empty; every class needs a name"),
    (b"\xff\xfe", r"labels file '.*' cannot be read as UTF-8 text"),
])
def test_a_bad_labels_file_is_one_line(key, tmp_path, text, message):
    path = tmp_path / "missing.txt" if text is None else tmp_path / "labels.txt"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ModelError, match=message) as caught:
        keyify(_model(), key, KeyifyOptions(policy="boundary", labels=path))
    assert "\n" not in str(caught.value)


def test_a_task_not_known_is_refused(key):
    with pytest.raises(UnsupportedModel, match=r"task 'track'; use one of classify, detect, segment"):
        keyify(_model(), key, KeyifyOptions(policy="boundary", task="track"))

