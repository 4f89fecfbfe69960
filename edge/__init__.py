"""edge: the device core, and beside it the rooms that serve it.

The device core (top-level modules, ``sources/``, ``sinks/``, ``tasks/``, ``wire/``) is what runs on a
camera: the sensor (frame fitting and the one readout stage), the fast ADC transform (bit-exact with
``firmware_sim``), key epochs, the keyed-model runtime (onnxruntime only), the pipeline, the capture
loop, the job, configuration, metrics and recording. Beside it: ``server/`` (the inference server),
``lab/`` (verification, evaluations, demo, preview, attacks) and ``cli/`` (the ``keycam`` command
line). The core never imports those three, nor ``export`` (except the default model's first-run
compile, lazily). docs/architecture.md draws the rooms.
"""

import os as _os

# OpenCV's own "[ERROR]" and FFmpeg lines would reach stderr beside keycam's one-line errors; keycam reports
# every failure itself. Set before any edge module imports cv2 (a user's own setting wins).
_os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
_os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
