"""The sink interface: receives each frame's result (and its measurement), in order; closed once.

A sink must leave nothing half-written when closed, including on SIGINT/SIGTERM: the loop always
calls ``close``. Forwarding to a server will be one more sink.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from edge.pipeline import Result


class Sink(ABC):
    wants_plain = False  # only a recorder started with the explicit debug flag asks for plain frames

    @abstractmethod
    def write(self, result: Result, measurement: np.ndarray, plain: np.ndarray | None = None) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Flush and release (nothing by default)."""

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
