#!/usr/bin/env bash
# The main job on the embedded default: no camera, no server. Sets up .venv on first use.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-venv.sh" demo
exec "$root/.venv/bin/keycam" demo "$@"
