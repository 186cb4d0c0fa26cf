"""scripts/build_omero_wheels.sh: valid bash, idempotent (a cached wheel skips the build)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "build_omero_wheels.sh"
PATCH = ROOT / "scripts" / "patches" / "zeroc-ice-3.6.5-py311.patch"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def _tag() -> str:
    v = f"cp{sys.version_info.major}{sys.version_info.minor}"
    return f"{v}-{v}-{sysconfig.get_platform().replace('-', '_').replace('.', '_')}"


def test_script_is_valid_bash_and_its_patch_covers_both_fixes():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)
    patch = PATCH.read_text()
    assert "-#include <eval.h>" in patch
    assert "PyThreadState_GetFrame(PyThreadState_GET())" in patch
    assert "Py_XDECREF(f);" in patch


def test_cached_wheel_skips_the_build(tmp_path):
    cache = tmp_path / "wheels"
    cache.mkdir()
    wheel = cache / f"zeroc_ice-3.6.5-{_tag()}.whl"
    wheel.write_bytes(b"not a real wheel: must not be rebuilt nor touched")
    before = wheel.stat().st_mtime_ns
    out = subprocess.run(
        ["bash", str(SCRIPT), "--build-only"],
        env={
            "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
            "FBIAS_WHEEL_CACHE": str(cache),
            "HOME": str(tmp_path),
            "PYTHON": sys.executable,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"using cached wheel {wheel}" in out.stderr
    assert "building" not in out.stderr
    assert wheel.stat().st_mtime_ns == before
    assert sorted(p.name for p in cache.iterdir()) == [wheel.name]
