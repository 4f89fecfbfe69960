"""A behavioural fake of picamera2 0.3.38 and the libcamera values it takes, on a Raspberry Pi 4 or 5.

keycam's picamera source takes a *backend* (the ``Picamera2`` class and libcamera's ``Transform``); on a
Pi it is the real one, in the tests this package (``BACKEND``). The fake models behaviour, not only
signatures: sizes and strides changed by the platform and reported back, raw streams at the sensor
mode's size, bit depth, alignment and Bayer order, jobs left queued after a timeout so that ``stop()``
blocks unless they are cancelled, ``close()`` stopping the camera, and Camera Module 3 and HQ sensor
modes. Each behaviour names the picamera2 or libcamera source line it follows (``camera.py``,
``request.py``, ``sensors.py``, ``scene.py``).
"""

from types import SimpleNamespace

from tests.edge.sources.fake_picamera2.camera import FakePicamera2
from tests.edge.sources.fake_picamera2.libcamera import ColorSpace, Transform
from tests.edge.sources.fake_picamera2.request import FakeRequest
from tests.edge.sources.fake_picamera2.sensors import IMX477, IMX708, IMX708_WIDE_NOIR, OV9281, Platform

BACKEND = SimpleNamespace(Picamera2=FakePicamera2, Transform=Transform)

__all__ = ["BACKEND", "IMX477", "IMX708", "IMX708_WIDE_NOIR", "OV9281", "ColorSpace", "FakePicamera2",
           "FakeRequest", "Platform", "Transform"]
