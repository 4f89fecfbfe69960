"""Fixtures for the device's tests: real servers on 127.0.0.1 (tests/edge/servers.py)."""

from tests.edge.servers import repository, served  # noqa: F401
