"""The one registry class (firmware_sim/registry.py): names in registration order, a name refused twice."""

from __future__ import annotations

import pytest

from firmware_sim.registry import Registry


def _sources() -> Registry[type]:
    registry: Registry[type] = Registry("source")
    registry.add("folder", object)
    registry.add("video", int)
    return registry


def test_items_come_back_by_name_in_registration_order():
    registry = _sources()
    assert registry["folder"] is object and registry["video"] is int
    assert list(registry) == ["folder", "video"] and len(registry) == 2
    assert registry.items() == [("folder", object), ("video", int)] and registry.values() == [object, int]
    assert "folder" in registry and "camera" not in registry and 3 not in registry


def test_add_returns_the_item():
    registry: Registry[type] = Registry("sink")

    class Results:
        pass

    assert registry.add("results", Results) is Results


def test_a_name_registered_twice_is_refused_naming_both_and_the_first_stays():
    registry = _sources()
    with pytest.raises(ValueError, match=r"source kind 'folder' is registered twice \(<class 'object'> and "
                                         r"<class 'str'>\); give one of them another name"):
        registry.add("folder", str)
    assert registry["folder"] is object and len(registry) == 2


def test_get_gives_a_default_for_a_name_not_registered():
    registry = _sources()
    assert registry.get("video") is int
    assert registry.get("camera") is None and registry.get("camera", float) is float
    with pytest.raises(KeyError):
        registry["camera"]


def test_remove_takes_a_throwaway_kind_out_again():
    registry = _sources()
    registry.add("throwaway", float)
    assert registry.remove("throwaway") is float
    assert list(registry) == ["folder", "video"]
    registry.add("throwaway", complex)  # the name is free again
    with pytest.raises(KeyError, match="source kind 'camera' is not registered"):
        registry.remove("camera")


def test_registries_do_not_share_their_items():
    one, two = Registry("source"), Registry("source")
    one.add("folder", object)
    assert "folder" not in two and len(two) == 0
