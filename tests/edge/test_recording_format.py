"""The recording format against the standard tools: Foxglove's published schemas validate every Foxglove channel
(its JSON schemas, and the protobuf descriptors of its own package), keycam's JSON channels validate against the
schemas the file carries, the answer is drawn where it lands on the measurement, and recordings of the first format
(keycam.frame/1, KCF1 and KCF2) still replay."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from foxglove_schemas_protobuf.ImageAnnotations_pb2 import ImageAnnotations
from foxglove_schemas_protobuf.RawImage_pb2 import RawImage

from edge.frame import Frame, Result
from edge.recording import (ANSWERS_TOPIC, DETECTIONS_TOPIC, EVENTS_TOPIC, FRAME_TOPIC, MEASUREMENT_TOPIC, Recorder,
                            RecordingInfo, read_recording)
from edge.recording.schemas import descriptor_set
from edge.transform import AdcTransform
from firmware_sim.spec import DEFAULT_SPEC, PRESETS
from tests.edge.recording_helpers import (ENCODINGS, decoded, foxglove_json, foxglove_schema, measured, plain_frames,
                                          write_first_format)
from tests.inprocess import keycam

FOXGLOVE = {"foxglove.RawImage": RawImage, "foxglove.ImageAnnotations": ImageAnnotations}


def _answer(i: int) -> dict:
    """A detector's answer with everything that is drawn: a box, keypoints, a rotated box, a mask, a track."""
    return {"detections": [
        {"box": [4.0, 6.0, 40.0, 30.0], "score": 0.9, "label": 0, "class": "face", "track": f"1.0-{i}",
         "keypoints": [[10.0, 12.0], [20.0, 12.0, 0.2]]},
        {"box": [30.0, 10.0, 60.0, 40.0], "score": 0.6, "label": 3, "class": "car",
         "corners": [[30.0, 20.0], [45.0, 10.0], [60.0, 30.0], [45.0, 40.0]],
         "mask": {"pixels": 300, "polygons": [[[31.0, 20.0], [45.0, 11.0], [59.0, 30.0]]]}},
    ], "counts": {"face": 1, "car": 1}}


def _validate(path) -> dict[str, int]:
    """Every message of ``path`` against its schema; the count of each topic's messages."""
    counts: dict[str, int] = {}
    for schema, channel, message, value in decoded(path):
        counts[channel.topic] = counts.get(channel.topic, 0) + 1
        if schema.encoding == "protobuf":  # Foxglove's: its package's descriptors, its published JSON schema
            assert schema.data == descriptor_set(FOXGLOVE[schema.name])
            jsonschema.validate(foxglove_json(value), foxglove_schema(schema.name.split(".")[1]))
        else:  # keycam's own: the JSON Schema the file carries
            assert schema.encoding == "jsonschema" and channel.message_encoding == "json"
            jsonschema.validate(value, json.loads(schema.data))
        if schema.name == "foxglove.RawImage":  # what Foxglove's documentation asks of each encoding
            assert value.encoding in ENCODINGS and value.frame_id == "keycam"
            assert value.step >= value.width * ENCODINGS[value.encoding]
            assert len(value.data) == value.step * value.height
            assert value.timestamp.seconds * 10**9 + value.timestamp.nanos == message.log_time
    return counts


def test_every_channel_validates_against_its_schema_foxgloves_included(tmp_path, key):
    results = measured(key, 6, outputs=_answer)
    results[2].events = [{"type": "new", "sequence": 2, "before": {"id": "a"}, "after": {"id": "a"}}]
    results[2].zones = {"frame": {"counts": {"face": 1}, "active": {"face": 1}}, "zones": {}}
    with Recorder(tmp_path / "r.mcap", DEFAULT_SPEC, key.fingerprint, fit="letterbox") as recorder:
        for result in results:
            recorder.record(result)
    counts = _validate(tmp_path / "r.mcap")
    assert counts == {FRAME_TOPIC: 6, MEASUREMENT_TOPIC: 6, ANSWERS_TOPIC: 6, DETECTIONS_TOPIC: 6, EVENTS_TOPIC: 1}
    answers = [v for _, c, _, v in decoded(tmp_path / "r.mcap") if c.topic == ANSWERS_TOPIC]
    assert answers == [r.to_dict(include_latency=False) for r in results]  # as the results file writes them


def test_a_recorded_run_of_the_default_face_detector_validates_and_draws_the_faces(tmp_path):
    done = keycam("record", str(tmp_path / "r.mcap"), "--max-frames", "5", timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    counts = _validate(tmp_path / "r.mcap")
    assert counts[MEASUREMENT_TOPIC] == counts[FRAME_TOPIC] == counts[DETECTIONS_TOPIC] == 5
    drawings = [v for _, c, _, v in decoded(tmp_path / "r.mcap") if c.topic == DETECTIONS_TOPIC]
    assert sum(len(d.points) for d in drawings) >= 1  # the astronaut's face, at least
    for drawing in drawings:
        for shape in drawing.points:
            assert all(0 <= p.x <= 128 and 0 <= p.y <= 128 for p in shape.points)  # on the 128 x 128 measurement


@pytest.mark.parametrize("spec_name, scale", [("rgb8", (1, 1)), ("rgb12", (3, 1)), ("bayer12to8", (2, 2))])
def test_the_answer_is_drawn_where_it_lands_on_the_measurement(tmp_path, key, spec_name, scale):
    """A camera frame of 64 x 48 letterboxed into 32 x 32 (cells, for Bayer): scale 0.5, 4 rows of padding above."""
    spec = PRESETS[spec_name]
    result = measured(key, 1, spec, size=(32, 32), outputs=_answer)[0]
    result.frame = result.frame.replace(source_size=(64, 48) if not spec.is_bayer else (128, 96))
    camera = 1 if not spec.is_bayer else 2  # a Bayer frame's camera pixels per cell side
    with Recorder(tmp_path / "r.mcap", spec, key.fingerprint, fit="letterbox") as recorder:
        recorder.record(result)
    (drawing,) = [v for _, c, _, v in decoded(tmp_path / "r.mcap") if c.topic == DETECTIONS_TOPIC]
    box = drawing.points[0]
    (x0, y0, x1, y1) = (np.array(result.outputs["detections"][0]["box"]) / camera).tolist()
    expected = [((x * 0.5) * scale[0], (y * 0.5 + 4) * scale[1]) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))]
    assert [c for p in box.points for c in (p.x, p.y)] == pytest.approx([c for xy in expected for c in xy])
    assert [kv.key for kv in box.metadata] == ["class", "label", "score", "track"]
    assert drawing.texts[0].text == "face 0.90 #1.0-0"
    assert len(drawing.points[1].points) == 1  # the keypoint whose visibility is 0.2 is not drawn
    image = next(v for _, c, _, v in decoded(tmp_path / "r.mcap") if c.topic == MEASUREMENT_TOPIC)
    assert (image.width, image.height) == (32 * scale[0], 32 * scale[1])
    _validate(tmp_path / "r.mcap")  # 16-bit colour (mono16, three times as wide) and Bayer mosaics too


def test_a_classifier_answer_is_kept_but_not_drawn(tmp_path, key):
    with Recorder(tmp_path / "r.mcap", DEFAULT_SPEC, key.fingerprint) as recorder:
        for result in measured(key, 3, outputs={"logits": {"label": 9, "score": 0.99, "class": "Ankle boot"}}):
            recorder.record(result)
    assert _validate(tmp_path / "r.mcap") == {FRAME_TOPIC: 3, MEASUREMENT_TOPIC: 3, ANSWERS_TOPIC: 3}


def test_a_sealed_measurement_keeps_its_seal(tmp_path, key):
    class Seal:  # what edge.seal.Seal gives a recording: header hex:tag hex
        def to_hex(self) -> str:
            return "00ff:aa55"

    result = measured(key, 1)[0]
    result.frame = result.frame.replace(seal=Seal())
    with Recorder(tmp_path / "r.mcap", DEFAULT_SPEC, key.fingerprint) as recorder:
        recorder.record(result)
    assert next(read_recording(tmp_path / "r.mcap")).seal == "00ff:aa55"
    _validate(tmp_path / "r.mcap")


@pytest.mark.parametrize("source_size", [(64, 48), None], ids=["KCF2", "KCF1"])
def test_recordings_of_the_first_format_read_back(tmp_path, key, source_size):
    transform = AdcTransform(key)
    measurements = [transform(f, epoch=i // 4) for i, f in enumerate(plain_frames(9))]
    path = write_first_format(tmp_path / "old.mcap", measurements, key.fingerprint, source_size=source_size,
                              masks="m1")
    info = RecordingInfo()
    frames = list(read_recording(path, info=info))
    assert [f.epoch for f in frames] == [i // 4 for i in range(9)] and info.expected == 9 and not info.damaged
    assert all(np.array_equal(f.image, m) for f, m in zip(frames, measurements))
    assert {f.source_size for f in frames} == {source_size} and info.masks == "m1"
    assert {f.fingerprint for f in frames} == {key.fingerprint}


def test_keycam_replays_both_formats_alike(tmp_path, key):
    from edge.default import default_model

    key.save(tmp_path / "k.key")
    spec = PRESETS["gray8"]
    transform = AdcTransform(key, spec)
    measurements = [transform(f, epoch=i // 4) for i, f in enumerate(plain_frames(6, spec, (28, 28)))]
    write_first_format(tmp_path / "old.mcap", measurements, key.fingerprint, spec)  # epochs i // 4
    with Recorder(tmp_path / "new.mcap", spec, key.fingerprint) as recorder:
        for i, m in enumerate(measurements):
            recorder.write(m, i // 4, i, 1_000_000 * i, source_size=(64, 48))
    model = default_model(tmp_path, key)
    answers = []
    for name in ("old", "new"):
        done = keycam("replay", str(tmp_path / f"{name}.mcap"), "--model", str(model), "--key",
                      str(tmp_path / "k.key"), "--output", str(tmp_path / f"{name}.jsonl"), timeout=120)
        assert done.returncode == 0, done.stderr
        answers.append([json.loads(line)["outputs"] for line in (tmp_path / f"{name}.jsonl").read_text().splitlines()])
    assert len(answers[0]) == 6 and answers[0] == answers[1]


def test_an_image_without_its_provenance_is_counted_never_guessed(tmp_path, key):
    """The two messages of a frame joined by sequence: an image whose keycam.Frame is missing (lost in a damaged
    chunk) is damage, not a frame of epoch 0."""
    from mcap.writer import Writer

    from edge.recording.images import encode_image
    from edge.recording.schemas import RAW_IMAGE

    measurement = AdcTransform(key)(plain_frames(1)[0])
    with open(tmp_path / "r.mcap", "wb") as handle:
        writer = Writer(handle)
        writer.start(profile="keycam", library="test")
        schema = writer.register_schema(RAW_IMAGE.name, RAW_IMAGE.encoding, RAW_IMAGE.data)
        channel = writer.register_channel(MEASUREMENT_TOPIC, "protobuf", schema, {"channels": "3"})
        writer.add_message(channel, log_time=0, publish_time=0, sequence=0, data=encode_image(measurement, 8, 0))
        writer.finish()
    info = RecordingInfo()
    assert list(read_recording(tmp_path / "r.mcap", info=info)) == [] and info.damaged_frames == 1


def test_frames_carry_their_provenance_through_a_replay(tmp_path, key):
    from edge.sources.recording import RecordingSource

    results = measured(key, 3)
    results = [r.__class__(r.frame.replace(masks="m2"), {}) for r in results]
    with Recorder(tmp_path / "r.mcap", DEFAULT_SPEC, key.fingerprint) as recorder:
        for result in results:
            recorder.record(result)
    with RecordingSource(tmp_path / "r.mcap") as source:
        frames: list[Frame] = list(source)
    assert [(f.epoch, f.timestamp_ns, f.monotonic_ns, f.source_size, f.masks, f.fingerprint) for f in frames] == [
        (r.frame.epoch, r.frame.timestamp_ns, r.frame.monotonic_ns, r.frame.source_size, "m2", key.fingerprint)
        for r in results]
    assert isinstance(results[0], Result)
