"""Fixtures: the keyed serving repository (tests/edge/servers.py); ultralytics' YOLOv8n exports
(tests/export/detection.py)."""

from tests.edge.servers import repository  # noqa: F401
from tests.export.detection import yolo  # noqa: F401
