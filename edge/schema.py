"""The base of every configuration model: strict (unknown keys are errors), each field described and bounded.

Sections of ``keycam run``'s configuration (``edge.config``), and each source's and sink's own model
(``edge.sources``, ``edge.sinks``), derive from :class:`Section`, in the manner of Frigate's schema.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")
