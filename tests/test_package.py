"""The package as installed: light import, Qt-free core, a valid manifest, a working wheel."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE_PACKAGES = ("io", "ops", "pipeline", "session")
QT_MODULES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "napari", "vispy")


def _core_modules() -> list[str]:
    src = ROOT / "src" / "napari_fbias"
    mods = ["napari_fbias", "napari_fbias.api", "napari_fbias.cli", "napari_fbias.demo"]
    for pkg in CORE_PACKAGES:
        for f in sorted((src / pkg).rglob("*.py")):
            rel = f.relative_to(src.parent).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods.append(".".join(parts))
    return [m for m in mods if importlib.util.find_spec(m) is not None]


def _imported_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_import_package_is_light():
    mods = _imported_after("import napari_fbias")
    leaked = {m.split(".")[0] for m in mods} & set(QT_MODULES)
    assert not leaked, f"`import napari_fbias` imported {leaked}"


def test_core_modules_do_not_import_qt_or_napari():
    code = "\n".join(f"import {m}" for m in _core_modules())
    mods = _imported_after(code)
    leaked = {m.split(".")[0] for m in mods} & set(QT_MODULES)
    assert not leaked, f"the core imported {leaked}"


def test_manifest_is_valid_and_every_command_resolves():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("napari-fbias")
    assert pm.name == "napari-fbias"
    for cmd in pm.contributions.commands or []:
        mod_name, _, attr = cmd.python_name.partition(":")
        mod = importlib.import_module(mod_name)
        assert callable(getattr(mod, attr)), cmd.id
    keys = {s.key for s in pm.contributions.sample_data or []}
    assert {"nuclei_2d", "spots_timelapse", "cells_3d", "nuclei_multiscale"} <= keys


def test_manifest_at_root_is_the_packaged_one():
    packaged = ROOT / "src" / "napari_fbias" / "napari.yaml"
    assert packaged.resolve() == (ROOT / "napari.yaml").resolve()


@pytest.mark.slow
def test_wheel_contains_manifest_and_sample_data_and_is_discovered(tmp_path):
    """Build a real wheel, install it in isolation, and let npe2 find it there."""
    wheel_dir = tmp_path / "wheel"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "build",
            "--wheel",
            "--no-isolation",
            "-o",
            str(wheel_dir),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = wheel_dir.glob("napari_fbias-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "napari_fbias/napari.yaml" in names
    prefix = "napari_fbias/sample_data/"
    shipped = [n for n in names if n.startswith(prefix) and not n.endswith("/")]
    repo_files = [p for p in (ROOT / "sample_data").rglob("*") if p.is_file()]
    assert len(shipped) == len(repo_files) > 0

    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
    )
    probe = (
        "import napari_fbias, npe2, json, importlib.resources as r\n"
        "pm = npe2.PluginManifest.from_distribution('napari-fbias')\n"
        "shipped = r.files('napari_fbias').joinpath('sample_data')\n"
        "print(json.dumps({'file': napari_fbias.__file__, 'name': pm.name,\n"
        "  'samples': sorted(p.name for p in shipped.iterdir())}))"
    )
    # The isolated install comes first on sys.path, ahead of the editable one.
    env = {**os.environ, "PYTHONPATH": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, env=env
    )
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["file"].startswith(str(target))
    assert info["name"] == "napari-fbias"
    assert info["samples"]
