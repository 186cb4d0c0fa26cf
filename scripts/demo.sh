#!/usr/bin/env bash
# The main job, headless: set up, then run a complete scripted open-desk demo on the bundled sample data.
#
#   bash scripts/demo.sh [OUTDIR]        # default OUTDIR: ./demo_output
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
bash scripts/setup.sh
# shellcheck disable=SC1091
. "${FBIAS_VENV:-$here/.venv}/bin/activate"
fbias demo -o "${1:-demo_output}"
