"""The keyed address permutation: a bijection, computable per address, equal to its vectorised table."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.permutation import KeyedPermutation, half_width, inverse_table, permutation_table

KEY = hashlib.sha256(b"permutation tests").digest()


def test_half_width():
    assert [half_width(n) for n in (1, 2, 3, 4, 5, 16, 17, 1 << 20, (1 << 20) + 1)] == [0, 1, 1, 1, 2, 2, 3, 10, 11]
    with pytest.raises(ValueError):
        half_width(0)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1000, 1024, 1025, 4097])
def test_reference_is_a_bijection_equal_to_the_table(n):
    reference = KeyedPermutation(KEY, n)
    forward = [reference.forward(q) for q in range(n)]
    assert sorted(forward) == list(range(n))
    assert [reference.inverse(a) for a in forward] == list(range(n))
    table = permutation_table(KEY, n)
    assert table.dtype == np.intp and table.tolist() == forward


@settings(max_examples=40, deadline=None)
@given(key=st.binary(min_size=32, max_size=32), n=st.integers(1, 600))
def test_table_matches_reference_for_any_key_and_size(key, n):
    reference = KeyedPermutation(key, n)
    table = permutation_table(key, n)
    assert table.tolist() == [reference.forward(q) for q in range(n)]
    assert np.array_equal(inverse_table(table)[table], np.arange(n))


def test_out_of_range_addresses_are_errors():
    reference = KeyedPermutation(KEY, 10)
    for bad in (-1, 10):
        with pytest.raises(IndexError):
            reference.forward(bad)
        with pytest.raises(IndexError):
            reference.inverse(bad)
    with pytest.raises(ValueError):
        KeyedPermutation(KEY[:16], 10)


def test_keys_give_unrelated_permutations():
    n = 10_000
    a = permutation_table(KEY, n)
    b = permutation_table(hashlib.sha256(b"another").digest(), n)
    # a random permutation has about one fixed point; two unrelated ones agree in about one place
    assert np.count_nonzero(a == np.arange(n)) < 20
    assert np.count_nonzero(a == b) < 20
    # and scatters neighbours: adjacent steps land far apart on average (uniform: n/3)
    assert np.mean(np.abs(np.diff(a))) > n / 4


def test_repr_hides_the_key():
    assert KEY.hex() not in repr(KeyedPermutation(KEY, 5))
