"""Opening a Raspberry Pi camera: which one, with which tuning, and what to say when it cannot be opened.

No picamera2 here: ``edge/sources/picamera.py`` passes the backend in. Source lines are picamera2 0.3.38's
``picamera2/picamera2.py`` (P2; 0.3.34 is Raspberry Pi OS trixie's) and the Raspberry Pi fork of libcamera (LC).

**Tuning: one per process, set before anything touches the camera manager.** libcamera reads
``$LIBCAMERA_RPI_TUNING_FILE`` when its CameraManager starts and registers the cameras (LC ``pipeline_base.cpp``
L796-831 -> ``loadIPA`` L1160-1191, ``ipa_proxy.cpp`` L44-48), and picamera2 starts that manager on first use,
``global_camera_info()`` included (P2 L311, L89-93), while ``Picamera2(tuning=...)`` sets the variable only later
(P2 L327-338). Given a dict (``load_tuning_file``), picamera2 writes it to a temporary file, points the variable at
it and deletes the file at the end of ``__init__`` (P2 L373-375): the next manager (picamera2 drops it after the
last close, L106-115) reads a file that is gone, the IPA fails to load, and the camera is not listed at all (LC
``ipa_base.cpp`` L160-167, ``vc4.cpp`` L215-221). So keycam resolves a tuning name to a **path**, sets the variable
itself before listing the cameras, and passes that path. While another camera of the same process is open the
manager keeps the tuning it started with, so a process has one tuning.

**Names** are searched where libcamera and picamera2 look: each folder of ``$LIBCAMERA_IPA_CONFIG_PATH`` (LC
``ipa_proxy.cpp`` L150-160) under ``rpi/<vc4|pisp>``, then picamera2's list (P2 L264-272).

**Errors**: "Camera __init__ sequence did not complete." hides the reason; picamera2 0.3.38 chains it (``from``),
0.3.34 only leaves it in ``__context__``. A camera another process holds ("Device or resource busy": LC
``camera.cpp`` L1007-1023 through ``py_main.cpp`` L153-157) is said as such, and retried by the loop; an error that
retrying cannot mend is marked ``permanent`` (the loop raises it at once).
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.errors import CameraError

TUNING_ENV = "LIBCAMERA_RPI_TUNING_FILE"
TUNING_DIRS = ("~/libcamera/src/ipa/rpi/{platform}/data", "/usr/local/share/libcamera/ipa/rpi/{platform}",
               "/usr/share/libcamera/ipa/rpi/{platform}")  # P2 L264-272
BUSY = "Device or resource busy"


def permanent(message: str) -> CameraError:
    """A CameraError that retrying cannot mend (a configuration the camera refuses, picamera2 missing)."""
    error = CameraError(message)
    error.permanent = True
    return error


def platform_dir(backend) -> str:
    """picamera2's platform, as libcamera's folder names it (P2 L266)."""
    return "pisp" if getattr(getattr(backend.Picamera2, "platform", None), "name", "VC4") == "PISP" else "vc4"


def find_tuning(name: str, platform: str) -> str:
    """The path of the tuning file ``name`` (a name in libcamera's folders, or a path)."""
    if "/" in name:
        path = Path(name).expanduser()
        if not path.is_file():
            raise permanent(f"source.tuning = {name!r} does not exist; give a tuning file's path or its name")
        return str(path.resolve())
    folders = [Path(f) / "rpi" / platform for f in os.environ.get("LIBCAMERA_IPA_CONFIG_PATH", "").split(":") if f]
    folders += [Path(f.format(platform=platform)).expanduser() for f in TUNING_DIRS]
    for folder in folders:
        if (folder / name).is_file():
            return str((folder / name).resolve())
    raise permanent(f"source.tuning = {name!r} is not among libcamera's tuning files ({', '.join(map(str, folders))}); "
                    f"give its name or path")


def set_tuning(path: str | None) -> None:
    """Point libcamera at ``path`` (None: the sensor's own tuning) before the camera manager starts."""
    if path:
        os.environ[TUNING_ENV] = path
    else:
        os.environ.pop(TUNING_ENV, None)  # as picamera2 does for tuning=None (P2 L337-338), but in time


def camera_index(wanted: int | str, cameras: list[dict]) -> int:
    """The index of ``wanted`` (a number, an Id or a model) in ``global_camera_info()``'s list."""
    listed = "; ".join(f"{n}: {c.get('Model')} ({c.get('Id')})" for n, c in enumerate(cameras)) or "none"
    if isinstance(wanted, int):
        if wanted >= len(cameras):
            raise CameraError(f"camera {wanted} is not connected (cameras: {listed}); check the cable and "
                              f"rpicam-hello --list-cameras (a CSI camera is found at boot only: reseat it powered "
                              f"off and reboot)")
        return wanted
    for key in ("Id", "Model"):
        found = [n for n, c in enumerate(cameras) if c.get(key) == wanted]
        if len(found) == 1:
            return found[0]
        if len(found) > 1:
            raise permanent(f"source.camera = {wanted!r} names {len(found)} cameras ({listed}); use its Id")
    raise CameraError(f"source.camera = {wanted!r} is no connected camera's Id or model (cameras: {listed})")


def _reasons(error: BaseException) -> list[str]:
    """The messages of ``error`` and of what caused it (``__cause__``, else ``__context__``), outermost first."""
    found, seen = [], set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        found.append(str(error) or type(error).__name__)
        error = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    return found


def open_error(name: str, error: BaseException) -> CameraError:
    """The one line for a camera that ``Picamera2(...)`` could not open."""
    reasons = _reasons(error)
    if any(BUSY in reason for reason in reasons):
        return CameraError(f"{name} is in use by another program ({BUSY}): stop rpicam-apps, a picamera2 script "
                           f"or another keycam (find it with: fuser -v /dev/media* /dev/video*)")
    return CameraError(f"{name} cannot be opened: {': '.join(reasons)}")
