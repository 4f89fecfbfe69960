"""What one client may cost ``keycam serve``: bytes, rows, connections and time, each with its option.

Memory in flight is a budget of bytes shared by every request, charged as a request is read and
decoded and released when it is answered::

    charge(request) = body bytes as they arrive                  (a slow client holds only what it sent)
                    + decompressed bytes                         (gzip, deflate)
                    + JSON_COST x JSON header bytes              (Python objects, then JSON tensors)
    sum of charges over the requests in flight <= max_inflight_bytes

Binary tensors are views of the body, so they cost nothing more. A request that would overdraw the
budget is answered 503 with ``Retry-After`` (a forwarding device spools and retries later), one that
could never fit it 413. Rows are capped per request (413, naming the limit and the request's rows),
and a model run merges requests up to ``min(max_batch, max_rows)`` rows, so no run holds more than
``max_rows`` rows whatever arrives. The budget is used from the event loop's thread only: no lock.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import ProtocolError

MIB = 1 << 20
# Parsing JSON takes up to 25x its size in Python objects (measured: `[[],[],...]`, `[{},{},...]`),
# and decoding JSON tensors up to 8x more (int64 values, then the model's datatype).
JSON_COST = 32


@dataclass(frozen=True)
class Limits:
    """``keycam serve``'s bounds; the defaults are its options' defaults (docs/server.md)."""

    max_body_bytes: int = 64 * MIB        # --max-body-mb: one request body, counted as it arrives and inflated
    max_rows: int = 64                    # --max-rows: rows (frames) per request and per model run
    max_inflight_bytes: int = 128 * MIB   # --max-inflight-mb: the charges of all requests in flight
    max_connections: int = 1000           # --max-connections (serve() fits it to the file descriptors)
    header_timeout_s: float = 10.0        # --header-timeout-s: from connecting (or the last answer) to a whole head
    body_timeout_s: float = 30.0          # --body-timeout-s: from the head to the whole body
    keep_alive_s: float = 5.0             # --keep-alive-s: an idle connection between requests

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_rows", "max_inflight_bytes", "max_connections"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"Limits.{name} must be a positive integer, got {getattr(self, name)!r}")
        for name in ("header_timeout_s", "body_timeout_s", "keep_alive_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"Limits.{name} must be a positive number of seconds, got {getattr(self, name)!r}")


class Budget:
    """The bytes held by requests in flight, server-wide."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes, self.used = max_bytes, 0
        self.refused = 0  # requests answered 503 for want of room

    def charge(self) -> Charge:
        return Charge(self)


class Charge:
    """One request's share of the budget; ``with`` releases it whatever happens."""

    def __init__(self, budget: Budget) -> None:
        self.budget, self.held = budget, 0

    def add(self, size: int, what: str) -> None:
        budget = self.budget
        if self.held + size > budget.max_bytes:
            raise ProtocolError(f"{what} takes this request to {self.held + size} bytes in memory, more than this "
                                f"server holds for all requests together ({budget.max_bytes} bytes, "
                                f"--max-inflight-mb); send smaller requests, binary tensors rather than JSON",
                                status=413)
        if budget.used + size > budget.max_bytes:
            budget.refused += 1
            raise ProtocolError(f"the server is busy: requests in flight hold {budget.used} of its "
                                f"{budget.max_bytes} bytes (--max-inflight-mb); retry in a second", status=503)
        budget.used += size
        self.held += size

    def __enter__(self) -> Charge:
        return self

    def __exit__(self, *exc) -> None:
        self.budget.used -= self.held
        self.held = 0


def json_length(body: bytes, header_length: str | None) -> int:
    """The JSON header's size in bytes: the whole body, or the declared length when it is one (else 0: refused)."""
    if header_length is None:
        return len(body)
    try:
        length = int(header_length)
    except ValueError:
        return 0
    return length if 0 <= length <= len(body) else 0


def check_rows(inputs: dict[str, np.ndarray], batched: set[str], max_rows: int, where: str) -> None:
    """413 unless every input of ``batched`` (the model's inputs with a dynamic leading dimension) has at most
    ``max_rows`` rows. An input whose leading dimension the model fixes has the rows the model says."""
    for name, array in inputs.items():
        if name in batched and array.ndim and array.shape[0] > max_rows:
            raise ProtocolError(f"{where}: input '{name}' carries {array.shape[0]} rows, over this server's limit "
                                f"of {max_rows} rows per request (--max-rows); send them in requests of at most "
                                f"{max_rows}", status=413)
