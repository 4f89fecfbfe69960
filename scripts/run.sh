#!/usr/bin/env bash
# The main job on the embedded default: no camera, no server. Sets up .venv on first use.
# 1. keycam demo: a package-shipped photo through firmware_sim and the edge transform (byte-identical), one PNG;
# 2. keycam run: the virtual sensor replays package-shipped Fashion-MNIST frames through the default keyed model.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-venv.sh" demo
"$root/.venv/bin/keycam" demo
exec "$root/.venv/bin/keycam" run "$@"
