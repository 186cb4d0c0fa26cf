#!/usr/bin/env bash
# Set up everything napari-fbias needs on a fresh Debian/Ubuntu machine (idempotent).
#
#   bash scripts/setup.sh            # system packages (if root), .venv, the project with every
#                                    # extra but omero ("all": napari + PyQt6, cellpose, s3, slurm)
#                                    # and the test tools ("testing")
#
# Environment:
#   FBIAS_VENV=path        virtual environment to use/create (default: .venv in the repository)
#   FBIAS_SKIP_APT=1       do not install system packages
#   FBIAS_WITH_OMERO=0     do not build/install omero-py (default: build it when the script exists)
#   FBIAS_KEEP_PYQT5=1     keep a PyQt5 left in the environment by an older setup (default: remove
#                          it, since qtpy, and so napari, would pick it before PyQt6)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$here"
venv="${FBIAS_VENV:-$here/.venv}"
py="${PYTHON:-python3}"

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# --- system packages: a virtual display and OpenGL for napari, Chromium for report tests, and a
# one-node SLURM (started by tests/helpers/slurm.py, never as a service) for the SLURM batch tests
apt_pkgs=(xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libxkbcommon-x11-0 libxkbcommon0
  libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0
  libxcb-xinerama0 libxcb-shape0 libxcb-xfixes0 libxcb-xkb1 libdbus-1-3 libfontconfig1
  chromium chromium-driver g++ libssl-dev libbz2-dev slurmctld slurmd slurm-client munge)
if [ "${FBIAS_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1; then
  missing=()
  for p in "${apt_pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
    log "installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# --- the virtual environment --------------------------------------------------------------------
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$py" -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"
stamp="$venv/.fbias-setup-stamp"
want="$(cat pyproject.toml scripts/setup.sh requirements/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && python -c "import napari_fbias" 2>/dev/null; then
  log "environment up to date ($venv)"
else
  python -m pip install -q --upgrade pip wheel setuptools
  # PyTorch: a CPU build when one is available locally (this machine ships one), otherwise
  # let cellpose pull the default build from PyPI.
  torch_whl="$(ls /opt/wheels/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n1 || true)"
  if ! python -c "import torch" 2>/dev/null && [ -n "$torch_whl" ]; then
    log "installing PyTorch (CPU) from $torch_whl"
    python -m pip install -q "$torch_whl"
  fi
  # cellpose 3: cellpose 4 needs torchvision, which has no build matching a CPU-only torch here.
  # Everything, so that every test runs: `pip install napari-fbias` alone is the headless core
  # (tests/test_install_core.py installs that in a fresh environment and runs `fbias run`).
  log "installing napari-fbias with all its extras and the test tools (a few minutes on a fresh machine)"
  python -m pip install -q -c requirements/constraints.txt "cellpose>=3.1,<4" -e ".[all,testing]"
  # The `qt` extra is PyQt6. A PyQt5 installed by an older setup would still be the binding that
  # qtpy (and so napari) picks first, with napari's PyQt5 deprecation notice at every start.
  if [ "${FBIAS_KEEP_PYQT5:-0}" != "1" ] && python -m pip show -q PyQt5 >/dev/null 2>&1; then
    log "removing PyQt5 (napari-fbias uses PyQt6; FBIAS_KEEP_PYQT5=1 keeps it)"
    python -m pip uninstall -y -q PyQt5 PyQt5-Qt5 PyQt5-sip
  fi
  # the notebooks (and their tests) run on this environment's kernel
  python -m ipykernel install --sys-prefix --name python3 >/dev/null
  echo "$want" > "$stamp"
fi

# --- omero-py (optional extra; needs a patched zeroc-ice build on Python 3.11) -----------------
if [ "${FBIAS_WITH_OMERO:-1}" = "1" ] && [ -f scripts/build_omero_wheels.sh ]; then
  if ! python -c "import omero.gateway, omero_rois" 2>/dev/null; then
    log "building/installing omero-py (first time: ~12 min to compile zeroc-ice)"
    bash scripts/build_omero_wheels.sh
  fi
fi
log "ready: . $venv/bin/activate"
