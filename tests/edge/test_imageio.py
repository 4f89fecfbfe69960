"""Frame and measurement files: lossless, atomic, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from edge.errors import ImageFileError
from edge.imageio import read_frame, write_image


@pytest.mark.parametrize(
    "name, array",
    [
        ("a.png", np.arange(60, dtype=np.uint8).reshape(4, 5, 3)),
        ("b.png", np.arange(20, dtype=np.uint8).reshape(4, 5, 1)),
        ("c.png", (np.arange(60, dtype=np.uint16) * 1000).reshape(4, 5, 3)),
        ("d.npy", (np.arange(60, dtype=np.uint16) * 68).reshape(4, 5, 3)),
        ("e.npy", np.arange(20, dtype=np.uint8).reshape(4, 5, 1)),
    ],
)
def test_round_trips_are_lossless(tmp_path, name, array):
    path = write_image(tmp_path / name, array)
    back = read_frame(path)
    assert back.dtype == array.dtype and np.array_equal(back, array)
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left behind


def test_unwritable_outputs_are_refused_before_writing(tmp_path):
    with pytest.raises(ImageFileError, match="suffix '.jpg'.*losslessly"):
        write_image(tmp_path / "x.jpg", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ImageFileError, match="does not exist"):
        write_image(tmp_path / "missing" / "x.png", np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(ImageFileError, match="dtype float32"):
        write_image(tmp_path / "x.npy", np.zeros((2, 2, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_unreadable_inputs_are_clear_errors(tmp_path):
    with pytest.raises(ImageFileError, match="does not exist"):
        read_frame(tmp_path / "nothing.png")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not a picture")
    with pytest.raises(ImageFileError, match="not an image OpenCV can decode"):
        read_frame(junk)
    bad_npy = tmp_path / "bad.npy"
    bad_npy.write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(ImageFileError, match="not a readable .npy"):
        read_frame(bad_npy)
    floats = tmp_path / "f.npy"
    np.save(floats, np.zeros((2, 2, 3), np.float32))
    with pytest.raises(ImageFileError, match="dtype float32"):
        read_frame(floats)
    rgba = tmp_path / "rgba.npy"
    np.save(rgba, np.zeros((2, 2, 4), np.uint8))
    with pytest.raises(ImageFileError, match="alpha"):
        read_frame(rgba)
