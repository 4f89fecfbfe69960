"""The replay cache: a request that repeats an earlier request's id and body gets the stored answer again.

Devices retry after a lost answer with the same request id; answering from here instead of running
the model again makes retries idempotent. Keys are (model, version, request id, body digest, header
length); the cache is bounded in entries and in bytes (1,024 answers, 64 MiB by default).
"""

from __future__ import annotations

from collections import OrderedDict


class ReplayCache:
    """The last answers, by (model, version, request id, body digest), bounded in entries and bytes."""

    def __init__(self, entries: int = 1024, max_bytes: int = 64 << 20) -> None:
        self.entries, self.max_bytes = entries, max_bytes
        self._items: OrderedDict = OrderedDict()
        self._bytes = 0

    def get(self, key):
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key, body: bytes, headers: dict, media_type: str) -> None:
        if self.entries <= 0 or len(body) > self.max_bytes:
            return
        if key in self._items:
            return
        self._items[key] = (body, headers, media_type)
        self._bytes += len(body)
        while len(self._items) > self.entries or self._bytes > self.max_bytes:
            _, (old, _, _) = self._items.popitem(last=False)
            self._bytes -= len(old)
