#!/usr/bin/env bash
# Run every check CI runs: lint, import direction, manifest, the test suite under a virtual display.
#
#   bash scripts/test.sh                 # full suite (sets up the environment first)
#   bash scripts/test.sh tests/test_x.py # extra arguments go to pytest
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${FBIAS_VENV:-$here/.venv}/bin/activate"
echo "[test] ruff" >&2
ruff check src tests bench scripts notebooks
ruff format --check src tests bench scripts
echo "[test] import direction (core is Qt-free)" >&2
lint-imports
echo "[test] npe2 manifest" >&2
npe2 validate napari-fbias
echo "[test] pytest" >&2
xvfb-run -a -s "-screen 0 1280x1024x24" python -m pytest "$@"
