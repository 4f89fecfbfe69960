"""Classes of tensors that must share one layout: a union-find over tensor names.

Element-wise operands, Concat inputs and a pointwise layer's input and output
must be in the same layout; the passes' ``constrain`` unions them. Each class
then gets one layout (``Context.assign_layouts``): the sensor's for the input's
class, a key-derived one, labelled by the class's index, for every other.
The earlier tensor stays a class's representative, so the classes, their
order and their labels follow the graph's order.
"""

from __future__ import annotations


class UnionFind:
    """Classes of tensors that must share one layout (element-wise operands, concat inputs, ...)."""

    def __init__(self) -> None:
        self._parent: dict[str, str] = {}
        self._order: dict[str, int] = {}

    def add(self, name: str) -> None:
        if name not in self._parent:
            self._parent[name] = name
            self._order[name] = len(self._order)

    def __contains__(self, name: str) -> bool:
        return name in self._parent

    def find(self, name: str) -> str:
        root = name
        while self._parent[root] != root:
            root = self._parent[root]
        while self._parent[name] != root:  # path compression
            self._parent[name], name = root, self._parent[name]
        return root

    def union(self, a: str, b: str) -> None:
        self.add(a)
        self.add(b)
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the earlier tensor stays the root, so class names follow the graph's order
            if self._order[ra] > self._order[rb]:
                ra, rb = rb, ra
            self._parent[rb] = ra

    def roots(self) -> list[str]:
        """Class representatives in order of first appearance."""
        return sorted({self.find(n) for n in self._parent}, key=self._order.__getitem__)

    def members(self) -> dict[str, list[str]]:
        """Each class's representative -> its tensors (in order of first appearance), classes in that order too."""
        classes: dict[str, list[str]] = {}
        for name in sorted(self._parent, key=self._order.__getitem__):
            classes.setdefault(self.find(name), []).append(name)
        return {root: classes[root] for root in self.roots()}
