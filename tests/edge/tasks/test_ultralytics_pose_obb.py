"""keycam's keypoints and rotated boxes against ultralytics' own predict on the same photos and exports: YOLO11n-pose
and YOLO26n-pose (end to end), YOLO11n-obb and YOLO26n-obb (end to end: (1, 300, 7), no NMS). Same thresholds for both (a wide gap between candidates' scores, IoU
0.7, at most 100); same count and classes; boxes, keypoints and corners within a pixel of ultralytics'.

Keypoints agree to keycam's rounding (0.005 px). Rotated boxes: with ``rotated_nms = "probiou"`` (ultralytics' own
rule) keycam keeps exactly ultralytics' boxes; their corners agree to rounding on square photos and within 0.75 px on
the others, where ultralytics scales a rotated box's w and h by the x and y letterbox gains (which differ by the
rounding of the resized size: 214 / 427 against 320 / 640) while keycam maps its corners through the per-axis map
exactly. With the default, OpenCV's rotated NMS (the rectangles' IoU, which reads lower than the probabilistic IoU
for boxes of one size: 0.84 against 0.92 for the nearest duplicates here), keycam keeps every box ultralytics keeps
and some more; at IoU 1 (nothing suppressed by either) both keep every candidate, the same."""

from __future__ import annotations

import numpy as np
import pytest

from edge.tasks import DECODERS, TaskConfig, make_decoder
from edge.tasks.obb import regularise
from tests.edge.tasks import oracle
from tests.edge.tasks.ultralytics_zoo import photos, predict

PHOTOS = {**photos(), **photos(square=False)}
POSE = ["yolo11n-pose", "yolo26n-pose"]


@pytest.fixture(scope="module")
def predicted(shared_models):
    return predict(shared_models, [*POSE, "yolo11n-obb", "yolo26n-obb"], PHOTOS)


@pytest.mark.parametrize("name, task, decoder", [("yolo11n-pose", "pose", "pose"), ("yolo26n-pose", "pose", "pose"),
                                                 ("yolo11n-obb", "obb", "obb"), ("yolo26n-obb", "obb", "obb")])
def test_the_decoder_is_chosen_from_the_manifest(predicted, name, task, decoder):
    manifest = oracle.manifest_of(predicted[name].path)
    assert manifest.task == task
    chosen = make_decoder(TaskConfig(), manifest)
    assert type(chosen) is DECODERS[decoder]
    if task == "pose":
        assert chosen.kpt_shape == (17, 3)  # from the channels and the 80 names: the model's kpt_shape metadata


@pytest.mark.parametrize("name", POSE)
@pytest.mark.parametrize("photo", list(PHOTOS))
def test_keypoints_equal_ultralytics_predict(predicted, name, photo):
    frame = predicted[name].frames[photo]
    found = oracle.answer(predicted[name].path, frame)
    differences = oracle.same_boxes(found, frame.found["boxes"])
    assert differences["count"] >= 1 and differences["box"] <= 1.0 and differences["score"] <= 1e-6, differences
    assert oracle.same_keypoints(found, frame.found["boxes"], frame.found["keypoints"]) <= 1.0


def _rotated(found: dict, obb: np.ndarray, corners: np.ndarray) -> float:
    """The largest corner difference between keycam's rotated boxes and ultralytics' (n, 7) xywhr, score, class,
    after the same count, classes, scores, and regularised sizes and angles."""
    order = np.lexsort((obb[:, 0], -np.round(obb[:, 5], 6)))
    ours = sorted(found["detections"], key=lambda d: (-d["score"], np.mean([x for x, _ in d["corners"]])))
    assert len(ours) == len(obb) >= 1
    assert [d["label"] for d in ours] == obb[order, 6].astype(int).tolist()
    assert np.abs(np.array([d["score"] for d in ours]) - obb[order, 5]).max() <= 1e-6
    width, height, angle = regularise(obb[order, 2], obb[order, 3], obb[order, 4])
    assert np.abs(np.array([d["size"] for d in ours]) - np.stack([width, height], 1)).max() <= 1.0
    turn = np.array([d["angle"] for d in ours]) - angle
    assert np.abs((turn + np.pi / 4) % (np.pi / 2) - np.pi / 4).max() <= 0.01  # modulo pi/2: a square's sides swap
    return float(np.abs(np.array([d["corners"] for d in ours]) - corners[order]).max())


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_rotated_boxes_equal_ultralytics_predict_under_its_own_nms(predicted, photo):
    frame = predicted["yolo11n-obb"].frames[photo]
    found = oracle.answer(predicted["yolo11n-obb"].path, frame, rotated_nms="probiou")
    assert _rotated(found, frame.found["obb"], frame.found["corners"]) <= 1.0


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_end_to_end_rotated_boxes_equal_ultralytics_predict(predicted, photo):
    frame = predicted["yolo26n-obb"].frames[photo]
    found = oracle.answer(predicted["yolo26n-obb"].path, frame)  # the model's own rows: no NMS on either side
    assert _rotated(found, frame.found["obb"], frame.found["corners"]) <= 1.0


@pytest.mark.parametrize("photo", list(PHOTOS))
def test_opencv_rotated_nms_keeps_every_box_ultralytics_keeps(predicted, photo):
    frame = predicted["yolo11n-obb"].frames[photo]
    found = oracle.answer(predicted["yolo11n-obb"].path, frame)
    ours = np.array([d["corners"] for d in found["detections"]])  # (k, 4, 2)
    for corners in frame.found["corners"]:
        assert np.abs(ours - corners).max(axis=(1, 2)).min() <= 1.0
    assert len(ours) >= len(frame.found["corners"])
