"""napari starts with the plugin's widgets and says nothing: no deprecation notice, no warning.

napari 0.9 shows "support for the PyQt5 backend is deprecated" at every start
on PyQt5, and warns that system theme detection needs Qt6; the `qt` extra is
PyQt6 for that reason. The check runs napari in a fresh interpreter (the
notice is shown once per process) with the warning filters a user has.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import qtpy

pytestmark = pytest.mark.qt

START = r"""
import json, sys, warnings

caught = []
warnings.showwarning = lambda message, category, filename, lineno, *a: caught.append(
    f"{category.__name__}: {message} ({filename}:{lineno})"
)
warnings.filterwarnings("default", module="napari_fbias")

import napari, qtpy
from npe2 import PluginManager
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication

notes = []
notification_manager.notification_ready.connect(
    lambda n: notes.append(f"{n.severity}: {n.message}")
)
viewer = napari.Viewer(show=True)
manifest = PluginManager.instance().get_manifest("napari-fbias")
napari_fbias_widgets = [w.display_name for w in manifest.contributions.widgets]
viewer.open_sample("napari-fbias", "nuclei_2d")
for widget in napari_fbias_widgets:
    viewer.window.add_plugin_dock_widget("napari-fbias", widget)
QTimer.singleShot(1000, QApplication.instance().quit)
napari.run()
print(json.dumps({"binding": qtpy.API_NAME, "warnings": caught, "notifications": notes}))
"""


def test_napari_starts_without_deprecation_notices(tmp_path: Path) -> None:
    if qtpy.API_NAME == "PyQt5":
        pytest.skip("napari deprecates PyQt5 itself: the `qt` extra installs PyQt6")
    env = {
        **os.environ,
        "FBIAS_SESSION_DIR": str(tmp_path / "sessions"),
        "FBIAS_CONFIG_DIR": str(tmp_path / "config"),
        "QT_API": os.environ.get("QT_API", qtpy.API_NAME.lower()),
        "PYTHONWARNINGS": "",
    }
    out = subprocess.run(
        [sys.executable, "-c", START],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["binding"] == qtpy.API_NAME
    assert seen["notifications"] == [], seen["notifications"]
    assert seen["warnings"] == [], seen["warnings"]
