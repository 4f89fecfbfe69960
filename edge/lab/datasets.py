"""Labelled image sets for evaluation: IDX files (MNIST, Fashion-MNIST) and labelled image folders.

- IDX (``*-images-idx3-ubyte[.gz]`` with ``*-labels-idx1-ubyte[.gz]``): the format of MNIST and
  Fashion-MNIST (Debian's ``dataset-fashion-mnist`` installs them under
  ``/usr/share/datasets/fashion-mnist/``).
- A folder of images whose label is the number after the last underscore of the file name
  (``cifar10_07_9.png`` is class 9), as foolbox ships its samples (:func:`foolbox_images`: the 20
  real test images of each dataset that ship inside the ``foolbox`` wheel).
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from edge.errors import ImageFileError
from edge.imageio import read_frame
from firmware_sim.words import is_image

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX array (optionally gzip-compressed)."""
    path = Path(path)
    if not path.is_file():
        raise ImageFileError(f"IDX file '{path}' does not exist")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise ImageFileError(f"'{path}' is not an IDX file (bad magic number)")
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank)]
    dtype = np.dtype(_IDX_TYPES[data[2]])
    body = np.frombuffer(data, dtype=dtype, offset=4 + 4 * rank)
    if body.size != int(np.prod(dims)):
        raise ImageFileError(f"IDX file '{path}' is truncated: {body.size} values for shape {dims}")
    return body.reshape(dims)


def fashion_mnist(split: str = "t10k", folder: Path = FASHION_MNIST) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28, 1) uint8, labels (N,) int64) of Fashion-MNIST's ``train`` or ``t10k`` split."""
    if not folder.is_dir():
        raise ImageFileError(f"Fashion-MNIST is not installed at '{folder}'; `apt-get install dataset-fashion-mnist`")
    images = read_idx(folder / f"{split}-images-idx3-ubyte.gz")
    labels = read_idx(folder / f"{split}-labels-idx1-ubyte.gz")
    return images[:, :, :, np.newaxis], labels.astype(np.int64)


def labelled_folder(folder: str | Path) -> tuple[list[Path], np.ndarray]:
    """Image paths (sorted) and labels from names like ``name_LABEL.png``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"image folder '{folder}' does not exist")
    paths, labels = [], []
    for path in sorted(folder.iterdir()):
        if not is_image(path):
            continue
        try:
            labels.append(int(path.stem.rsplit("_", 1)[1]))
        except (IndexError, ValueError):
            raise ImageFileError(f"image '{path.name}' has no label after its last underscore") from None
        paths.append(path)
    if not paths:
        raise ImageFileError(f"image folder '{folder}' holds no labelled images")
    return paths, np.array(labels)


def load_images(paths: list[Path]) -> np.ndarray:
    frames = [read_frame(p) for p in paths]
    if len({f.shape for f in frames}) != 1:
        raise ImageFileError("the images differ in size; resize them to the model's input first")
    return np.stack(frames)


def load_labelled(folder: str | Path) -> tuple[np.ndarray, np.ndarray, str]:
    """Frames (N, H, W, C), labels and the channel order of the frames, from any supported labelled set.

    A folder holding IDX files (``*-images-idx3-ubyte[.gz]`` and the matching labels; the test split
    when there are several), or a folder of images labelled by name (OpenCV's B,G,R order).
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageFileError(f"data folder '{folder}' does not exist")
    images = sorted(folder.glob("*-images-idx3-ubyte*"))
    if images:
        chosen = next((p for p in images if p.name.startswith("t10k")), images[0])
        labels = chosen.with_name(chosen.name.replace("images-idx3", "labels-idx1"))
        frames = read_idx(chosen)
        return frames[:, :, :, np.newaxis], read_idx(labels).astype(np.int64), "gray"
    paths, labels = labelled_folder(folder)
    return load_images(paths), labels, "bgr"


def foolbox_images(dataset: str = "cifar10") -> list[tuple[Path, int]]:
    """foolbox's real test images of a dataset and their labels (from the file names)."""
    found = importlib.util.find_spec("foolbox")
    if found is None or not found.submodule_search_locations:
        raise ImageFileError("foolbox is not installed: pip install --no-deps foolbox==3.3.4")
    folder = Path(next(iter(found.submodule_search_locations))) / "data"
    files = sorted(folder.glob(f"{dataset}_*.png"))
    return [(path, int(path.stem.rsplit("_", 1)[1])) for path in files]
