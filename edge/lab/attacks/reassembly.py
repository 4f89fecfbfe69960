"""Ciphertext only, to the end: reassembling the picture from a camera's stream of measurements.

An eavesdropper sees T measurements of one camera under one layout (one key epoch): an array
``m`` of shape (T, N), N = H * W physical positions, and wants the permutation that puts them back
on the H x W grid. Neighbouring pixels of natural scenes co-vary (Le Roux, Le Roux, Bach, Fitzgibbon
and Brisson, "Learning the 2-D topology of images", NIPS 2007), so the positions' correlations
across frames carry the grid's geometry. The reconstruction (:func:`reassemble`) works in four steps.

1. **Correlation graph.** With z the per-position standardised codes (each column of ``m`` minus its
   mean, divided by its norm), ``C = z^T z`` is the (N, N) correlation matrix. Each position is
   linked to its k most correlated positions; the symmetrised, unweighted k-NN graph A (a_qp = 1 if
   either is among the other's k nearest) is, with enough frames, nearly the grid graph with its
   diagonals: ``edge.lab.attacks.known_plaintext.correlation_neighbours`` measures how nearly.

2. **Laplacian eigenmap.** For the grid graph, the smallest non-trivial eigenvectors of the
   random-walk Laplacian ``I - D^-1 A`` (D the degrees) are ``cos(pi (r + 1/2) / H)`` and
   ``cos(pi (c + 1/2) / W)``, r and c a position's row and column: monotone in each coordinate, so
   the pair (e2, e3) is a picture of the grid, folded by nothing (Belkin and Niyogi 2003). They are
   computed as ``D^-1/2 v`` from the top eigenvectors v of the normalised adjacency
   ``D^-1/2 A D^-1/2`` (sparse Lanczos, scipy's ``eigsh``). On a square grid e2 and e3 share one
   eigenvalue, so the solver returns an arbitrary rotation of the pair; with noisy graphs the
   embedding is also sheared and bent (a quadrilateral with curved sides rather than a square).

3. **Onto the grid.** For each angle theta of a scan over [0, pi), the embedding is rotated by
   theta and standardised; its four corners are the points extreme along the diagonals (+-1, +-1);
   the bilinear map of the unit square onto that quadrilateral is inverted per point (Newton
   iterations) to coordinates (s, t) in about [0, 1]^2; and the points are dealt onto the grid by
   sorting: the W smallest t fill row 0, the next W row 1, and so on, each row ordered by s. The
   angle kept is the one whose grid has the highest *ciphertext-only* score: the mean correlation
   ``C[q, p]`` over grid-adjacent pairs (horizontal plus vertical). The same score picks k among a
   few values. Nothing in this uses the key or a plain frame.

4. **Refinement (diffusion).** Each position moves to the mean grid coordinate of its k most
   correlated positions, and the grid is dealt again by sorting; the best-scoring placement of a
   few rounds is kept (a discrete Laplacian smoothing step, which repairs local misorderings).

The result ``placement[q]`` is the estimated grid index (row * W + col) of physical position q;
``unscramble(measurement, placement)`` puts a measurement back in that order. The correlation
graph is invariant under the grid's symmetries (the dihedral group: 4 rotations and their mirror
images on a square grid, 4 of the 8 on a rectangular one), so the estimate is right at best up to
one of them: :func:`reconstruction_quality` reports the best PSNR over those symmetries (and that
symmetry's SSIM), as an attacker would pick the upright view by eye.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import LabError
from edge.lab.attacks.known_plaintext import correlation_matrix


@dataclass(frozen=True)
class Reassembly:
    placement: np.ndarray  # (N,) estimated grid index of each physical position
    score: float  # mean correlation of grid-adjacent positions (ciphertext only; higher is better)
    k: int  # neighbours per position in the graph that gave it


def grid_score(correlation: np.ndarray, placement: np.ndarray, height: int, width: int) -> float:
    """Mean correlation of horizontally plus vertically adjacent grid cells under ``placement``."""
    at = np.empty_like(placement)
    at[placement] = np.arange(placement.size)  # at[g]: the physical position placed at grid index g
    grid = at.reshape(height, width)
    return float(correlation[grid[:, :-1], grid[:, 1:]].mean() + correlation[grid[:-1], grid[1:]].mean())


def _deal(rows_key: np.ndarray, cols_key: np.ndarray, height: int, width: int) -> np.ndarray:
    """Grid index per point: the W smallest ``rows_key`` fill row 0 (ordered by ``cols_key``), and so on."""
    by_row = np.argsort(rows_key, kind="stable").reshape(height, width)  # (H, W) point ids, row by row
    in_row = np.argsort(cols_key[by_row], axis=1, kind="stable")  # (H, W) column order within each row
    placement = np.empty(rows_key.size, dtype=np.int64)
    placement[np.take_along_axis(by_row, in_row, axis=1)] = np.arange(rows_key.size).reshape(height, width)
    return placement


def _inverse_bilinear(points: np.ndarray, corners: list[np.ndarray], steps: int = 20) -> np.ndarray:
    """(s, t) with ``points = a + s (b - a) + t (d - a) + s t (a - b + c - d)``, corners a, b, c, d in turn."""
    a, b, c, d = corners
    e1, e2, e3 = b - a, d - a, a - b + c - d
    s = np.full(len(points), 0.5)
    t = np.full(len(points), 0.5)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(steps):
            f = a + s[:, None] * e1 + t[:, None] * e2 + (s * t)[:, None] * e3 - points  # (N, 2) residual
            js = e1 + t[:, None] * e3  # (N, 2) d/ds
            jt = e2 + s[:, None] * e3  # (N, 2) d/dt
            det = js[:, 0] * jt[:, 1] - js[:, 1] * jt[:, 0]
            det = np.where(np.abs(det) > 1e-12, det, 1e-12)
            s = s - (f[:, 0] * jt[:, 1] - f[:, 1] * jt[:, 0]) / det
            t = t - (js[:, 0] * f[:, 1] - js[:, 1] * f[:, 0]) / det
    return np.nan_to_num(np.stack([s, t], axis=1), nan=0.5, posinf=1.0, neginf=0.0)  # (N, 2)


def _knn(correlation: np.ndarray, k: int) -> np.ndarray:
    return np.argpartition(-correlation, k, axis=1)[:, :k]  # (N, k)


def _eigenmap(neighbours: np.ndarray) -> np.ndarray:
    """(N, 2): the two smallest non-trivial eigenvectors of the random-walk Laplacian of the k-NN graph."""
    try:
        from scipy import sparse
        from scipy.sparse.linalg import eigsh
    except ImportError as error:  # scipy comes with scikit-image (the demo and test extras)
        raise ImportError("the reassembly attack needs scipy: pip install -e '.[test]'") from error
    n, k = neighbours.shape
    directed = sparse.csr_matrix((np.ones(n * k), (np.repeat(np.arange(n), k), neighbours.ravel())), shape=(n, n))
    adjacency = directed.maximum(directed.T)
    scale = sparse.diags(1.0 / np.sqrt(np.asarray(adjacency.sum(axis=1)).ravel()))
    start = np.random.default_rng(0).standard_normal(n)  # deterministic Lanczos start
    values, vectors = eigsh(scale @ adjacency @ scale, k=3, which="LA", v0=start)
    order = np.argsort(-values)
    return (scale @ vectors[:, order])[:, 1:3]  # (N, 2) drop the trivial (constant) eigenvector


def _onto_grid(embedding: np.ndarray, correlation: np.ndarray, height: int, width: int,
               angles: int = 72) -> tuple[np.ndarray, float]:
    best: tuple[np.ndarray, float] | None = None
    for theta in np.linspace(0.0, np.pi, angles, endpoint=False):
        rotation = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
        points = embedding @ rotation
        points = (points - points.mean(axis=0)) / np.where(points.std(axis=0) > 0, points.std(axis=0), 1.0)
        corners = [points[np.argmax(points @ np.array(d))] for d in ((-1, -1), (1, -1), (1, 1), (-1, 1))]
        st = _inverse_bilinear(points, corners)
        placement = _deal(st[:, 1], st[:, 0], height, width)
        score = grid_score(correlation, placement, height, width)
        if best is None or score > best[1]:
            best = (placement, score)
    return best


def _refine(placement: np.ndarray, score: float, neighbours: np.ndarray, correlation: np.ndarray,
            height: int, width: int, rounds: int = 20) -> tuple[np.ndarray, float]:
    best = (placement, score)
    jitter = np.arange(placement.size) * 1e-9  # deterministic tie-breaking
    for _ in range(rounds):
        rows, cols = np.divmod(placement, width)
        target_rows = rows[neighbours].mean(axis=1)  # (N,) mean row of the k most correlated positions
        target_cols = cols[neighbours].mean(axis=1)
        placement = _deal(target_rows + jitter, target_cols, height, width)
        score = grid_score(correlation, placement, height, width)
        if score > best[1]:
            best = (placement, score)
    return best


def reassemble(measurements: np.ndarray, height: int, width: int, ks: tuple[int, ...] = (6, 8, 10)) -> Reassembly:
    """Estimated grid placement of each physical position from (T, N) measurements of one layout (no key).

    ``ks``: graph sizes to try; the one whose placement scores best (ciphertext only) is kept.
    """
    measurements = np.asarray(measurements)
    if measurements.ndim != 2 or measurements.shape[1] != height * width:
        raise LabError(f"measurements of shape {measurements.shape} are not (T, {height} * {width}) codes; "
                         "reshape each frame to one row of positions (average the channels of colour frames)")
    if len(measurements) < 2:
        raise LabError(f"{len(measurements)} measurement(s): correlating positions needs at least 2 frames")
    correlation = correlation_matrix(measurements)
    best: Reassembly | None = None
    for k in ks:
        neighbours = _knn(correlation, k)
        placement, score = _onto_grid(_eigenmap(neighbours), correlation, height, width)
        placement, score = _refine(placement, score, neighbours, correlation, height, width)
        if best is None or score > best.score:
            best = Reassembly(placement, score, k)
    return best


def unscramble(measurement: np.ndarray, placement: np.ndarray) -> np.ndarray:
    """A (H, W[, C]) measurement put in the estimated order: grid index placement[q] gets physical q's value."""
    height, width = measurement.shape[:2]
    flat = measurement.reshape(height * width, -1)  # (N, C)
    out = np.empty_like(flat)
    out[placement] = flat
    return out.reshape(measurement.shape)


def symmetries(image: np.ndarray) -> list[np.ndarray]:
    """The images of ``image`` under the grid's symmetries: 8 on a square grid, 4 on a rectangular one."""
    out = []
    for turns in (0, 1, 2, 3) if image.shape[0] == image.shape[1] else (0, 2):
        turned = np.rot90(image, turns)
        out.extend([turned, turned[:, ::-1]])
    return out


def psnr(estimate: np.ndarray, truth: np.ndarray, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB (inf if identical)."""
    mse = float(np.mean((estimate.astype(np.float64) - truth.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(data_range ** 2 / mse))


@dataclass(frozen=True)
class Quality:
    psnr: float  # dB, best over the symmetries
    ssim: float  # structural similarity of that symmetry's image (1: identical)
    symmetry: int  # index into symmetries(): 0 is the estimate as it is


def reconstruction_quality(estimate: np.ndarray, truth: np.ndarray, data_range: float) -> Quality:
    """PSNR and SSIM of ``estimate`` (H, W[, C]) against ``truth``, at the symmetry with the best PSNR."""
    from skimage.metrics import structural_similarity  # test / demo extra

    scores = [psnr(candidate, truth, data_range) for candidate in symmetries(estimate)]
    best = int(np.argmax(scores))
    candidate = symmetries(estimate)[best]
    channel_axis = 2 if truth.ndim == 3 and truth.shape[2] > 1 else None
    a = candidate.astype(np.float64).squeeze()
    b = truth.astype(np.float64).squeeze()
    side = min(b.shape[:2])
    ssim = structural_similarity(a, b, data_range=data_range, channel_axis=channel_axis,
                                 win_size=min(7, side if side % 2 else side - 1))
    return Quality(scores[best], float(ssim), best)
