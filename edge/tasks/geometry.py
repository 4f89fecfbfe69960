"""From the model's input pixels back to the camera frame's, through the frame-fitting rule.

``edge.fitting`` brings a camera frame of S_w x S_h pixels to the model's W x H by the model's rule
(``crop``, ``letterbox`` or ``stretch``): each is a per-axis affine map from camera pixels c to model
pixels m, ``m = c * scale + offset`` (pixel units, 0 at the left edge of the first pixel), over the
window of the camera frame the model sees (for ``crop`` the centred window it keeps; otherwise the
whole frame). So a point of the model's input is the camera frame's ``(m - offset) / scale``:

    crop:      scale = (W / window_w, H / window_h),  offset = -(window_x, window_y) * scale
    letterbox: scale = (n_w / S_w, n_h / S_h),        offset = (left, top)   (ultralytics' scale_boxes)
    stretch:   scale = (W / S_w, H / S_h),            offset = 0

For a Bayer readout the model sees one pixel per 2x2 cell and a raw mosaic is fitted per colour plane
(``cells = 2``): the plan is made on the plane grid and scaled back, so the mapping is the readout's,
rounding included. Without a known source size (older recordings), boxes stay in the model's input
pixels. A box is clipped to the window after NMS (what the model saw; a regressor may reach past it),
as ultralytics clips to the image. A grid of another size over the model's input (a class map, mask
prototypes) maps through :meth:`Geometry.for_grid`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge import fitting


@dataclass(frozen=True)
class Geometry:
    """The mapping of one frame: the model's input size, the affine map and the camera window it sees."""

    width: int  # the model's input, pixels
    height: int
    scale: tuple[float, float]  # model pixels per camera pixel, x and y
    offset: tuple[float, float]  # where the camera frame's corner lands in the model's input
    window: tuple[float, float, float, float]  # (x, y, w, h) of the camera frame the model sees, its pixels

    @classmethod
    def of(cls, width: int, height: int, source_size: tuple[int, int] | None, fit: str = "crop",
           cells: int = 1) -> Geometry:
        """The geometry of a frame of ``source_size`` (camera pixels; None: unknown) fitted to ``width`` x
        ``height`` by ``fit``; ``cells``: camera pixels per model pixel's cell side before fitting (2: a Bayer
        mosaic fitted per colour plane)."""
        if source_size is None:
            return cls(width, height, (1.0, 1.0), (0.0, 0.0), (0.0, 0.0, float(width), float(height)))
        source_w, source_h = source_size
        chosen = fitting.plan(max(1, source_w // cells), max(1, source_h // cells), width, height, fit)
        (sx, sy), (ox, oy) = chosen.scale, chosen.offset
        x, y, w, h = chosen.window
        return cls(width, height, (sx / cells, sy / cells), (ox, oy),
                   (float(x * cells), float(y * cells), float(w * cells), float(h * cells)))

    def for_grid(self, width: int, height: int) -> Geometry:
        """The geometry of a width x height grid laid over the model's input (a class map, mask prototypes)."""
        gx, gy = width / self.width, height / self.height  # grid cells per model pixel
        return Geometry(width, height, (self.scale[0] * gx, self.scale[1] * gy),
                        (self.offset[0] * gx, self.offset[1] * gy), self.window)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        """(..., 2k) x, y pairs in the model's input pixels -> the camera frame's pixels."""
        shape = points.shape
        pairs = points.reshape(*shape[:-1], shape[-1] // 2, 2)  # (..., 2k) -> (..., k, 2)
        return ((pairs - self.offset) / self.scale).reshape(shape)

    def clip(self, boxes: np.ndarray) -> np.ndarray:
        """(K, 4) x0, y0, x1, y1 camera boxes, clipped to the window the model saw."""
        x, y, w, h = self.window
        return np.clip(boxes, (x, y, x, y), (x + w, y + h, x + w, y + h))

    def to_model(self, points: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`to_camera`: camera pixels -> the model's input pixels."""
        shape = points.shape
        pairs = points.reshape(*shape[:-1], shape[-1] // 2, 2)  # (..., 2k) -> (..., k, 2)
        return (pairs * self.scale + self.offset).reshape(shape)

    @property
    def camera_size(self) -> tuple[float, float]:
        return self.window[2], self.window[3]
