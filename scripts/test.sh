#!/usr/bin/env bash
# The whole test suite. Sets up .venv on first use; extra arguments go to pytest.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup-venv.sh" test
cd "$root"
exec "$root/.venv/bin/python" -m pytest "$@"
