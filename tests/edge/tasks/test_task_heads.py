"""The ultralytics task decoders (pose, obb, instances, end2end, rtdetr, and classify's probabilities) on tensors made
by hand: which decoder the manifest's task and output shapes choose, one-line refusals at start-up, and answers in
the camera frame's pixels through the frame's framing (a 640 x 480 camera letterboxed into 320 x 320: scale 0.5, 40
rows of padding above and below)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edge.errors import ConfigError, FrameError
from edge.tasks import DECODERS, Geometry, TaskConfig, make_decoder
from edge.tasks.obb import corners_of, probiou, regularise
from export.compiler.metadata import decoder_of, kpt_shape_of, task_of
from firmware_sim.manifest import OutputSpec
from tests.edge.contracts import manifest_with

LETTERBOX = Geometry.of(320, 320, (640, 480), "letterbox")  # camera = (model - (0, 40)) * 2


def spec(name, shape, kind="plain") -> OutputSpec:
    return OutputSpec(name=name, shape=shape, kind=kind)


def manifest(task: str, *shapes, labels=()) -> object:
    outputs = [spec(f"output{i}", list(shape), "dense" if len(shape) == 4 and i else "plain")
               for i, shape in enumerate(shapes)]
    return manifest_with(outputs, (320, 320)).model_copy(update={"task": task, "labels": list(labels)})


COCO = [f"c{i}" for i in range(80)]


@pytest.mark.parametrize("task, shapes, labels, chosen", [
    ("detect", [(1, 84, 2100)], COCO, "yolo"),
    ("detect", [(None, 84, None)], COCO, "yolo"),  # a dynamic export
    ("detect", [(1, 300, 6)], COCO, "end2end"),  # YOLOv10 / YOLO26, nms=False
    ("detect", [(1, 300, 84)], COCO, "rtdetr"),  # RT-DETR before ultralytics 8.4: class scores per query
    ("segment", [(1, 116, 2100), (1, 32, 80, 80)], COCO, "instances"),
    ("segment", [(1, 300, 38), (1, 32, 80, 80)], COCO, "instances"),  # YOLO26-seg, nms=False
    ("segment", [(1, 21, 64, 64)], [], "segment"),  # a class map
    ("pose", [(1, 56, 2100)], ["person"], "pose"),
    ("pose", [(1, 135, 2100)], COCO, "pose"),  # yolo11n-pose.yaml: 80 classes, 17 x 3 keypoints
    ("pose", [(1, 300, 57)], ["person"], "pose"),  # YOLO26-pose, nms=False
    ("obb", [(1, 20, 2100)], [f"c{i}" for i in range(15)], "obb"),  # DOTA's 15 classes
    ("obb", [(1, 300, 7)], [], "obb"),
    ("classify", [(1, 1000)], [], "classify"),
])
def test_the_manifest_task_and_output_shapes_choose_the_decoder(task, shapes, labels, chosen):
    assert type(make_decoder(TaskConfig(), manifest(task, *shapes, labels=labels))) is DECODERS[chosen]


@pytest.mark.parametrize("settings, shapes, labels, words", [
    ({"kind": "pose"}, [(1, 3, 10)], [], "the pose decoder takes one output (N, 4 + classes + K*D, anchors)"),
    ({"kind": "pose"}, [(1, 57, 2100)], [], "leaves 52 values per detection for keypoints, not 3 per keypoint; "
                                            "set task.kpt_shape"),
    ({"kind": "pose", "kpt_shape": [17, 3]}, [(1, 300, 58)], [], "task.kpt_shape = [17, 3] needs 51 keypoint values"),
    ({"kind": "pose"}, [(1, 56, 2100)], ["a", "b"], "leaves 50 values per detection"),
    ({"kind": "obb"}, [(1, 300, 8)], [], "the obb decoder takes one output (N, 4 + classes + 1, anchors) or (N, "
                                         "rows, 7); this model gives (1, 300, 8)"),
    ({"kind": "obb"}, [(1, 20, 2100)], ["a"], "scores 15 classes, the labels name 1"),
    ({"kind": "segment", "decoder": "instances"}, [(1, 300, 40), (1, 32, 80, 80)], [],
     "the instances decoder takes a head"),
    ({"kind": "segment", "decoder": "instances"}, [(1, 116, 2100)], [], "the instances decoder takes a head"),
    ({"kind": "detect", "decoder": "end2end"}, [(1, 84, 2100)], [], "the end2end decoder takes one output (N, rows, "
                                                                     "6)"),
    ({"kind": "detect", "decoder": "rtdetr"}, [(1, 84, 2100)], [], "the rtdetr decoder takes one output"),
    ({"kind": "detect", "decoder": "rtdetr"}, [(1, 300, 84)], ["a"], "scores 80 classes, the labels name 1"),
    ({"kind": "segment"}, [(1, 116, 2100)], [], "cannot tell which of them reads"),
])
def test_outputs_that_do_not_fit_are_refused_at_start_up_in_one_line(settings, shapes, labels, words):
    with pytest.raises(ConfigError) as caught:
        make_decoder(TaskConfig.model_validate(settings), manifest("", *shapes, labels=labels))
    assert words in str(caught.value) and "\n" not in str(caught.value)


def test_a_bad_kpt_shape_setting_is_refused():
    with pytest.raises(ValueError, match=r"task.kpt_shape = \[17, 4\] is not \[keypoints, 2 or 3\]"):
        TaskConfig(kpt_shape=[17, 4])


def _anchors(rows: list[list[float]], channels: int, anchors: int = 336) -> np.ndarray:
    """A head (1, channels, anchors) whose first anchors hold ``rows`` (the rest: nothing above 0.1)."""
    out = np.zeros((1, channels, anchors), np.float32)
    out[0, :4] = [[160.0], [160.0], [4.0], [4.0]]
    out[0, 4] = 0.05
    for index, row in enumerate(rows):
        out[0, :len(row), index] = row
    return out


def test_pose_keypoints_land_in_camera_pixels_through_the_letterbox():
    # a person at model (100, 100)-(140, 180), keypoints at model (110, 120) and (300, 45): 17 x 3, one class
    keypoints = [110, 120, 0.9, 300, 45, 0.2] + [0.0] * 45
    head = _anchors([[120, 140, 40, 80, 0.8, *keypoints], [121, 141, 40, 80, 0.7, *keypoints]], 56)
    decoder = make_decoder(TaskConfig(), manifest("pose", (1, 56, 336), labels=["person"]))
    answer = decoder.decode([head], LETTERBOX)
    (person,) = answer["detections"]  # the second overlaps the first: NMS keeps the best
    assert person["box"] == [200.0, 120.0, 280.0, 280.0] and person["class"] == "person"
    assert person["keypoints"][:2] == [[220.0, 160.0, 0.9], [600.0, 10.0, 0.2]]
    assert len(person["keypoints"]) == 17 and answer["counts"] == {"person": 1}


def test_a_pose_model_of_two_values_per_keypoint_needs_kpt_shape():
    with pytest.raises(ConfigError, match="leaves 10 values per detection for keypoints, not 3 per keypoint"):
        make_decoder(TaskConfig(), manifest("pose", (1, 15, 336)))  # 5 x 2: refused
    # tiger-pose's 12 x 2 = 24 values are also 8 x 3: without kpt_shape (the manifest does not carry it yet) they
    # would be read as 8 keypoints of 3; kpt_shape says what they are
    assert make_decoder(TaskConfig(), manifest("pose", (1, 29, 336))).kpt_shape == (8, 3)
    decoder = make_decoder(TaskConfig(kpt_shape=[12, 2]), manifest("pose", (1, 29, 336)))
    head = _anchors([[120, 140, 40, 80, 0.8] + [110, 120] * 12], 29)
    (tiger,) = decoder.decode([head], LETTERBOX)["detections"]
    assert tiger["keypoints"] == [[220.0, 160.0]] * 12


def test_end_to_end_rows_are_kept_as_the_model_chose_them():
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, :3] = [[10, 50, 30, 90, 0.9, 2], [11, 51, 31, 91, 0.8, 2], [100, 60, 200, 100, 0.3, 0]]
    decoder = make_decoder(TaskConfig(score_threshold=0.5), manifest("detect", (1, 300, 6), labels=["a", "b", "c"]))
    answer = decoder.decode([rows], LETTERBOX)
    assert [d["box"] for d in answer["detections"]] == [[20.0, 20.0, 60.0, 100.0], [22.0, 22.0, 62.0, 102.0]]
    assert answer["counts"] == {"c": 2}  # overlapping, both kept: the model has chosen, nothing is suppressed
    limited = make_decoder(TaskConfig(score_threshold=0.2, max_detections=1), manifest("detect", (1, 300, 6)))
    assert len(limited.decode([rows], LETTERBOX)["detections"]) == 1


def test_rtdetr_rows_read_as_pixels_are_refused_and_the_rtdetr_decoder_reads_them():
    rows = np.zeros((1, 300, 6), np.float32)
    rows[0, 0] = [0.5, 0.5, 0.25, 0.5, 0.9, 1]  # cx, cy, w, h as fractions of the input
    auto = make_decoder(TaskConfig(), manifest("detect", (1, 300, 6)))
    with pytest.raises(FrameError, match=r'normalised cx, cy, w, h.*set \[task\] decoder = "rtdetr"'):
        auto.decode([rows], LETTERBOX)
    rtdetr = make_decoder(TaskConfig(decoder="rtdetr"), manifest("detect", (1, 300, 6)))
    stretch = Geometry.of(320, 320, (640, 480), "stretch")  # RT-DETR's own framing
    (found,) = rtdetr.decode([rows], stretch)["detections"]
    assert found["box"] == [240.0, 120.0, 400.0, 360.0] and found["label"] == 1


def test_rtdetr_class_scores_give_the_best_class():
    rows = np.zeros((1, 300, 7), np.float32)
    rows[0, 0] = [0.5, 0.5, 0.25, 0.5, 0.1, 0.2, 0.7]
    rows[0, 1] = [0.2, 0.2, 0.1, 0.1, 0.6, 0.1, 0.0]
    decoder = make_decoder(TaskConfig(), manifest("detect", (1, 300, 7), labels=["a", "b", "c"]))
    answer = decoder.decode([rows], LETTERBOX)
    assert [(d["class"], d["score"]) for d in answer["detections"]] == [("c", pytest.approx(0.7)),
                                                                        ("a", pytest.approx(0.6))]


def test_obb_corners_angle_and_size_are_ultralytics_regularised_in_camera_pixels():
    theta = math.radians(100)  # theta mod pi >= pi/2: w and h swap, the angle becomes 10 degrees
    head = _anchors([[160, 140, 60, 20, 0.9, 0.0, theta], [160, 140, 60, 20, 0.8, 0.0, theta]], 7)
    decoder = make_decoder(TaskConfig(), manifest("obb", (1, 7, 336), labels=["ship", "plane"]))
    (ship,) = decoder.decode([head], LETTERBOX)["detections"]
    corners = corners_of(np.array([[160, 140, 60, 20, theta]]))[0]
    assert np.allclose(ship["corners"], (corners - (0, 40)) * 2, atol=0.01)
    assert ship["size"] == [40.0, 120.0] and ship["angle"] == pytest.approx(math.radians(10), abs=1e-6)
    xs, ys = np.array(ship["corners"]).T
    assert ship["box"] == pytest.approx([xs.min(), ys.min(), xs.max(), ys.max()], abs=0.01)
    width, height, angle = regularise(np.array([60.0]), np.array([20.0]), np.array([theta]))
    assert (width[0], height[0], angle[0]) == pytest.approx((20, 60, math.radians(10)))


@pytest.mark.parametrize("rule, kept", [("polygon", 2), ("probiou", 1)])
def test_rotated_nms_polygon_iou_or_ultralytics_probiou(rule, kept):
    # two boxes of one class, the second 20 pixels further along its length: rectangles' IoU 80 / 120 = 0.67,
    # probabilistic IoU 0.76
    shifted = [160 + 20 * math.cos(0.3), 160 + 20 * math.sin(0.3), 100, 20]
    head = _anchors([[160, 160, 100, 20, 0.9, 0.3], [*shifted, 0.8, 0.3]], 6)
    decoder = make_decoder(TaskConfig(iou_threshold=0.7, rotated_nms=rule), manifest("obb", (1, 6, 336)))
    assert len(decoder.decode([head], LETTERBOX)["detections"]) == kept
    assert probiou(np.array([[160, 160, 100, 20, 0.3], [*shifted, 0.3]]))[0, 1] == pytest.approx(0.76, abs=0.01)


def test_opencv_bilinear_resize_is_torchs_half_pixel_interpolation():
    """The instances decoder upsamples mask logits with cv2.resize (INTER_LINEAR, float32); ultralytics with torch's
    interpolate(bilinear, align_corners=False): output pixel i samples (i + 0.5) * in / out - 0.5, clamped at 0, from
    its two neighbours (the last one clamped)."""
    import cv2

    def weights(size: int, source: int) -> np.ndarray:  # (size, source): torch's upsample_bilinear2d, row by row
        where = np.maximum((np.arange(size) + 0.5) * (source / size) - 0.5, 0.0)
        low = np.minimum(np.floor(where).astype(np.int64), source - 1)
        high = np.minimum(low + 1, source - 1)
        matrix = np.zeros((size, source))
        np.add.at(matrix, (np.arange(size), low), 1.0 - (where - low))
        np.add.at(matrix, (np.arange(size), high), where - low)
        return matrix

    grid = np.random.default_rng(0).normal(size=(20, 30)).astype(np.float32)
    expected = weights(80, 20) @ grid.astype(np.float64) @ weights(120, 30).T
    assert np.abs(cv2.resize(grid, (120, 80), interpolation=cv2.INTER_LINEAR) - expected).max() <= 1e-5


def test_instance_masks_are_cropped_to_the_box_and_the_picture_and_answered_in_camera_pixels():
    protos = np.zeros((1, 2, 80, 80), np.float32)
    protos[0, 0] = 1.0  # everywhere
    protos[0, 1, :, :40] = -2.0  # the left half of the input: off
    head = np.zeros((1, 4 + 1 + 2, 336), np.float32)
    head[0, :, 0] = [160, 30, 200, 60, 0.9, 1.0, 1.0]  # box (60, 0)-(260, 60): into the letterbox's top padding
    head[0, :4, 1:] = [[50], [50], [2], [2]]
    decoder = make_decoder(TaskConfig(), manifest("segment", (1, 7, 336), (1, 2, 80, 80)))
    (found,) = decoder.decode([head, protos], LETTERBOX)["detections"]
    # the mask: input columns 160..259 (right half, inside the box), rows 40..59 (the picture starts at row 40)
    assert found["box"] == [120.0, 0.0, 520.0, 40.0]
    assert found["mask"]["pixels"] == pytest.approx(100 * 20 * 4)
    (outline,) = found["mask"]["polygons"]
    xs, ys = np.array(outline).T
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == pytest.approx((320.25, 519.75, 0.25, 39.75))


def test_an_instance_whose_mask_is_empty_is_dropped():
    protos = -np.ones((1, 1, 80, 80), np.float32)
    head = np.zeros((1, 6, 336), np.float32)
    head[0, :, 0] = [160, 160, 40, 40, 0.9, 1.0]
    decoder = make_decoder(TaskConfig(), manifest("segment", (1, 6, 336), (1, 1, 80, 80)))
    assert decoder.decode([head, protos], LETTERBOX) == {"detections": [], "counts": {}}
    with pytest.raises(FrameError, match="the model gave 2 prototypes for 1 mask coefficients"):
        decoder.decode([head, np.zeros((1, 2, 80, 80), np.float32)], LETTERBOX)


def test_classify_takes_probabilities_as_they_are_and_softmaxes_logits():
    decoder = make_decoder(TaskConfig(), manifest("classify", (1, 4)))
    probabilities = np.array([[0.1, 0.6, 0.2, 0.1]], np.float32)  # ultralytics' classify export: softmax in the graph
    assert decoder.decode([probabilities], LETTERBOX)["output0"] == {"label": 1, "score": pytest.approx(0.6)}
    logits = np.array([[0.0, 2.0, 1.0, 0.0]], np.float32)
    expected = math.exp(2) / (2 + math.exp(2) + math.exp(1))
    assert decoder.decode([logits], LETTERBOX)["output0"]["score"] == pytest.approx(expected, abs=1e-6)


def test_non_finite_candidates_are_the_frames_error():
    head = _anchors([[float("nan"), 140, 40, 80, 0.8] + [0.0] * 51], 56)
    decoder = make_decoder(TaskConfig(), manifest("pose", (1, 56, 336), labels=["person"]))
    with pytest.raises(FrameError, match="not finite"):
        decoder.decode([head], LETTERBOX)


def test_ultralytics_metadata_names_the_task_the_keypoints_and_the_head():
    assert task_of({"task": "pose"}, None) == "pose" and task_of({"task": "obb"}, None) == "obb"
    assert task_of({"task": "track"}, None) == ""
    assert kpt_shape_of({"kpt_shape": "[17, 3]"}) == [17, 3] and kpt_shape_of({"kpt_shape": "[12, 2]"}) == [12, 2]
    for text in ("", "[17, 4]", "__import__('os')", "[17]"):
        assert kpt_shape_of({"kpt_shape": text}) is None
    assert decoder_of({"task": "detect", "head": "RTDETRDecoder", "end2end": "False"}) == "rtdetr"
    assert decoder_of({"task": "detect", "head": "v10Detect", "end2end": "True"}) == "end2end"
    assert decoder_of({"task": "detect", "head": "Detect", "end2end": "False"}) == ""
    assert decoder_of({"task": "pose", "head": "Pose26", "end2end": "True"}) == ""  # the pose decoder reads both
