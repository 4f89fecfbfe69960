"""keycam preview, for key holders: a PNG strip, one row per frame: plain | private measurement |
unscrambled | the model's answer.

The plain column comes from the source (or, for a recording, from unscrambling its measurement with
the key). The file shows the scene: the command warns, and it is meant for setting a camera up.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.demo import as_bgr8, labelled
from edge.imageio import write_image
from edge.pipeline import Pipeline
from edge.sources.base import Source, to_sensor

TILE = 160  # pixels of height per tile


def _tile(image: np.ndarray, spec) -> np.ndarray:
    picture = as_bgr8(image, spec)
    scale = TILE / picture.shape[0]
    size = (max(1, round(picture.shape[1] * scale)), TILE)
    return cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST)


def _answer(text: str, width: int) -> np.ndarray:
    card = np.full((TILE, width, 3), 255, np.uint8)
    for i, line in enumerate(text.split("\n")[:6]):
        cv2.putText(card, line, (6, 24 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return card


def preview(source: Source, pipeline: Pipeline, out: Path, frames: int = 4) -> Path:
    manifest = pipeline.manifest
    spec = manifest.spec
    rows = []
    with source:
        for frame in source:
            if frame.measured:
                measurement = frame.image
                plain = pipeline.transform.inverse(measurement, frame.epoch)
            else:
                plain = to_sensor(frame.image, spec, pipeline.height, pipeline.width, pipeline.source_order,
                                  manifest.input.channel_order)
                measurement = pipeline.transform(plain, manifest.epoch)
            result, _ = pipeline.process(frame)
            unscrambled = pipeline.transform.inverse(measurement, manifest.epoch)
            if spec.channels == 3 and manifest.input.channel_order == "rgb":  # show pictures in OpenCV's B,G,R
                plain, measurement, unscrambled = plain[..., ::-1], measurement[..., ::-1], unscrambled[..., ::-1]
            text = "\n".join(f"{name}: {value.get('class', value.get('label', value))}"
                             + (f" ({value['score']:.2f})" if "score" in value else "")
                             for name, value in result.outputs.items())
            tiles = [_tile(plain, spec), _tile(measurement, spec), _tile(unscrambled, spec)]
            tiles.append(_answer(f"frame {frame.sequence}\n{text}", tiles[0].shape[1] * 2))
            rows.append(np.hstack(tiles))
            if len(rows) >= frames:
                break
    if not rows:
        raise ValueError("the source gave no frame to preview")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = labelled(np.vstack(rows), "plain | private measurement | unscrambled (key) | answer")
    return write_image(out, header)
