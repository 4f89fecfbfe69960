"""Frame sources: one small interface (``base.Source``), one file per implementation.

``folder`` (an image folder) and ``opencv`` (camera index, video file, stream URL) so far; the
picamera2, recording and virtual-sensor sources come with the capture loop.
"""
