"""The union-find of tensors that must share a layout: classes in the graph's order, their members."""

from __future__ import annotations

from export.compiler.classes import UnionFind


def test_classes_follow_the_order_of_first_appearance():
    classes = UnionFind()
    for name in ("input", "a", "b", "c", "d"):
        classes.add(name)
    classes.union("c", "a")  # the earlier tensor stays the representative
    classes.union("d", "input")
    classes.union("b", "d")
    assert classes.roots() == ["input", "a"]
    assert classes.find("c") == "a" and classes.find("b") == "input"
    assert classes.members() == {"input": ["input", "b", "d"], "a": ["a", "c"]}
    assert "c" in classes and "e" not in classes


def test_union_adds_unknown_tensors():
    classes = UnionFind()
    classes.union("x", "y")
    assert classes.members() == {"x": ["x", "y"]}
