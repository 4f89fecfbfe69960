"""Attacks on the keyed readout, run against keycam itself to measure what it protects.

Known plaintext (:func:`known_plaintext`): an attacker who can show the camera scenes they know
(and read the measurements) matches each physical position's codes, across the pairs, with the
logical positions that hold the same codes in the plain frames. Where exactly one position matches,
the layout is recovered there. The transfer is public (the spec), so the attacker applies it to
the plain frames first.

Single measurement (:func:`single_measurement_leakage`): the readout moves positions and keeps
values, so one measurement gives away the colour histogram and mean brightness exactly; the
picture's structure is what it hides (structural similarity to the plain frame near 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from firmware_sim.spec import ReadoutSpec


def known_plaintext(plains: list[np.ndarray], measurements: list[np.ndarray], spec: ReadoutSpec) -> np.ndarray:
    """Estimated layout: ``estimate[q]`` is the logical position read at step q, or -1 where ambiguous.

    ``plains``: (H, W, C) input codes; ``measurements``: the sensor's (H, W, C) output codes, same key and epoch.
    """
    table = spec.transfer_table()
    height, width, channels = plains[0].shape
    n = height * width
    plain = np.concatenate([table[p].reshape(n, channels) for p in plains], axis=1)  # (N, k*C) per logical a
    measured = np.concatenate([m.reshape(n, channels) for m in measurements], axis=1)  # (N, k*C) per physical q
    groups: dict[bytes, int] = {}
    for a, row in enumerate(plain):
        key = row.tobytes()
        groups[key] = -1 if key in groups else a  # -1: the signature is shared, so ambiguous
    return np.array([groups.get(row.tobytes(), -1) for row in measured], dtype=np.int64)


def recovered_fraction(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Fraction of positions whose logical position the attack found, and found right."""
    return float(np.mean(estimate == truth))


@dataclass(frozen=True)
class Leakage:
    mean_plain: float
    mean_measurement: float
    histogram_distance: float  # total variation between the two code histograms (0: identical)
    ssim: float  # structural similarity of the measurement to the plain frame (1: identical)


def single_measurement_leakage(plain: np.ndarray, measurement: np.ndarray, spec: ReadoutSpec) -> Leakage:
    from skimage.metrics import structural_similarity

    transferred = spec.transfer_table()[plain]
    bins = spec.output_max + 1
    hp = np.bincount(transferred.reshape(-1), minlength=bins) / transferred.size
    hm = np.bincount(measurement.reshape(-1), minlength=bins) / measurement.size
    ssim = structural_similarity(transferred.astype(np.float64), measurement.astype(np.float64),
                                 data_range=float(spec.output_max), channel_axis=2, win_size=7)
    return Leakage(float(transferred.mean()), float(measurement.mean()), float(np.abs(hp - hm).sum() / 2), float(ssim))


def correlation_neighbours(measurements: np.ndarray, k: int = 4) -> np.ndarray:
    """Ciphertext only: for each physical position, the k positions whose codes co-vary most with it.

    ``measurements``: (T, N) codes of one camera's stream under one layout (one key epoch). Neighbouring
    pixels of natural scenes co-vary, so the most correlated positions are likely true neighbours
    (Le Roux et al., NIPS 2007). Returns (N, k) physical positions.
    """
    return np.argpartition(-correlation_matrix(measurements), k, axis=1)[:, :k]


def correlation_matrix(measurements: np.ndarray) -> np.ndarray:
    """(N, N) correlation across frames of the (T, N) ``measurements``; diagonal -inf; constant positions 0."""
    z = measurements.astype(np.float64)
    z -= z.mean(axis=0)
    norms = np.linalg.norm(z, axis=0)
    z /= np.where(norms > 0, norms, 1.0)
    correlation = z.T @ z  # (N, N)
    np.fill_diagonal(correlation, -np.inf)
    return correlation


def neighbour_precision(predicted: np.ndarray, perm: np.ndarray, height: int, width: int) -> float:
    """Fraction of predicted pairs (q, p) whose logical positions are 4-neighbours in the frame."""
    logical = perm[np.arange(perm.size)]  # physical q holds logical perm[q]
    rows, cols = np.divmod(logical, width)
    pr, pc = rows[predicted], cols[predicted]  # (N, k)
    distance = np.abs(pr - rows[:, None]) + np.abs(pc - cols[:, None])
    return float(np.mean(distance == 1))
