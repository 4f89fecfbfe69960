"""keycam preview draws each zone where it is: on the camera frame's tile as configured, and through the run's
geometry on the model-input tiles (here a centre crop, so part of the zone lies outside what the model sees)."""

from __future__ import annotations

import numpy as np

from edge.events.zones import ZoneConfig
from edge.lab.preview import YELLOW, _draw_zones
from edge.tasks import Geometry


def test_a_zone_is_drawn_on_the_camera_tile_and_through_the_geometry_on_the_model_tiles():
    geometry = Geometry.of(128, 128, (256, 192), "crop")  # the centred 192 x 192 window, x from 32 to 224
    zone = ZoneConfig(coordinates=[[64, 48], [160, 48], [160, 144], [64, 144]])
    model_tile, camera_tile = np.zeros((160, 160, 3), np.uint8), np.zeros((160, 213, 3), np.uint8)
    _draw_zones([model_tile], camera_tile, {"porch": zone}, geometry, camera_height=192)

    def on_model(x, y):  # a camera pixel's place on the model tile
        mx, my = geometry.to_model(np.array([[x, y]], np.float64))[0]
        return model_tile[int(round(my * 160 / 128)), int(round(mx * 160 / 128))]

    scale = 160 / 192
    assert np.array_equal(on_model(112, 144), YELLOW) and np.array_equal(on_model(160, 96), YELLOW)  # its edges
    assert on_model(112, 96).sum() == 0  # inside is not filled
    assert np.array_equal(camera_tile[round(144 * scale), round(112 * scale)], YELLOW)
    assert camera_tile[round(96 * scale), round(112 * scale)].sum() == 0
    assert camera_tile[:30].sum() == 0  # nothing above the zone but its name, at its first corner
