"""Frame sources: image folders and OpenCV video files, and fitting frames to the model's input."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.lab.demo import shipped_photo
from edge.errors import ImageFileError
from edge.sensor import fit_frame
from edge.sources.folder import FolderSource
from edge.sources.opencv import OpenCVSource


@pytest.fixture
def photo() -> np.ndarray:
    return cv2.imread(str(shipped_photo()))  # (300, 451, 3) B,G,R


def test_folder_yields_sorted_frames_and_skips_corrupt_files(tmp_path, photo):
    for i in (2, 0, 1):
        cv2.imwrite(str(tmp_path / f"frame_{i:03d}.png"), photo[i * 10: i * 10 + 40, :60])
    (tmp_path / "frame_001b.png").write_bytes(b"not a png")  # sorts between 001 and 002
    (tmp_path / "notes.txt").write_text("ignored")
    with FolderSource(tmp_path) as source:
        frames = list(source)
    assert [f.origin for f in frames] == ["frame_000.png", "frame_001.png", "frame_002.png"]
    assert [f.sequence for f in frames] == [0, 1, 2]
    assert source.skipped == 1 and not source.live
    assert np.array_equal(frames[1].image, photo[10:50, :60])


def test_folder_errors(tmp_path):
    with pytest.raises(ImageFileError, match="does not exist"):
        FolderSource(tmp_path / "absent").open()
    with pytest.raises(ImageFileError, match="holds no images"):
        FolderSource(tmp_path).open()


def test_video_file_frames_come_back_in_order(tmp_path, photo):
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    shades = [0, 60, 120, 180, 240]
    for shade in shades:
        writer.write(np.full((48, 64, 3), shade, np.uint8))
    writer.release()
    source = OpenCVSource(path)
    assert not source.live
    with source:
        frames = list(source)
    assert len(frames) == len(shades)
    assert [int(round(f.image.mean())) for f in frames] == pytest.approx(shades, abs=3)  # MJPG is lossy
    assert [f.timestamp_ns for f in frames] == sorted(f.timestamp_ns for f in frames)


def test_opencv_errors_and_kinds(tmp_path):
    with pytest.raises(ImageFileError, match="does not exist"):
        OpenCVSource(tmp_path / "absent.mp4").open()
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"junk")
    with pytest.raises(ImageFileError, match="cannot open"):
        OpenCVSource(junk).open()
    assert OpenCVSource(0).live and OpenCVSource("rtsp://127.0.0.1/x").live


@pytest.mark.parametrize("target", [(32, 32), (48, 64), (100, 40), (300, 451), (600, 900)])
def test_fit_frame_crops_to_aspect_then_resizes(photo, target):
    out = fit_frame(photo, *target)
    assert out.shape == (*target, 3) and out.dtype == np.uint8


def test_fit_frame_is_a_centre_crop():
    image = np.zeros((40, 80, 1), np.uint8)
    image[:, 20:60] = 200  # the centre square
    out = fit_frame(image, 20, 20)
    assert out.shape == (20, 20, 1) and out.min() == 200
