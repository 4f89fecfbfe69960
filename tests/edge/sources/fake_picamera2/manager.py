"""The camera system behind the fake ``Picamera2``: picamera2's ``CameraManager`` and the libcamera one it holds.

Line numbers are picamera2 0.3.38's ``picamera2/picamera2.py`` (P2; 0.3.34's where named) and the Raspberry Pi
fork of libcamera at 26bfadc (LC). What is modelled:

- **when the tuning is read**: libcamera's CameraManager is created on first use of ``Picamera2._cm.cms``
  (P2 L89-93), by ``global_camera_info()`` (P2 L311) as much as by ``Picamera2()``. Starting it matches the
  pipeline handler, which registers each camera and loads its IPA there and then (LC ``vc4.cpp`` L177-221,
  ``pipeline_base.cpp`` L796-831 ``registerCamera`` -> ``loadIPA`` L1160-1191); the IPA's configuration file
  is ``$LIBCAMERA_RPI_TUNING_FILE`` when that is set (LC ``ipa_proxy.cpp`` L44-48), else ``<sensor>.json``
  (``_mono`` appended for a mono sensor, L1170-1173). A tuning file that cannot be read fails the IPA's init
  (LC ``ipa_base.cpp`` L160-167, ``controller.cpp`` L96-103), and such a camera is **not registered** at all
  (``vc4.cpp`` L215-221): it is missing from ``global_camera_info()``.
- **when the manager goes away**: picamera2 drops it when its last camera closes (``cleanup``, P2 L106-115), so
  the next use creates a new one, which reads the variable again; and the IPA starts cold again.
- **cold and warm IPA starts**: ``firstStart_`` is per IPA (LC ``ipa_base.cpp`` L356-391), and the IPA lives as
  long as its manager: a camera started again under the same manager is not a cold start.
- **0.3.34**: ``Picamera2()`` registers itself with the manager (``_cm.add``) *before* opening the camera (0.3.34
  L341-342; 0.3.38 moved it after, L376-377), so a failed open leaves its entry behind and the manager (with
  its tuning and its warm IPA) is never dropped until a later camera at that number closes.
"""

from __future__ import annotations

import json
import os

TUNING_ENV = "LIBCAMERA_RPI_TUNING_FILE"


class LibcameraManager:
    """libcamera's CameraManager as it is when started: the cameras that registered, each with its tuning."""

    def __init__(self, attached) -> None:
        self.registered = []
        self.tuning: dict[str, object] = {}  # camera Id -> what its IPA loaded
        self.warm: set[str] = set()  # camera Ids whose IPA has started once (firstStart_ is false)
        override = os.environ.get(TUNING_ENV) or None  # ipa_proxy.cpp L44-48: read now, at registration
        for sensor in attached:
            if override is not None:
                try:
                    with open(override) as handle:
                        loaded = json.load(handle)
                except (OSError, ValueError):
                    continue  # ipa_base.cpp L160-167: init fails; vc4.cpp L215-221: the camera is not registered
            else:
                loaded = {"file": sensor.model + ("_mono" if sensor.mono else "") + ".json"}
            self.registered.append(sensor)
            self.tuning[sensor.id] = loaded

    def cold_start(self, camera_id: str) -> bool:
        """True the first time this manager's IPA for the camera starts (``firstStart_``)."""
        cold = camera_id not in self.warm
        self.warm.add(camera_id)
        return cold


class FakeCameraManager:
    """picamera2's ``CameraManager`` (P2 L77-128): the libcamera manager, made on first use, dropped after the
    last camera closes."""

    def __init__(self) -> None:
        self.cameras: dict[int, object] = {}
        self._cms: LibcameraManager | None = None
        self.started = 0  # libcamera managers created, for the tests

    def cms(self, attached) -> LibcameraManager:
        if self._cms is None:  # P2 L89-93
            self._cms = LibcameraManager(attached)
            self.started += 1
        return self._cms

    @property
    def running(self) -> bool:
        return self._cms is not None

    def add(self, index: int, camera) -> None:  # P2 L100-104
        self.cameras[index] = camera

    def cleanup(self, index: int) -> None:  # P2 L106-115: the last camera closed drops the manager
        self.cameras.pop(index, None)
        if not self.cameras:
            self._cms = None
