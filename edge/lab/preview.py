"""keycam preview, for key holders: a PNG strip, one row per frame: plain | private measurement |
unscrambled | the model's answer | the whole camera frame.

The last tile is the camera frame as the source gave it, with the window the model sees outlined
(the model's framing: a centre crop's window, or the whole frame for a letterbox or a stretch) and the
detections drawn where they are in camera pixels (the run's own geometry, ``edge.answers``).

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
from edge.seal import Opener
from edge.tasks import Geometry

TILE = 160  # pixels of height per tile


def _tile(image: np.ndarray, spec, bits: int | None = None) -> np.ndarray:
    picture = as_bgr8(image, spec, bits)
    scale = TILE / picture.shape[0]
    size = (max(1, round(picture.shape[1] * scale)), TILE)
    return cv2.resize(picture, size, interpolation=cv2.INTER_NEAREST)


GREEN, BLUE = (0, 255, 0), (255, 0, 0)


def _points(values, geometry: Geometry, scale: float) -> np.ndarray:
    """Camera-pixel (x, y) pairs -> integer tile pixels, through the model's input (k, 2)."""
    pairs = np.asarray(values, np.float64).reshape(-1, 2)  # (k, 2) camera pixels
    return np.round(geometry.to_model(pairs.reshape(1, -1)).reshape(-1, 2) * scale).astype(np.int32)


def _draw_item(tile: np.ndarray, item: dict, geometry: Geometry) -> None:
    """One answer on one tile: its mask (translucent) and outline, rotated corners or box, keypoints, label."""
    scale = tile.shape[0] / geometry.height
    rings = [_points(ring, geometry, scale) for ring in (item.get("mask") or {}).get("polygons", []) if ring]
    if rings:
        layer = tile.copy()
        cv2.fillPoly(layer, rings, GREEN)  # even-odd over every ring: holes stay holes
        cv2.addWeighted(layer, 0.35, tile, 0.65, 0, dst=tile)
        cv2.polylines(tile, rings, True, GREEN, 1)
    if item.get("corners"):
        cv2.polylines(tile, [_points(item["corners"], geometry, scale)], True, GREEN, 2)
    else:
        x0, y0, x1, y1 = (int(v) for v in _points(item["box"], geometry, scale).reshape(-1))
        cv2.rectangle(tile, (x0, y0), (x1, y1), GREEN, 2)
    for point in item.get("keypoints") or []:
        if len(point) == 3 and point[2] < 0.5:
            continue  # not visible
        x, y = _points(point[:2], geometry, scale)[0]
        cv2.circle(tile, (int(x), int(y)), 2, BLUE, -1)
    x0, y0 = _points(item["box"][:2], geometry, scale)[0]
    cv2.putText(tile, f"{item['class']} {item['score']:.2f}", (int(x0), max(12, int(y0) - 4)),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, GREEN, 1, cv2.LINE_AA)


def _draw(tiles: list[np.ndarray], outputs: dict, geometry: Geometry) -> None:
    """The answers (camera pixels) drawn on tiles that show the model's input: boxes, rotated boxes, keypoints,
    instance masks."""
    for item in outputs.get("detections", []) if isinstance(outputs, dict) else []:
        for tile in tiles:
            _draw_item(tile, item, geometry)


YELLOW = (0, 255, 255)


def _draw_zones(tiles: list[np.ndarray], camera_tile: np.ndarray | None, zones: dict, geometry: Geometry,
                camera_height: int) -> None:
    """Each ``[zones.NAME]`` polygon (camera pixels), named at its first corner: through the model's input on the
    tiles that show it (a crop's zone reaches past the tile's edge), and as it is on the camera frame's tile."""
    for name, zone in zones.items():
        corners = np.asarray(zone.coordinates, np.float64)  # (k, 2) camera pixels
        drawn = [(tile, _points(corners, geometry, tile.shape[0] / geometry.height)) for tile in tiles]
        if camera_tile is not None:
            scale = camera_tile.shape[0] / camera_height
            drawn.append((camera_tile, np.round(corners * scale).astype(np.int32)))
        for tile, points in drawn:
            cv2.polylines(tile, [points], True, YELLOW, 1)
            x, y = points[0]
            cv2.putText(tile, name, (int(x) + 2, max(10, int(y) - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, YELLOW, 1,
                        cv2.LINE_AA)


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


def _camera(picture: np.ndarray, outputs: dict, geometry: Geometry, spec) -> np.ndarray:
    """The whole camera frame, the window the model sees outlined (blue), the detections on it (green)."""
    shown = as_bgr8(picture if picture.ndim == 3 else picture[:, :, np.newaxis], spec, 8)  # its own 8 bits
    scale = TILE / shown.shape[0]
    tile = cv2.resize(shown, (max(1, round(shown.shape[1] * scale)), TILE), interpolation=cv2.INTER_AREA)
    x, y, w, h = (v * scale for v in geometry.window)
    cv2.rectangle(tile, (int(round(x)), int(round(y))), (int(round(x + w)) - 1, int(round(y + h)) - 1), (255, 0, 0), 1)
    for item in outputs.get("detections", []) if isinstance(outputs, dict) else []:
        x0, y0, x1, y1 = (int(round(v * scale)) for v in item["box"])
        cv2.rectangle(tile, (x0, y0), (x1, y1), (0, 255, 0), 1)
    return tile


def _codes(frame, opener: Opener | None) -> np.ndarray:
    """A measurement's codes: opened first when it is sealed (this preview's own opener: the key holder's)."""
    return opener.open(frame).image if frame.seal is not None and opener is not None else frame.image


def _row(job: Job, frame, spec) -> tuple[np.ndarray | None, object, np.ndarray | None]:
    """(the sensor's plain frame, None for a recording's; its measured twin; the camera frame or None)."""
    readout = job.readout
    if frame.measured:
        return None, frame, None
    plain = readout.prepare(frame.image)
    measured = readout.read(frame)
    if spec.is_bayer:  # the mosaic, shown one pixel per cell as the measurement is
        plain = spec.cells(plain)
    camera = frame.image if frame.image.dtype == np.uint8 and frame.image.shape[-1] in (1, 3) else None
    return plain, measured, camera


def preview(job: Job, out: Path, frames: int = 4) -> Path:
    """The strip for the first ``frames`` frames of the job's source, read out and answered as the job would."""
    if frames < 1:
        raise LabError(f"--frames {frames}: give at least one frame to preview")
    pipeline, readout = job.pipeline, job.readout
    opener = Opener(job.key, readout.spec) if readout.spec.is_sealed else None  # the key holder's, for the restore
    manifest, spec = pipeline.manifest, pipeline.manifest.spec
    source = job.plain_source or job.source  # the plain frames themselves, where there are any
    rows = []
    with source:
        for frame in source:
            plain, measured, camera = _row(job, frame, spec)
            codes = _codes(measured, opener)  # opened once, by the key holder: the measurement's own codes
            if plain is None:  # a recording: the plain frame is the key holder's restore of its measurement
                plain = readout.inverse(codes, measured.epoch)
            plain_bits = spec.output_bits if frame.measured else (spec.input_bits if spec.is_bayer else
                                                                    16 if spec.is_msb else spec.input_bits)
            result = pipeline.process(measured)
            measurement = measured.image  # as it left the sensor: sealed ciphertext under a sealed spec
            unscrambled = readout.inverse(codes, measured.epoch)
            if spec.channels == 3 and manifest.input.channel_order == "rgb":  # show pictures in OpenCV's B,G,R
                plain, measurement, unscrambled = plain[..., ::-1], measurement[..., ::-1], unscrambled[..., ::-1]
            geometry = pipeline.answers.geometry(measured) if pipeline.answers is not None else \
                Geometry.of(*pipeline.input_size, measured.source_size, readout.fit, 2 if spec.is_bayer else 1)
            tiles = [_tile(plain, spec, plain_bits), _tile(measurement, spec), _tile(unscrambled, spec)]
            _draw(tiles[:2], result.outputs, geometry)
            tiles.append(_answer(f"frame {frame.sequence}\n{_describe(result.outputs)}", tiles[0].shape[1] * 2))
            if camera is not None:
                tiles.append(_camera(camera, result.outputs, geometry, spec))
            _draw_zones(tiles[:2], tiles[-1] if camera is not None else None, job.config.zones, geometry,
                        camera.shape[0] if camera is not None else 1)
            rows.append(np.hstack(tiles))
            if len(rows) >= frames:
                break
    if not rows:
        raise LabError("the source gave no frame to preview")
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    header = labelled(np.vstack(rows), f"plain | private measurement | unscrambled (key) | answer | camera frame, "
                                       f"the model's {readout.fit} window in blue")
    return write_image(out, header, private=True)  # plain frames: mode 0600, like a key
