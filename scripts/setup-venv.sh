#!/usr/bin/env bash
# Create (or refresh) the project's virtual environment in .venv and install keycam into it.
# Usage: scripts/setup-venv.sh [EXTRAS]     e.g. scripts/setup-venv.sh test
# Re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
extras="${1:-demo}"
python="${PYTHON:-python3}"
venv="${KEYCAM_VENV:-$root/.venv}"

"$python" - <<'PY'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"keycam needs Python >= 3.10, this is {sys.version.split()[0]}")
PY

if [ ! -x "$venv/bin/python" ]; then
    echo "setup: creating virtual environment $venv" >&2
    "$python" -m venv "$venv"
fi
stamp="$venv/.keycam-installed-$extras"
want="$(sha256sum "$root/pyproject.toml" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing keycam[$extras] into $venv" >&2
    "$venv/bin/python" -m pip install --quiet --upgrade pip >&2
    "$venv/bin/python" -m pip install --quiet -e "$root[$extras]" >&2
    # Images that ship inside packages, without those packages' own dependencies: foolbox's sample images
    # (the embedded default job's frames) and, for the tests, the Keras CIFAR-10 CNN of cifar-10-model.
    "$venv/bin/python" -m pip install --quiet --no-deps foolbox==3.3.4 >&2
    if [[ ",$extras," == *",test,"* ]]; then
        "$venv/bin/python" -m pip install --quiet --no-deps cifar-10-model==7.4.0 >&2
        # picamera2's own source (not installed: it needs libcamera), for the test that checks our fake against it
        mkdir -p "$venv/share/picamera2"
        "$venv/bin/python" -m pip download --quiet --no-deps picamera2==0.3.38 -d "$venv/share/picamera2" >&2
    fi
    echo "$want" > "$stamp"
fi
if [[ ",$extras," == *",test,"* ]] && [ "$(uname -m)" = x86_64 ] \
    && ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is None)"; then
    # PyTorch (CPU build, about 30 s from the local wheel) for the fine-tuned-on-scrambled tests; elsewhere they skip.
    echo "setup: installing torch==2.13.0 for the tests" >&2
    "$venv/bin/python" -m pip install --quiet torch==2.13.0 >&2
fi
if [[ ",$extras," == *",test,"* ]] && [ "$(uname -m)" = x86_64 ] \
    && ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('ultralytics') is None)"; then
    # ultralytics, for the detector tests (YOLOv8n exported by ultralytics itself from its architecture config: random
    # weights, nothing downloaded): without its declared dependencies, which pull opencv-python (it fights our
    # opencv-python-headless), matplotlib, polars and more that its ONNX export never imports; then exactly what the
    # export imports. torchvision 0.28.0 is the one built for torch 2.13.0; onnxslim simplifies the export as
    # ultralytics does by default.
    echo "setup: installing ultralytics==8.4.190 for the tests" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps ultralytics==8.4.190 ultralytics-thop==2.2.3 \
        torchvision==0.28.0 onnxslim==0.1.98 colorama==0.4.6 pyyaml==6.0.4 psutil==7.2.2 >&2
fi
if [[ ",$extras," == *",test,"* ]] && [ "$(uname -m)" = x86_64 ] \
    && ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('timm') is None)"; then
    # timm, for the model families users bring (its architectures with random weights, exported by torch.onnx);
    # without its declared dependencies (torch and torchvision are there already; nothing is downloaded at run time).
    echo "setup: installing timm==1.0.31 for the tests" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps timm==1.0.31 huggingface_hub==1.1.2 safetensors==0.7.0 >&2
fi
if [[ ",$extras," == *",test,"* || ",$extras," == *",events,"* ]] \
    && ! "$venv/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('trackers') is None)"; then
    # Roboflow's trackers (ByteTrack, OC-SORT) and supervision, for [events] (docs/events.md): without their declared
    # dependencies, which pull opencv-python (it fights our opencv-python-headless), matplotlib and PyAV that tracking
    # never imports; the events extra (part of test) installs what they do import.
    echo "setup: installing trackers==2.6.1 and supervision==0.31.2 for [events]" >&2
    "$venv/bin/python" -m pip install --quiet --no-deps trackers==2.6.1 supervision==0.31.2 >&2
fi
if [[ ",$extras," == *",test,"* ]] && [ ! -d /usr/share/datasets/fashion-mnist ]; then
    # Fashion-MNIST (70,000 labelled images, MIT) from Debian's archive, for the real-model tests.
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "setup: installing Debian's dataset-fashion-mnist" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist >&2
    else
        echo "setup: Fashion-MNIST is missing; run: sudo apt-get install dataset-fashion-mnist" >&2
        exit 1
    fi
fi
# The trained face detector (BlazeFace from mediapipe's wheel, converted to ONNX; nothing committed).
bash "$root/scripts/face-detector.sh" "$venv"
if [[ ",$extras," == *",test,"* ]] && [ "$(uname -m)" = x86_64 ]; then
    # tf2onnx (in a venv of its own: it imports TensorFlow) and mediapipe's palm detector, for the converter tests.
    PYTHON="$python" bash "$root/scripts/converters.sh" "$venv"
fi
if [[ ",$extras," == *",test,"* ]] && [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]; then
    # Debian's opencv-doc: real videos (vtest.avi: people walking; Megamind.avi: a face) for replay, detection,
    # tracking and framing tests and benchmarks.
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "setup: installing Debian's opencv-doc (its example videos)" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >&2
    else
        echo "setup: opencv-doc's videos are missing; run: sudo apt-get install opencv-doc" >&2
        exit 1
    fi
fi
if [[ ",$extras," == *",test,"* ]] && ! command -v chromium > /dev/null && [ ! -x /usr/bin/chromium ]; then
    # Debian's Chromium, which the [web] page's browser test drives headless through Playwright's Python package
    # (playwright, in the test extra); `playwright install` (a browser download) is never run.
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "setup: installing Debian's chromium" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
    else
        echo "setup: Chromium is missing; run: sudo apt-get install chromium" >&2
        exit 1
    fi
fi
if [[ ",$extras," == *",test,"* ]] && ! command -v mosquitto > /dev/null && [ ! -x /usr/sbin/mosquitto ]; then
    # Debian's MQTT broker, started by the tests of the [mqtt] sink on 127.0.0.1.
    if [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
        echo "setup: installing Debian's mosquitto" >&2
        apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >&2
    else
        echo "setup: the MQTT broker is missing; run: sudo apt-get install mosquitto" >&2
        exit 1
    fi
fi
if [[ ",$extras," == *",test,"* ]] && ! command -v promtool > /dev/null && [ ! -x "$venv/bin/promtool" ]; then
    # Prometheus' promtool, which checks the metrics endpoint's text (tests/edge/test_metrics.py): taken out of
    # Debian's prometheus package into the venv (apt-get download and dpkg-deb -x, no root), so that no Prometheus
    # server is installed or started. Without it that one test is skipped, with the reason.
    if command -v apt-get > /dev/null && command -v dpkg-deb > /dev/null; then
        echo "setup: taking promtool from Debian's prometheus package" >&2
        deb="$(mktemp -d)"
        chmod 755 "$deb"
        if (cd "$deb" && apt-get download -qq prometheus >&2) && dpkg-deb -x "$deb"/prometheus_*.deb "$deb/x"; then
            install -m 0755 "$deb/x/usr/bin/promtool" "$venv/bin/promtool"
        else
            echo "setup: promtool could not be fetched (run apt-get update?); its test will be skipped" >&2
        fi
        rm -rf "$deb"
    else
        echo "setup: promtool is missing (not Debian); its test will be skipped" >&2
    fi
fi
