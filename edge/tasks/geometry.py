"""From the model's input pixels back to the camera frame's, through the frame-fitting rule.

``edge.sensor.fit_frame`` takes a camera frame of S_w x S_h pixels, keeps the centred window of the
model's aspect ratio, and resizes it to the model's W x H::

    if S_h * W > S_w * H:  window = (0, top, S_w, k),  k = round(S_w * H / W), top = (S_h - k) // 2
    else:                  window = (left, 0, k, S_h), k = round(S_h * W / H), left = (S_w - k) // 2

so a point (x, y) of the model's input (pixel units, 0 at the left edge of the first pixel) is the
camera frame's ``(window_x + x * window_w / W, window_y + y * window_h / H)``. For a Bayer readout the
model sees one pixel per 2x2 cell and the window is taken on the mosaic at 2W x 2H: the same window in
camera pixels, so the same mapping. Without a known source size (older recordings), boxes stay in the
model's input pixels. A box is clipped to the window after NMS (what the model saw; a regressor may
reach past it), as ultralytics clips to the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Geometry:
    """The mapping of one frame: the model's input size and the window of the camera frame it shows."""

    width: int  # the model's input, pixels
    height: int
    window: tuple[float, float, float, float]  # (x, y, w, h) of the camera frame, its pixels

    @classmethod
    def of(cls, width: int, height: int, source_size: tuple[int, int] | None) -> Geometry:
        if source_size is None:
            return cls(width, height, (0.0, 0.0, float(width), float(height)))
        source_w, source_h = source_size
        if source_h * width > source_w * height:  # too tall: rows were cropped (fit_frame)
            keep = max(1, round(source_w * height / width))
            return cls(width, height, (0.0, float((source_h - keep) // 2), float(source_w), float(keep)))
        if source_h * width < source_w * height:  # too wide: columns were cropped
            keep = max(1, round(source_h * width / height))
            return cls(width, height, (float((source_w - keep) // 2), 0.0, float(keep), float(source_h)))
        return cls(width, height, (0.0, 0.0, float(source_w), float(source_h)))

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 2k) x, y pairs in the model's input pixels -> the camera frame's pixels."""
        x, y, w, h = self.window
        shape = points.shape
        pairs = points.reshape(*shape[:-1], shape[-1] // 2, 2)  # (..., 2k) -> (..., k, 2)
        return (pairs * (w / self.width, h / self.height) + (x, y)).reshape(shape)

    def clip(self, boxes: np.ndarray) -> np.ndarray:
        """(K, 4) x0, y0, x1, y1 camera boxes, clipped to the window the model saw."""
        x, y, w, h = self.window
        return np.clip(boxes, (x, y, x, y), (x + w, y + h, x + w, y + h))

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_camera`: camera pixels -> the model's input pixels."""
        x, y, w, h = self.window
        scale = np.tile([self.width / w, self.height / h], points.shape[-1] // 2)
        offset = np.tile([x, y], points.shape[-1] // 2)
        return (points - offset) * scale

    @property
    def camera_size(self) -> tuple[float, float]:
        return self.window[2], self.window[3]
