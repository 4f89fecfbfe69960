#!/usr/bin/env bash
# The converters users bring mediapipe's TFLite models through, for the converter tests (docs/compiler.md,
# "Converting TFLite models"): tf2onnx 1.17.0 with TensorFlow (tensorflow-cpu 2.21.0: a 274 MB wheel, about 1.3 GB
# installed, and it pins h5py below 3.15, so it gets a virtual environment of its own), and mediapipe 0.10.21's
# palm detector, one file of its wheel from PyPI. Nothing is committed.
# Usage: scripts/converters.sh VENV   (writes VENV/share/keycam/tf2onnx/ and VENV/share/keycam/palm_detection_lite.tflite)
set -euo pipefail
venv="$1"
python="${PYTHON:-python3}"
converter="$venv/share/keycam/tf2onnx"
if ! "$converter/bin/python" -c "import tf2onnx, tensorflow" 2>/dev/null; then
    echo "setup: installing tf2onnx==1.17.0 and tensorflow-cpu==2.21.0 into $converter (the converter tests)" >&2
    "$python" -m venv "$converter"
    "$converter/bin/python" -m pip install --quiet tf2onnx==1.17.0 tensorflow-cpu==2.21.0 >&2
fi
palm="$venv/share/keycam/palm_detection_lite.tflite"
[ -f "$palm" ] && exit 0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
"$venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version "$version" mediapipe==0.10.21 -d "$work" >&2
"$venv/bin/python" - "$work" "$palm" <<'PY' >&2
import glob, sys, zipfile

(wheel,) = glob.glob(sys.argv[1] + "/mediapipe-0.10.21-*.whl")
with open(sys.argv[2] + ".tmp", "wb") as out:
    out.write(zipfile.ZipFile(wheel).read("mediapipe/modules/palm_detection/palm_detection_lite.tflite"))
PY
mv "$palm.tmp" "$palm"
