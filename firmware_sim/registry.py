"""A registry of named items that refuses a name registered twice: the one registry class of keycam.

``edge`` registers its kinds in one (sources, sinks, decoders: name -> class), and ``export`` maps each
ONNX operator to the one rewrite pass that handles it with one (``export.passes.base``). Each kind
or pass registers itself by one line in its package's ``__init__``, so adding one is a file plus that
line; a second item under a name already taken is refused with a message naming both.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar, overload

T = TypeVar("T")
D = TypeVar("D")


class Registry(Generic[T]):
    """Name -> item, in registration order; ``what`` names the items in messages (``"source"``: source kinds)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        """Register ``item`` under ``name`` and return it; refuse (ValueError, nothing added) a name taken."""
        if name in self._items:
            raise ValueError(f"{self.what} kind {name!r} is registered twice ({self._items[name]!r} and {item!r}); "
                             f"give one of them another name")
        self._items[name] = item
        return item

    def remove(self, name: str) -> T:
        """Take ``name`` out again and return its item (a test that registered a throwaway kind); KeyError if absent."""
        if name not in self._items:
            raise KeyError(f"{self.what} kind {name!r} is not registered")
        return self._items.pop(name)

    @overload
    def get(self, name: str) -> T | None: ...

    @overload
    def get(self, name: str, default: D) -> T | D: ...

    def get(self, name, default=None):
        return self._items.get(name, default)

    def __getitem__(self, name: str) -> T:
        return self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def items(self) -> list[tuple[str, T]]:
        return list(self._items.items())

    def values(self) -> list[T]:
        return list(self._items.values())

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._items)})"
