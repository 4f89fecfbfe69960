"""The keyed address permutation: an AES-256 Feistel network with cycle-walking.

For a frame of N = H * W positions, the readout visits position P(q) at step
q = 0 .. N-1. P is a bijection on {0 .. N-1} that hardware computes for any
single q without a table:

1. Half width. ``b`` is the bit length of N - 1 (so 2**b >= N) and
   ``m = ceil(b / 2)``; the Feistel domain is 2**(2m) values, fewer than 4N.
   N = 1 is the identity (m = 0).
2. Round function. With K the 32-byte AES-256 key from the key schedule,
   ``F(i, R)`` for round i in 0 .. 9 and an m-bit half R is::

       block = [i] ++ [0] * 7 ++ R as 8 bytes big-endian        # 16 bytes
       F(i, R) = (first 8 bytes of AES-256_K(block), big-endian) mod 2**m

3. Feistel. ``E(x)``: L = x >> m, R = x mod 2**m; for i = 0 .. 9:
   (L, R) <- (R, L xor F(i, R)); result (L << m) | R. A balanced Feistel
   network is a permutation of the 2**(2m) values for any round function.
4. Cycle-walking. ``P(q) = E(q)``, and while the result is >= N, apply E
   again. Because E permutes the domain, the walk from q < N ends at a value
   below N, and the map is a bijection on {0 .. N-1} (Black and Rogaway, 2002).
   The expected number of steps is below 4.

The inverse runs the rounds backwards: (L, R) <- (R xor F(i, L), L) for
i = 9 .. 0, walking while the result is >= N.

:class:`KeyedPermutation` is the reference, one address at a time.
:func:`permutation_table` computes the same P for all q at once with
vectorised AES-ECB; tests check that the two agree.
"""

from __future__ import annotations

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ROUNDS = 10


def half_width(n: int) -> int:
    """Bits m of each Feistel half for a domain of n positions (0 when n == 1)."""
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"a permutation needs at least one position, got {n!r}")
    return ((n - 1).bit_length() + 1) // 2


def _ecb(key: bytes):
    if len(key) != 32:
        raise ValueError("the permutation key must be a 32-byte AES-256 key")
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()


class KeyedPermutation:
    """P and its inverse on {0 .. n-1}, computed one address at a time (the reference)."""

    __slots__ = ("n", "m", "_mask", "_aes")

    def __init__(self, key: bytes, n: int) -> None:
        self.n = n
        self.m = half_width(n)
        self._mask = (1 << self.m) - 1
        self._aes = _ecb(key)

    def __repr__(self) -> str:
        return f"KeyedPermutation(n={self.n})"

    def _round(self, i: int, half: int) -> int:
        block = bytes([i]) + bytes(7) + half.to_bytes(8, "big")
        return int.from_bytes(self._aes.update(block)[:8], "big") & self._mask

    def _encrypt(self, x: int) -> int:
        left, right = x >> self.m, x & self._mask
        for i in range(ROUNDS):
            left, right = right, left ^ self._round(i, right)
        return (left << self.m) | right

    def _decrypt(self, y: int) -> int:
        left, right = y >> self.m, y & self._mask
        for i in reversed(range(ROUNDS)):
            left, right = right ^ self._round(i, left), left
        return (left << self.m) | right

    def forward(self, q: int) -> int:
        """P(q): the position read out at step q."""
        if not 0 <= q < self.n:
            raise IndexError(f"step {q} outside 0 .. {self.n - 1}")
        if self.n == 1:
            return 0
        y = self._encrypt(q)
        while y >= self.n:
            y = self._encrypt(y)
        return y

    def inverse(self, a: int) -> int:
        """P^-1(a): the step at which position a is read out."""
        if not 0 <= a < self.n:
            raise IndexError(f"position {a} outside 0 .. {self.n - 1}")
        if self.n == 1:
            return 0
        x = self._decrypt(a)
        while x >= self.n:
            x = self._decrypt(x)
        return x


def _round_vector(aes, i: int, half: np.ndarray, mask: int) -> np.ndarray:
    """F(i, R) for a vector of halves R (uint64), by one AES-ECB call over all blocks."""
    count = half.size
    blocks = np.empty((count, 2), dtype=">u8")  # (count, 2) big-endian words = one 16-byte block each
    blocks[:, 0] = i << 56  # byte(i) followed by 7 zero bytes
    blocks[:, 1] = half  # R as 8 big-endian bytes
    cipher = np.empty(count * 16 + 15, dtype=np.uint8)  # update_into wants room for one more block
    aes.update_into(memoryview(blocks).cast("B"), cipher)
    first = cipher[: count * 16].view(">u8")[0::2]  # (count,) first 8 bytes of each cipher block
    return first.astype(np.uint64) & np.uint64(mask)


def _encrypt_vector(aes, x: np.ndarray, m: int) -> np.ndarray:
    mask = (1 << m) - 1
    left, right = x >> np.uint64(m), x & np.uint64(mask)
    for i in range(ROUNDS):
        left, right = right, left ^ _round_vector(aes, i, right, mask)
    return (left << np.uint64(m)) | right


def permutation_table(key: bytes, n: int) -> np.ndarray:
    """The whole permutation as an array: ``table[q] == KeyedPermutation(key, n).forward(q)``.

    Returns an int64 array of length n (numpy's index dtype, so gathers need no conversion).
    """
    m = half_width(n)
    if n == 1:
        return np.zeros(1, dtype=np.intp)
    aes = _ecb(key)
    y = _encrypt_vector(aes, np.arange(n, dtype=np.uint64), m)
    pending = np.flatnonzero(y >= n)
    while pending.size:  # cycle-walk only the values that left {0 .. n-1}
        y[pending] = _encrypt_vector(aes, y[pending], m)
        pending = pending[y[pending] >= n]
    return y.astype(np.intp)


def inverse_table(table: np.ndarray) -> np.ndarray:
    """The inverse permutation of a table: ``inverse[table[q]] == q``."""
    inverse = np.empty_like(table)
    inverse[table] = np.arange(table.size, dtype=table.dtype)
    return inverse
