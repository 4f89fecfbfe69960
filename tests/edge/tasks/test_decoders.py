"""The decoders on tensors made by hand: boxes where they were put, NMS by OpenCV, answers in the camera frame's
pixels through the same fitting rule the device uses, and one-line refusals for outputs that do not fit."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.errors import ConfigError
from edge.sensor import fit_frame
from edge.tasks import Geometry, TaskConfig
from edge.tasks.segment import SegmentDecoder
from edge.tasks.ssd import SsdDecoder, ssd_anchors
from edge.tasks.yolo import YoloDecoder
from firmware_sim.manifest import OutputSpec


def spec(name, shape, kind="plain") -> OutputSpec:
    return OutputSpec(name=name, shape=shape, kind=kind)


@pytest.mark.parametrize("camera, model", [((640, 360), (320, 320)), ((300, 451), (128, 128)), ((200, 300), (96, 64))])
def test_geometry_maps_model_pixels_back_through_the_fitting_rule(camera, model):
    """A white square in an off-centre spot of a non-square camera frame, fitted as the device fits it, found in the
    model's input and mapped back, lands where it was."""
    (cam_w, cam_h), (width, height) = camera, model
    frame = np.zeros((cam_h, cam_w, 1), np.uint8)
    x0, y0, size = cam_w // 2 + 3, cam_h // 2 - 17, min(cam_w, cam_h) // 6
    frame[y0:y0 + size, x0:x0 + size] = 255
    fitted = fit_frame(frame, height, width)[:, :, 0]
    ys, xs = np.nonzero(fitted > 127)
    box = np.array([[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float64)  # model pixels
    back = Geometry.of(width, height, (cam_w, cam_h)).to_camera(box)[0]
    scale = max(cam_w / width, cam_h / height)
    assert np.abs(back - [x0, y0, x0 + size, y0 + size]).max() <= 1.5 * scale


def _yolo_output(boxes, classes, scores, anchors=64, classes_total=3, seed=0):
    rng = np.random.default_rng(seed)
    out = np.zeros((1, 4 + classes_total, anchors), np.float32)
    out[0, :4] = rng.uniform(0, 10, (4, anchors))
    out[0, 4:] = rng.uniform(0, 0.1, (classes_total, anchors))  # background: low scores
    for index, (box, klass, score) in enumerate(zip(boxes, classes, scores)):
        x0, y0, x1, y1 = box
        out[0, :4, index] = [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0]
        out[0, 4 + klass, index] = score
    return out


def test_yolo_keeps_the_best_of_overlapping_boxes_and_maps_them_to_the_camera():
    boxes = [(10, 10, 50, 50), (12, 11, 51, 52), (100, 100, 150, 140)]  # the first two overlap
    out = _yolo_output(boxes, [0, 0, 2], [0.9, 0.8, 0.7])
    decoder = YoloDecoder(TaskConfig(score_threshold=0.5), [spec("output0", [1, 7, 64])], ["person", "cat", "dog"],
                          (320, 320))
    answer = decoder.decode([out], Geometry.of(320, 320, (640, 360)))  # window (140, 0, 360, 360), scale 1.125
    assert [d["class"] for d in answer["detections"]] == ["person", "dog"] and answer["counts"] == {"dog": 1,
                                                                                                    "person": 1}
    person = answer["detections"][0]
    assert person["score"] == pytest.approx(0.9) and person["label"] == 0
    assert person["box"] == pytest.approx([140 + 10 * 1.125, 10 * 1.125, 140 + 50 * 1.125, 50 * 1.125], abs=0.01)


def test_a_box_past_the_edge_of_what_the_model_saw_is_clipped_to_it_in_camera_pixels():
    out = _yolo_output([(-30, 290, 60, 350)], [1], [0.9])  # reaches past the left and bottom of 320 x 320
    decoder = YoloDecoder(TaskConfig(score_threshold=0.5), [spec("output0", [1, 7, 64])], None, (320, 320))
    (found,) = decoder.decode([out], Geometry.of(320, 320, (640, 360)))["detections"]  # window (140, 0, 360, 360)
    assert found["box"] == pytest.approx([140.0, 290 * 1.125, 140 + 60 * 1.125, 360.0])


def test_yolo_detections_do_not_depend_on_the_order_of_the_anchors():
    """Under the fresh policy the anchors come in a keyed order, boxes in plain pixels: the same detections."""
    out = _yolo_output([(10, 10, 50, 50), (12, 11, 51, 52), (100, 100, 150, 140), (200, 30, 260, 90)],
                       [0, 0, 2, 1], [0.9, 0.8, 0.7, 0.95])
    decoder = YoloDecoder(TaskConfig(score_threshold=0.5), [spec("output0", [1, 7, 64])], None, (320, 320))
    geometry = Geometry.of(320, 320, (1280, 720))
    shuffled = out[:, :, np.random.default_rng(3).permutation(64)]
    assert decoder.decode([shuffled], geometry) == decoder.decode([out], geometry)


def test_a_detector_whose_outputs_do_not_fit_is_refused_naming_both_shapes():
    with pytest.raises(ConfigError, match=r"one output \(N, 4 \+ classes, anchors\); this model gives \(N, 10\)"):
        YoloDecoder(TaskConfig(), [spec("logits", [None, 10])], None, (28, 28))
    with pytest.raises(ConfigError, match=r"scores 3 classes, the labels name 2"):
        YoloDecoder(TaskConfig(), [spec("output0", [1, 7, 2100])], ["a", "b"], (320, 320))
    with pytest.raises(ConfigError, match=r"regressors \(N, 896, 4 \+ 2k\) .* this model gives \(1, 512, 16\)"):
        SsdDecoder(TaskConfig(), [spec("regressors", [1, 512, 16]), spec("classificators", [1, 512, 1])], None,
                   (128, 128))


def test_ssd_decodes_a_box_and_its_keypoints_from_its_anchor():
    anchors = ssd_anchors(TaskConfig().anchors, 128, 128)
    assert len(anchors) == 896  # BlazeFace short range: 16x16x2 + 8x8x6
    index = 200  # an anchor of the 16x16 layer at (36, 52), away from the edges
    regressors = np.zeros((1, 896, 16), np.float32)
    logits = np.full((1, 896, 1), -20.0, np.float32)
    regressors[0, index, :4] = [5.0, -3.0, 40.0, 30.0]  # offset from the anchor and size, input pixels
    regressors[0, index, 4:6] = [-10.0, -6.0]  # the first keypoint
    logits[0, index, 0] = 3.0
    decoder = SsdDecoder(TaskConfig(), [spec("regressors", [1, 896, 16]), spec("classificators", [1, 896, 1])],
                         ["face"], (128, 128))
    answer = decoder.decode([regressors, logits], Geometry.of(128, 128, (512, 512)))  # scale 4
    (face,) = answer["detections"]
    cx, cy = anchors[index, 0] * 128 + 5.0, anchors[index, 1] * 128 - 3.0
    assert face["box"] == pytest.approx([4 * (cx - 20), 4 * (cy - 15), 4 * (cx + 20), 4 * (cy + 15)], abs=0.01)
    assert face["score"] == pytest.approx(1 / (1 + np.exp(-3.0)), abs=1e-6) and face["class"] == "face"
    assert face["keypoints"][0] == pytest.approx([4 * (anchors[index, 0] * 128 - 10), 4 * (anchors[index, 1] * 128 - 6)],
                                                 abs=0.01)
    assert len(face["keypoints"]) == 6


def test_segmentation_gives_areas_and_outlines_in_the_camera_frame():
    scores = np.zeros((1, 3, 48, 64), np.float32)
    scores[0, 0] = 1.0
    scores[0, 2, 10:20, 30:50] = 5.0  # class 2: a 20 x 10 rectangle
    decoder = SegmentDecoder(TaskConfig(), [spec("mask", [1, 3, 48, 64], "dense")], ["sky", "road", "car"], (64, 48))
    answer = decoder.decode([scores], Geometry.of(64, 48, (640, 480)))  # scale 10
    car = answer["classes"]["car"]
    assert car["pixels"] == 200 and car["area"] == pytest.approx(200 / (48 * 64), abs=1e-6)  # rounded to 1e-6
    (outline,) = car["contours"]
    xs, ys = [p[0] for p in outline], [p[1] for p in outline]
    assert min(xs) == pytest.approx(305) and max(xs) == pytest.approx(495)  # pixel centres 30.5 .. 49.5, x10
    assert min(ys) == pytest.approx(105) and max(ys) == pytest.approx(195)
    assert list(answer["classes"]) == ["sky", "car"]


def test_nms_is_opencvs_and_the_order_is_deterministic():
    from edge.tasks.nms import suppress

    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 10]], np.float64)
    scores = np.array([0.8, 0.9, 0.5, 0.9])
    kept = suppress(boxes, scores, np.array([0, 0, 0, 1]), 0.3, 0.5, 10)
    assert kept.tolist() == [3, 1, 2]  # best first, a tie by the corners; another class's box is not suppressed
    shuffled = [2, 3, 0, 1]  # the same candidates in another order (a fresh model's keyed anchor order)
    again = suppress(boxes[shuffled], scores[shuffled], np.array([0, 0, 0, 1])[shuffled], 0.3, 0.5, 10)
    assert np.array_equal(boxes[shuffled][again], boxes[kept])
    reference = cv2.dnn.NMSBoxesBatched([[0, 0, 10, 10], [1, 1, 10, 10], [50, 50, 10, 10], [0, 0, 10, 10]],
                                        scores.tolist(), [0, 0, 0, 1], 0.3, 0.5)
    assert sorted(np.asarray(reference).reshape(-1).tolist()) == sorted(kept.tolist())
