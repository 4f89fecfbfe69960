"""The pass registry: one pass per operator, a duplicate refused when it registers, every pass listed."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import export.passes
from export.passes import REGISTRY
from export.passes.base import Pass, Registry
from export.passes.conv import ConvPass


class AnotherConv(Pass):
    ops = ("Conv",)


class Fresh(Pass):
    ops = ("Fresh", "Conv")


def test_a_second_pass_for_an_operator_is_refused_naming_both():
    with pytest.raises(ValueError, match=r"AnotherConv cannot register 'Conv': ConvPass handles it already"):
        REGISTRY.register(AnotherConv)
    assert type(REGISTRY.get("Conv")) is ConvPass


def test_a_refused_pass_registers_none_of_its_operators():
    registry = Registry(ConvPass)
    with pytest.raises(ValueError, match="ConvPass handles it already"):
        registry.register(Fresh)
    assert "Fresh" not in registry and registry.ops() == ["Conv"]


def test_duplicates_in_the_list_are_refused_too():
    with pytest.raises(ValueError, match="one pass per operator"):
        Registry(ConvPass, AnotherConv)


def test_a_pass_must_name_its_operators():
    class Nothing(Pass):
        pass

    with pytest.raises(ValueError, match="names no operators"):
        Registry(Nothing)


def test_every_pass_in_the_package_is_registered():
    """A pass written in export/passes/ but missing from the list in its __init__ would never run."""
    defined = set()
    for module in pkgutil.iter_modules(export.passes.__path__):
        loaded = importlib.import_module(f"export.passes.{module.name}")
        defined |= {cls for _, cls in inspect.getmembers(loaded, inspect.isclass)
                    if issubclass(cls, Pass) and cls is not Pass and cls.__module__ == loaded.__name__}
    registered = {type(REGISTRY.get(op)) for op in REGISTRY.ops()}
    assert defined == registered
    assert all(type(REGISTRY.get(op)) is cls for cls in registered for op in cls.ops)


def test_each_operator_family_is_one_pass():
    """firmware_sim.words owns the families; the element-wise passes handle exactly them, one pass per family."""
    from export.passes.elementwise import BinaryPass
    from export.passes.pointwise import UnaryPass
    from firmware_sim.words import ELEMENTWISE_BINARY, ELEMENTWISE_UNARY

    for family, cls in ((ELEMENTWISE_UNARY, UnaryPass), (ELEMENTWISE_BINARY, BinaryPass)):
        assert cls.ops == family
        assert {type(REGISTRY.get(op)) for op in family} == {cls}


def test_no_operator_is_handled_twice_across_the_passes():
    ops = [op for cls in {type(REGISTRY.get(op)) for op in REGISTRY.ops()} for op in cls.ops]
    assert len(ops) == len(set(ops)) == len(REGISTRY.ops())

