"""The models the widgets are built on load without Qt, napari or magicgui.

Every ``*_model.py`` under ``napari_fbias/_qt`` (and the kind -> layer-type
map) holds logic the widgets only show: it must be importable, and testable,
in an interpreter without a GUI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import napari_fbias

QT_DIR = Path(napari_fbias.__file__).parent / "_qt"
GUI_MODULES = ("qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "napari", "superqt")


def _model_modules() -> list[str]:
    files = sorted(QT_DIR.rglob("*_model.py")) + [QT_DIR / "layer_kinds.py"]
    root = QT_DIR.parent.parent
    return [".".join(f.relative_to(root).with_suffix("").parts) for f in files]


def test_the_models_of_the_widgets_import_no_gui() -> None:
    modules = _model_modules()
    assert len(modules) >= 7  # run_pipeline: edit, inputs, run; omero: login, browse, sendback
    code = "\n".join(f"import {m}" for m in modules)
    code += "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    loaded = {m.split(".")[0] for m in json.loads(out.stdout.strip().splitlines()[-1])}
    assert not loaded & set(GUI_MODULES), f"{modules} imported {loaded & set(GUI_MODULES)}"
