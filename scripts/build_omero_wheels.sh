#!/usr/bin/env bash
# Build zeroc-ice 3.6.5 for the active Python (no wheel exists for Python >= 3.11 on PyPI),
# cache the wheel, and install zeroc-ice + omero-py + omero-rois into the active environment.
#
# Usage (inside the project's virtual environment):
#     scripts/build_omero_wheels.sh            # build once (cached), then install
#     FBIAS_WHEEL_CACHE=/ci/cache scripts/build_omero_wheels.sh
#     scripts/build_omero_wheels.sh --build-only   # fill the cache, install nothing
#
# Idempotent: the compile step (~12 min on 2 cores) is skipped when the cache already holds a
# zeroc-ice wheel for this interpreter and platform. Needs a C++ compiler, the Python headers,
# libssl-dev and libbz2-dev (Debian/Ubuntu: apt-get install -y g++ libssl-dev libbz2-dev).
#
# Environment:
#     FBIAS_WHEEL_CACHE   wheel cache folder (default: ~/.cache/napari-fbias/wheels)
#     PYTHON              interpreter to build for/install into (default: python of the PATH)
#     OMERO_PY_SPEC       pip requirement for omero-py   (default: omero-py>=5.19,<6)
#     OMERO_ROIS_SPEC     pip requirement for omero-rois (default: omero-rois>=0.4,<1)
set -euo pipefail

ICE_VERSION="3.6.5"
PYTHON="${PYTHON:-python}"
CACHE="${FBIAS_WHEEL_CACHE:-$HOME/.cache/napari-fbias/wheels}"
OMERO_PY_SPEC="${OMERO_PY_SPEC:-omero-py>=5.19,<6}"
OMERO_ROIS_SPEC="${OMERO_ROIS_SPEC:-omero-rois>=0.4,<1}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PATCH="$HERE/patches/zeroc-ice-${ICE_VERSION}-py311.patch"
BUILD_ONLY=0
if [[ "${1:-}" == "--build-only" ]]; then
    BUILD_ONLY=1
fi

log() { printf '[build_omero_wheels] %s\n' "$*" >&2; }

# The wheel tag of this interpreter, e.g. cp311-cp311-linux_x86_64.
TAG="$("$PYTHON" - <<'EOF'
import sys, sysconfig
v = f"cp{sys.version_info.major}{sys.version_info.minor}"
plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
print(f"{v}-{v}-{plat}")
EOF
)"
WHEEL_GLOB="zeroc_ice-${ICE_VERSION}-${TAG}.whl"
mkdir -p "$CACHE"

find_cached() {
    local f
    for f in "$CACHE"/$WHEEL_GLOB; do
        if [[ -f "$f" ]]; then
            printf '%s\n' "$f"
            return 0
        fi
    done
    return 1
}

if WHEEL="$(find_cached)"; then
    log "using cached wheel $WHEEL"
else
    # Prefer an official wheel if PyPI has one for this interpreter (Python <= 3.10).
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/fbias-ice.XXXXXX")"
    trap 'rm -rf "$WORK"' EXIT
    if "$PYTHON" -m pip download --quiet --no-deps --only-binary :all: \
        "zeroc-ice==${ICE_VERSION}" -d "$WORK/bin" 2>/dev/null; then
        WHEEL_SRC="$(ls "$WORK"/bin/*.whl)"
        log "PyPI has a binary wheel: $(basename "$WHEEL_SRC")"
    else
        log "no binary wheel for $TAG on PyPI; building zeroc-ice ${ICE_VERSION} from source"
        "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
            "zeroc-ice==${ICE_VERSION}" -d "$WORK/sdist"
        tar -xzf "$WORK"/sdist/zeroc-ice-"${ICE_VERSION}".tar.gz -C "$WORK"
        SRC="$WORK/zeroc-ice-${ICE_VERSION}"
        # Python 3.11: <eval.h> is gone and PyThreadState is opaque (see the patch header).
        if "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
            log "applying $(basename "$PATCH")"
            patch -d "$SRC" -p1 --forward --quiet < "$PATCH"
        fi
        # setup.py imports setuptools + distutils from the environment; make sure they exist.
        if ! "$PYTHON" -c 'import setuptools, wheel' 2>/dev/null; then
            "$PYTHON" -m pip install --quiet setuptools wheel
        fi
        "$PYTHON" -m pip wheel --no-deps --no-build-isolation -w "$WORK/bin" "$SRC"
        WHEEL_SRC="$(ls "$WORK"/bin/zeroc_ice-*.whl)"
    fi
    # Atomic placement in the cache: copy to a temporary sibling, then rename.
    WHEEL="$CACHE/$(basename "$WHEEL_SRC")"
    cp "$WHEEL_SRC" "$WHEEL.part"
    mv -f "$WHEEL.part" "$WHEEL"
    log "cached $WHEEL"
fi

if [[ "$BUILD_ONLY" == 1 ]]; then
    exit 0
fi

log "installing $(basename "$WHEEL"), $OMERO_PY_SPEC, $OMERO_ROIS_SPEC"
"$PYTHON" -m pip install --quiet "$WHEEL"
"$PYTHON" -m pip install --quiet --find-links "$CACHE" "$OMERO_PY_SPEC" "$OMERO_ROIS_SPEC"
"$PYTHON" - <<'EOF'
import importlib.metadata as md

import Ice
import omero
import omero.gateway
import omero_rois

print("omero-py", md.version("omero-py"), "omero-rois", md.version("omero-rois"),
      "zeroc-ice", Ice.stringVersion())
EOF
