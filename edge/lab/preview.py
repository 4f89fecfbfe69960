"""keycam preview, for key holders: a PNG strip, one row per frame: plain | private measurement |
unscrambled | the model's answer.

The plain column comes from the source (or, for a recording, from unscrambling its measurement with
the key). A detector's boxes are drawn on the plain frame and on the measurement too: over the noise,
the answer without the picture. The file shows the scene: the command warns, it is written with mode
0600, and it is meant for setting a camera up.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.errors import LabError
from edge.imageio import write_image
from edge.job import Job
from edge.lab.demo import as_bgr8, labelled
from edge.tasks import Geometry

TILE = 160  # pixels of height per tile


def _tile(image: np.ndarray, spec, bits: int | None = None) -> np.ndarray:
    picture = as_bgr8(image, spec, bits)
    scale = TILE / picture.shape[0]
    size = (max(1, round(picture.shape[1] * scale)), TILE)
    return cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST)


def _draw(tiles: list[np.ndarray], outputs: dict, geometry: Geometry) -> None:
    """A detector's boxes (camera pixels) drawn on tiles that show the model's input."""
    for item in outputs.get("detections", []) if isinstance(outputs, dict) else []:
        box = geometry.to_model(np.asarray(item["box"], np.float64))
        for tile in tiles:
            scale = tile.shape[0] / geometry.height
            x0, y0, x1, y1 = (int(round(v * scale)) for v in box)
            cv2.rectangle(tile, (x0, y0), (x1, y1), (0, 255, 0), 2)
            cv2.putText(tile, f"{item['class']} {item['score']:.2f}", (x0, max(12, y0 - 4)),
                        cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 255, 0), 1, cv2.LINE_AA)


def _describe(outputs: dict) -> str:
    if "counts" in outputs:
        counts = ", ".join(f"{n} {name}" for name, n in outputs["counts"].items()) or "nothing found"
        return f"detections: {counts}"
    if "classes" in outputs:
        return "\n".join(f"{name}: {value['area']:.1%}" for name, value in outputs["classes"].items())
    return "\n".join(f"{name}: {value.get('class', value.get('label', value))}"
                     + (f" ({value['score']:.2f})" if isinstance(value, dict) and "score" in value else "")
                     for name, value in outputs.items())


def _answer(text: str, width: int) -> np.ndarray:
    card = np.full((TILE, width, 3), 255, np.uint8)
    for i, line in enumerate(text.split("\n")[:6]):
        cv2.putText(card, line, (6, 24 + 22 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    return card


def preview(job: Job, out: Path, frames: int = 4) -> Path:
    """The strip for the first ``frames`` frames of the job's source, read out and answered as the job would."""
    if frames < 1:
        raise LabError(f"--frames {frames}: give at least one frame to preview")
    pipeline, readout = job.pipeline, job.readout
    manifest, spec = pipeline.manifest, pipeline.manifest.spec
    source = job.plain_source or job.source  # the plain frames themselves, where there are any
    rows = []
    with source:
        for frame in source:
            if frame.measured:
                measured = frame
                plain = readout.inverse(frame.image, frame.epoch)
                plain_bits = spec.output_bits
            else:
                plain = readout.prepare(frame.image)
                measured = readout.read(frame)
                plain_bits = 16 if spec.is_msb else spec.input_bits
                if spec.is_bayer:  # the mosaic, shown one pixel per cell as the measurement is
                    plain, plain_bits = spec.cells(plain), spec.input_bits
            result = pipeline.process(measured)
            measurement = measured.image
            unscrambled = readout.inverse(measurement, measured.epoch)
            if spec.channels == 3 and manifest.input.channel_order == "rgb":  # show pictures in OpenCV's B,G,R
                plain, measurement, unscrambled = plain[..., ::-1], measurement[..., ::-1], unscrambled[..., ::-1]
            text = _describe(result.outputs)
            tiles = [_tile(plain, spec, plain_bits), _tile(measurement, spec), _tile(unscrambled, spec)]
            _draw(tiles[:2], result.outputs, Geometry.of(*pipeline.input_size, measured.source_size))
            tiles.append(_answer(f"frame {frame.sequence}\n{text}", tiles[0].shape[1] * 2))
            rows.append(np.hstack(tiles))
            if len(rows) >= frames:
                break
    if not rows:
        raise LabError("the source gave no frame to preview")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = labelled(np.vstack(rows), "plain | private measurement | unscrambled (key) | answer")
    return write_image(out, header, private=True)  # plain frames: mode 0600, like a key
