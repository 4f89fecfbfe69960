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
    echo "$want" > "$stamp"
fi
