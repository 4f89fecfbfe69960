"""A behavioural fake of picamera2 0.3.38 (and 0.3.34's differences) and the libcamera behind it, on a Pi 4 or 5.

keycam's picamera source takes a *backend* (the ``Picamera2`` class and libcamera's ``Transform``); on a
Pi it is the real one, in the tests this package (``BACKEND``). The fake models behaviour, not only
signatures: sizes and strides changed by the platform and reported back, raw streams at the sensor
mode's size, bit depth (8-bit raw one byte a photosite), alignment, Bayer order and black level, jobs left
queued after a timeout so that ``stop()`` blocks unless they are cancelled and a late frame goes to the
abandoned job, ``close()`` stopping the camera, the start-up frames libcamera hides, when the tuning is read
(at the camera manager's start, from the environment; the manager recreated after the last close), a camera
another process holds, autofocus modes and triggers, per-output crops on a Pi 5, wall-clock frame times, and
Camera Module 2 and 3 and HQ sensor modes. Each behaviour names the picamera2 or libcamera source line it
follows (``camera.py``, ``manager.py``, ``ipa.py``, ``configuration.py``, ``request.py``, ``sensors.py``,
``scene.py``).
"""

from types import SimpleNamespace

from tests.edge.sources.fake_picamera2.camera import FakePicamera2
from tests.edge.sources.fake_picamera2.libcamera import ColorSpace, Transform
from tests.edge.sources.fake_picamera2.manager import FakeCameraManager
from tests.edge.sources.fake_picamera2.request import FakeRequest
from tests.edge.sources.fake_picamera2.sensors import IMX219, IMX477, IMX708, IMX708_WIDE_NOIR, OV9281, Platform

BACKEND = SimpleNamespace(Picamera2=FakePicamera2, Transform=Transform)

__all__ = ["BACKEND", "IMX219", "IMX477", "IMX708", "IMX708_WIDE_NOIR", "OV9281", "ColorSpace", "FakeCameraManager",
           "FakePicamera2", "FakeRequest", "Platform", "Transform"]
