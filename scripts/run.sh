#!/usr/bin/env bash
# The main job on the embedded default: no camera, no server. Sets up .venv on first use.
# 1. keycam demo: a package-shipped photo through firmware_sim and the edge transform (byte-identical), one PNG;
# 2. keycam run: the virtual sensor replays package-shipped photos through the keyed face detector, one JSON
#    line of detections per frame (boxes in the photo's own pixels);
# 3. keycam preview: keycam-demo/keycam-preview.png, the boxes drawn on the plain photo (key holders) and on the
#    measurement (the answer without the picture). Arguments go to keycam run (then no preview is drawn).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-venv.sh" demo
"$root/.venv/bin/keycam" demo
if [ "$#" -gt 0 ]; then
    exec "$root/.venv/bin/keycam" run "$@"
fi
"$root/.venv/bin/keycam" run
exec "$root/.venv/bin/keycam" preview -o keycam-demo/keycam-preview.png --frames 5
