"""Fixtures: the keyed serving repository (tests/edge/servers.py)."""

from tests.edge.servers import repository  # noqa: F401
