"""Fixtures: ultralytics' YOLOv8n exports, made once per session (tests/export/detection.py)."""

from tests.export.detection import yolo  # noqa: F401
