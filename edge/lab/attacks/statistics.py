"""A key-independent attacker: classify measurements from their code statistics alone.

The paper's readout moves codes and changes none, so a measurement x' = x[L0] has exactly its frame's multiset
of codes. Any function of that multiset (the code histogram, the sorted codes, the mean brightness) is the same
for the measurement and for the plain frame, whatever the key, the epoch or the readout order (a per-frame order
would not change it either). So an attacker can train a classifier on such statistics of *public plain
pictures* (never a measurement, no key, no access to the camera) and apply it to measurements.

Features (:func:`code_statistics`), per channel, all invariant under any permutation of positions:

- the normalised code histogram, 256 bins (deeper codes binned to their top 8 bits), square-rooted (the
  Hellinger embedding: counts of rare codes weigh as much as they discriminate);
- 64 quantiles of the sorted codes (the sorted codes themselves, subsampled), scaled to [0, 1].

The classifier (:class:`StatisticsClassifier`) is a one-hidden-layer perceptron in numpy (ReLU, softmax
cross-entropy, Adam, mini-batches): small, seeded, no PyTorch needed. Inputs are standardised with the training
set's mean and spread.

Under the sealed readout (``firmware_sim.seal``) the codes that leave the sensor are an AEAD's ciphertext: every
byte is pseudo-random, independent of the frame, so the statistics carry nothing and the classifier is at chance
(whether it was trained on plain pictures or on labelled sealed measurements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.errors import LabError
from firmware_sim.spec import ReadoutSpec

BINS = 256
QUANTILES = 64


def code_statistics(codes: np.ndarray, bits: int = 8) -> np.ndarray:
    """(N, F) permutation-invariant features of (N, H, W, C) codes of ``bits`` bits (F = C * (256 + 64))."""
    if codes.ndim != 4:
        raise LabError(f"code statistics need (N, H, W, C) codes, got shape {codes.shape}")
    count, height, width, channels = codes.shape
    flat = codes.reshape(count, height * width, channels).astype(np.int64)
    binned = flat >> max(0, bits - 8)  # (N, HW, C) in 0..255
    out = []
    for c in range(channels):
        index = binned[:, :, c] + BINS * np.arange(count)[:, None]  # one histogram per frame, in one bincount
        histogram = np.bincount(index.reshape(-1), minlength=BINS * count).reshape(count, BINS) / (height * width)
        ordered = np.sort(flat[:, :, c], axis=1)
        picks = np.linspace(0, height * width - 1, QUANTILES).round().astype(np.int64)
        out += [np.sqrt(histogram), ordered[:, picks] / float((1 << bits) - 1)]
    return np.concatenate(out, axis=1).astype(np.float32)


def public_statistics(plain: np.ndarray, spec: ReadoutSpec) -> np.ndarray:
    """Features of public plain frames as the sensor would digitise them: the spec's public transfer applied."""
    return code_statistics(spec.transfer_table()[plain], spec.output_bits)


@dataclass
class StatisticsClassifier:
    """Standardise, then ReLU(x W1 + b1) W2 + b2, trained with softmax cross-entropy and Adam."""

    hidden: int = 256
    epochs: int = 10
    batch: int = 256
    learning_rate: float = 1e-3
    seed: int = 0

    def fit(self, features: np.ndarray, labels: np.ndarray, progress=None) -> StatisticsClassifier:
        if len(features) != len(labels) or len(features) == 0:
            raise LabError(f"{len(features)} feature rows and {len(labels)} labels: give as many of each, at least 1")
        rng = np.random.default_rng(self.seed)
        self.mean, self.scale = features.mean(axis=0), features.std(axis=0) + 1e-6
        x, y = self._standard(features), np.asarray(labels, dtype=np.int64)
        classes, width = int(y.max()) + 1, x.shape[1]
        self.params = [rng.normal(0, np.sqrt(2 / width), (width, self.hidden)).astype(np.float32),
                       np.zeros(self.hidden, np.float32),
                       rng.normal(0, np.sqrt(1 / self.hidden), (self.hidden, classes)).astype(np.float32),
                       np.zeros(classes, np.float32)]
        adam = _Adam(self.params, self.learning_rate)
        for epoch in range(self.epochs):
            order, total = rng.permutation(len(x)), 0.0
            for start in range(0, len(x), self.batch):
                chosen = order[start:start + self.batch]
                loss, grads = self._gradients(x[chosen], y[chosen])
                adam.step(grads)
                total += loss * len(chosen)
            if progress:
                progress(epoch, total / len(x))
        return self

    def _standard(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale).astype(np.float32)

    def _gradients(self, x: np.ndarray, y: np.ndarray) -> tuple[float, list[np.ndarray]]:
        w1, b1, w2, b2 = self.params
        hidden = x @ w1 + b1
        active = np.maximum(hidden, 0)
        logits = active @ w2 + b2
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        loss = float(-np.mean(np.log(probs[np.arange(len(y)), y] + 1e-12)))
        g = probs
        g[np.arange(len(y)), y] -= 1
        g /= len(y)
        g_active = g @ w2.T
        g_active[hidden <= 0] = 0
        return loss, [x.T @ g_active, g_active.sum(axis=0), active.T @ g, g.sum(axis=0)]

    def predict(self, features: np.ndarray) -> np.ndarray:
        w1, b1, w2, b2 = self.params
        return (np.maximum(self._standard(features) @ w1 + b1, 0) @ w2 + b2).argmax(axis=1)

    def accuracy(self, features: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean(self.predict(features) == np.asarray(labels)))


class _Adam:
    def __init__(self, params: list[np.ndarray], learning_rate: float) -> None:
        self.params, self.learning_rate, self.t = params, learning_rate, 0
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]

    def step(self, grads: list[np.ndarray]) -> None:
        self.t += 1
        for p, g, m, v in zip(self.params, grads, self.m, self.v):
            m *= 0.9
            m += 0.1 * g
            v *= 0.999
            v += 0.001 * g * g
            p -= self.learning_rate * (m / (1 - 0.9 ** self.t)) / (np.sqrt(v / (1 - 0.999 ** self.t)) + 1e-8)


def chance(labels: np.ndarray) -> float:
    """The accuracy of always answering the most frequent class (10 % on a balanced ten-class set)."""
    return float(np.bincount(np.asarray(labels)).max() / len(labels))


def uniformity(codes: np.ndarray) -> tuple[float, float]:
    """(chi-square statistic, p-value) of the pooled bytes of ``codes`` against the uniform distribution over 256
    values (sealed codes of more than 8 bits travel as two ciphertext bytes each, so the bytes are what is tested).

    The p-value is the chi-square tail with 255 degrees of freedom by the Wilson-Hilferty normal approximation
    ((X/k)^(1/3) is nearly normal; accurate to a few parts in a thousand at k = 255)."""
    counts = np.bincount(np.ascontiguousarray(codes).view(np.uint8).reshape(-1), minlength=256).astype(np.float64)
    expected = counts.sum() / 256
    statistic = float(((counts - expected) ** 2 / expected).sum())
    k = 255
    z = ((statistic / k) ** (1 / 3) - (1 - 2 / (9 * k))) / math.sqrt(2 / (9 * k))
    return statistic, 0.5 * math.erfc(z / math.sqrt(2))
