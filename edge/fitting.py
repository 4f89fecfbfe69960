"""The frame-fitting rule: how a camera frame of S_w x S_h pixels becomes the model's W x H, one rule for
the readout (``edge.sensor``) and for mapping answers back (``edge.tasks.geometry``).

A model says how it wants its frames (``InputSpec.fit``, from its metadata or ``keyify --fit``):

- ``crop`` (keycam's own, the default): keep the centred window of the model's aspect ratio, then
  resize it (area-average down, bilinear up)::

      if S_h * W > S_w * H:  window = (0, top, S_w, k),  k = max(1, round(S_w * H / W)), top = (S_h - k) // 2
      else:                  window = (left, 0, k, S_h), k = max(1, round(S_h * W / H)), left = (S_w - k) // 2

- ``letterbox`` (ultralytics' ``LetterBox``, centred, ``auto`` off): scale by r = min(W / S_w, H / S_h),
  to n_w = max(1, round(S_w r)) by n_h = max(1, round(S_h r)) (bilinear), then pad with the model's pad
  value: left = round((W - n_w) / 2 - 0.1), top = round((H - n_h) / 2 - 0.1) (Python's rounding, as
  ultralytics rounds), the rest right and below. The whole frame is seen.
- ``stretch`` (ultralytics' ``scale_fill``, RT-DETR's): resize to W x H (bilinear), aspect not kept.

Each is a per-axis affine map from camera pixels to model pixels, ``m = c * scale + offset``, over
the window of the camera frame the model sees (:class:`Plan`). For a Bayer readout the fitting runs on
each colour plane, the grid of 2x2 cells (``cells = 2``): the plan is made on that grid and scaled
back to camera pixels, so the mapping is the one the readout applied, rounding included.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from firmware_sim.manifest import FITS


@dataclass(frozen=True)
class Plan:
    """How one frame size is fitted: the window it keeps, the size it is resized to, the padding around it."""

    window: tuple[int, int, int, int]  # (x, y, w, h) of the source kept, source pixels
    resized: tuple[int, int]  # (width, height) the window is resized to
    pads: tuple[int, int, int, int]  # left, top, right, bottom, model pixels (letterbox only)

    @property
    def scale(self) -> tuple[float, float]:
        """Model pixels per source pixel, x and y."""
        return self.resized[0] / self.window[2], self.resized[1] / self.window[3]

    @property
    def offset(self) -> tuple[float, float]:
        """Where source pixel (0, 0)'s corner lands in the model's input, x and y."""
        sx, sy = self.scale
        return self.pads[0] - self.window[0] * sx, self.pads[1] - self.window[1] * sy


def plan(source_w: int, source_h: int, width: int, height: int, fit: str = "crop") -> Plan:
    """The fitting of a source_w x source_h frame to a width x height model under ``fit``."""
    if fit not in FITS:
        raise ValueError(f"fit {fit!r} is not one of {', '.join(FITS)}")
    if fit == "stretch":
        return Plan((0, 0, source_w, source_h), (width, height), (0, 0, 0, 0))
    if fit == "letterbox":
        r = min(width / source_w, height / source_h)
        new_w, new_h = max(round(source_w * r), 1), max(round(source_h * r), 1)
        dw, dh = (width - new_w) / 2, (height - new_h) / 2
        left, top = round(dw - 0.1), round(dh - 0.1)
        right, bottom = width - new_w - left, height - new_h - top
        return Plan((0, 0, source_w, source_h), (new_w, new_h), (left, top, right, bottom))
    if source_h * width > source_w * height:  # too tall: crop rows
        keep = max(1, round(source_w * height / width))
        return Plan((0, (source_h - keep) // 2, source_w, keep), (width, height), (0, 0, 0, 0))
    if source_h * width < source_w * height:  # too wide: crop columns
        keep = max(1, round(source_h * width / height))
        return Plan(((source_w - keep) // 2, 0, keep, source_h), (width, height), (0, 0, 0, 0))
    return Plan((0, 0, source_w, source_h), (width, height), (0, 0, 0, 0))


def apply(image: np.ndarray, height: int, width: int, fit: str = "crop", pad: int = 0) -> np.ndarray:
    """``image`` (H, W, C) or (H, W) brought to (height, width, C) by :func:`plan`; ``pad``: the letterbox's
    value, in the image's own units. Integer codes keep their dtype."""
    rows, cols = image.shape[:2]
    if (rows, cols) == (height, width):
        return image if image.ndim == 3 else image[:, :, np.newaxis]  # (H, W) -> (H, W, 1)
    chosen = plan(cols, rows, width, height, fit)
    x, y, w, h = chosen.window
    kept = np.ascontiguousarray(image[y:y + h, x:x + w])
    if fit == "crop":
        shrinking = h >= height and w >= width
        interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    else:  # ultralytics' LetterBox resizes bilinearly whatever the direction
        interpolation = cv2.INTER_LINEAR
    resized = kept if (w, h) == chosen.resized else cv2.resize(kept, chosen.resized, interpolation=interpolation)
    if resized.ndim == 2:
        resized = resized[:, :, np.newaxis]  # (h, w) -> (h, w, 1)
    left, top, right, bottom = chosen.pads
    if not any(chosen.pads):
        return resized
    framed = np.full((height, width, resized.shape[2]), pad, resized.dtype)  # the padding, then the picture in it
    framed[top:top + resized.shape[0], left:left + resized.shape[1]] = resized
    return framed
