"""The shared words (firmware_sim/words.py): the operator families, and the task kinds the manifest takes."""

from __future__ import annotations

import typing

import pytest

from firmware_sim import words
from firmware_sim.manifest import Manifest

FAMILIES = {"ELEMENTWISE_UNARY": words.ELEMENTWISE_UNARY, "ELEMENTWISE_BINARY": words.ELEMENTWISE_BINARY}
SUB_FAMILIES = {"PREFIX_UNARY": ("ELEMENTWISE_UNARY", words.PREFIX_UNARY),
                "PREFIX_BINARY": ("ELEMENTWISE_BINARY", words.PREFIX_BINARY)}


@pytest.mark.parametrize("name", [*FAMILIES, *SUB_FAMILIES])
def test_a_family_names_each_operator_once_as_onnx_spells_it(name):
    ops = getattr(words, name)
    assert isinstance(ops, tuple) and ops
    assert len(set(ops)) == len(ops), [op for op in ops if ops.count(op) > 1]
    assert all(op.isidentifier() and op[0].isupper() for op in ops), ops  # ONNX operator names: CamelCase


def test_the_families_do_not_overlap():
    """An operator is one family's: each family is one pass of the compiler, and a pass per operator is the rule."""
    unary, binary = set(words.ELEMENTWISE_UNARY), set(words.ELEMENTWISE_BINARY)
    assert unary & binary == set()


@pytest.mark.parametrize("name", sorted(SUB_FAMILIES))
def test_a_sub_family_is_part_of_its_family(name):
    family, ops = SUB_FAMILIES[name]
    assert set(ops) <= set(FAMILIES[family]), sorted(set(ops) - set(FAMILIES[family]))


def test_the_channels_last_rewrite_moves_what_it_moved_before_the_families():
    """The sub-families keep the channels-last rewrite's sets as they were (a widening would change which models
    it rewrites): 18 unary operators and 6 binary ones."""
    assert set(words.PREFIX_BINARY) == {"Add", "Sub", "Mul", "Div", "Max", "Min"}
    assert len(words.PREFIX_UNARY) == 18
    assert set(words.ELEMENTWISE_BINARY) - set(words.PREFIX_BINARY) == {"Pow", "Sum", "Mean"}


def test_the_manifest_takes_the_task_kinds_and_unknown():
    field = Manifest.model_fields["task"]
    assert typing.get_args(field.annotation) == ("", *words.TASKS)
    assert field.default == ""
