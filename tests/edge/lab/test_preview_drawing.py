"""keycam preview draws every answer kind where it is: a box, a rotated box's corners, keypoints (visible ones only)
and an instance mask with its hole, through the run's own geometry (here a letterbox, so the camera frame and the
model's input differ), on the model-input tiles."""

from __future__ import annotations

import numpy as np

from edge.lab.preview import GREEN, _draw
from edge.tasks import Geometry


def _blank() -> np.ndarray:
    return np.zeros((160, 160, 3), np.uint8)


def test_every_answer_kind_is_drawn_where_it_is():
    geometry = Geometry.of(128, 128, (256, 192), "letterbox")  # camera 256 x 192 -> 128 x 96, 16 rows above
    ring = [[40, 40], [120, 40], [120, 120], [40, 120]]  # camera pixels
    hole = [[70, 70], [90, 70], [90, 90], [70, 90]]
    outputs = {"detections": [
        {"box": [40, 40, 120, 120], "score": 0.9, "class": "a", "mask": {"pixels": 6000, "polygons": [ring, hole]}},
        {"box": [150, 20, 230, 100], "score": 0.8, "class": "b",
         "corners": [[190, 20], [230, 60], [190, 100], [150, 60]]},
        {"box": [10, 130, 60, 180], "score": 0.7, "class": "c",
         "keypoints": [[20, 140, 0.9], [50, 170, 0.1]]},
    ]}
    tile = _blank()
    _draw([tile], outputs, geometry)
    scale = 160 / 128

    def at(x, y):  # a camera pixel's place on the tile
        mx, my = geometry.to_model(np.array([[x, y]], np.float64))[0]
        return tile[int(round(my * scale)), int(round(mx * scale))]

    assert at(60, 100)[1] > 0 and at(60, 100)[1] < 255  # inside the mask: translucent green
    assert at(80, 80).sum() == 0  # the hole stays clear
    assert np.array_equal(at(190, 21), GREEN)  # a rotated box's corner, not its axis-aligned box
    assert at(151, 21).sum() == 0  # the axis-aligned box's corner is not drawn for a rotated box
    assert at(20, 140)[0] == 255 and at(50, 170).sum() == 0  # a visible keypoint (blue); the hidden one is not
    rows = [r for r in range(160) if tile[r].any()]
    assert min(rows) >= 16 * scale - 2  # nothing in the letterbox's padding above the picture
