#!/usr/bin/env bash
# The trained face detector the embedded default and the tests use: BlazeFace short range (Apache-2.0), the
# file mediapipe 0.10.21's wheel ships, converted to ONNX by tflite2onnx 0.4.1. Nothing is committed: the
# wheel comes from PyPI (any platform's holds the same file; the manylinux x86_64 one is taken), one file is
# extracted, converted and kept in the venv. Input (1, 3, 128, 128) RGB in [-1, 1]; outputs regressors
# (1, 896, 16) and classificators (1, 896, 1).
# Usage: scripts/face-detector.sh VENV     (writes VENV/share/keycam/face_detection_short_range.onnx)
set -euo pipefail
venv="$1"
target="$venv/share/keycam/face_detection_short_range.onnx"
[ -f "$target" ] && exit 0
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
version="$("$venv/bin/python" -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')"
# the wheel is only unpacked for one data file, never installed: mediapipe 0.10.21 has no wheel for Python 3.13
# (Raspberry Pi OS trixie), so a newer Python takes 3.12's, which holds the same file
[ "$version" -gt 312 ] && version=312
echo "setup: fetching the face detector (mediapipe 0.10.21's BlazeFace, converted to ONNX)" >&2
"$venv/bin/python" -m pip install --quiet tflite2onnx==0.4.1 >&2
"$venv/bin/python" -m pip download --quiet --no-deps --only-binary=:all: --platform manylinux_2_28_x86_64 \
    --python-version "$version" mediapipe==0.10.21 -d "$work" >&2
mkdir -p "$(dirname "$target")"
"$venv/bin/python" - "$work" "$target" <<'PY' >&2
import glob, logging, sys, zipfile
from pathlib import Path

work, target = Path(sys.argv[1]), Path(sys.argv[2])
(wheel,) = glob.glob(str(work / "mediapipe-0.10.21-*.whl"))
name = "mediapipe/modules/face_detection/face_detection_short_range.tflite"
(work / "face.tflite").write_bytes(zipfile.ZipFile(wheel).read(name))
logging.disable(logging.WARNING)  # tflite2onnx's notes on float16 weights: they convert as float32
import tflite2onnx

temp = target.with_name(target.name + ".tmp")
tflite2onnx.convert(str(work / "face.tflite"), str(temp))
temp.replace(target)
PY
