"""The delivery bundle from the Session panel's Export tab (issue 11, item 6).

The panel writes the bundle ``fbias export`` writes for the same session
link, approaches and zip choice (file for file), in a worker thread, and
then opens ``report.html`` in the system browser. A screenshot of the tab
at 1366x768 shows that it fits (``FBIAS_SCREENSHOTS=folder`` keeps it).
"""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import QUrl
from qtpy.QtGui import QDesktopServices
from widget_helpers import add_sample, wait_job

from napari_fbias._qt.session_widget import SessionWidget
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.cli import main

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

#: When a bundle was written (in its pipelines, README, report, RO-Crate): all that may differ.
WRITTEN_AT = re.compile(rb"\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d)?(\.\d+)?Z?")


def files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in folder.rglob("*") if p.is_file()}


def content(path: Path) -> bytes:
    """A bundle file's bytes, its writing time blanked; checksums: the files listed, not theirs."""
    data = WRITTEN_AT.sub(b"TIME", path.read_bytes())
    if path.name == "checksums.sha256":
        data = b"\n".join(line.split(b"  ")[-1] for line in data.splitlines())
    return data


def settle(qtbot: Any, panel: SessionWidget, timeout: int = 120000) -> None:
    qtbot.waitUntil(lambda: not panel.busy and not panel.workspace.busy, timeout=timeout)


def two_approaches(qtbot: Any, viewer: Any, panel: SessionWidget) -> Any:
    """Start a session in the panel; A: the nuclei recipe, B: a threshold; A is the solution."""
    panel.form.title.setText("Nuclei per field")
    panel.form.user.setText("Ann")
    panel.form.analysts.setText("Marie, Jon")
    rec = panel.start_session()
    ws = get_workspace(viewer)
    image = viewer.layers["nuclei_2d"]
    runs = (("recipe", "Marie", "segment.nuclei"), ("otsu", "Jon", "segment.threshold"))
    for title, analyst, op in runs:
        panel.new_title.setText(title)
        panel.new_analyst.setCurrentText(analyst)
        panel.add_approach()
        assert wait_job(qtbot, ws.run_op(op, {"image": image}, {})).error is None
    rec.set_solution("the nuclei recipe", approach="A")
    settle(qtbot, panel)
    return rec


def test_export_from_the_panel_writes_what_fbias_export_writes(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    viewer = make_napari_viewer()
    add_sample(viewer, "nuclei_2d")
    panel = SessionWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Session")
    box = panel.export_box
    assert not box.export_button.isEnabled()  # no session yet
    rec = two_approaches(qtbot, viewer, panel)
    panel.tabs.setCurrentIndex(panel.tabs.count() - 1)
    assert panel.tabs.tabText(panel.tabs.currentIndex()) == "Export"
    assert box.chosen_approaches() == ["A"]  # the solution's, as fbias export chooses
    box.set_chosen(["A", "B"])
    dest = tmp_path / "deliveries" / "ann"  # its parent folder is made
    box.folder.setText(str(dest))
    box.zip.setChecked(True)
    command = f"fbias export {rec.link} -o {dest} --approach A --approach B --zip"
    assert box.command.text() == command
    opened: list[QUrl] = []
    monkeypatch.setattr(QDesktopServices, "openUrl", lambda url: opened.append(url) or True)
    assert not box.report_button.isEnabled()

    box.export_button.click()
    assert box.busy and not box.export_button.isEnabled()  # written in a worker
    settle(qtbot, panel)
    assert box.error is None, box.status.text()
    result = box.result
    assert result.folder == dest and result.approaches == ("A", "B")
    assert f"written to {dest} and {dest}.zip" in box.status.text()

    # the same bundle as fbias export of the same link
    cli = tmp_path / "cli" / "ann"
    cli.parent.mkdir()
    args = ["export", rec.link, "-o", str(cli), "--approach", "A", "--approach", "B", "--zip"]
    assert main(args) == 0
    mine, theirs = files(dest), files(cli)
    assert sorted(mine) == sorted(theirs)
    assert {"pipeline_A.fbias.yaml", "pipeline_B.fbias.yaml", "report.html"} <= set(mine)
    for rel in sorted(mine):
        assert content(mine[rel]) == content(theirs[rel]), rel
    with zipfile.ZipFile(f"{dest}.zip") as a, zipfile.ZipFile(f"{cli}.zip") as b:
        assert sorted(a.namelist()) == sorted(b.namelist())

    # then the report, in the system browser
    assert box.report_button.isEnabled()
    box.report_button.click()
    assert opened == [QUrl.fromLocalFile(str(dest / "report.html"))]

    # exporting to the same folder again is refused, and says why
    box.export_button.click()
    settle(qtbot, panel)
    assert box.result is None and "already exists" in (box.error or "")
    assert "Not exported" in box.status.text()


def test_the_export_tab_fits_a_small_screen(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer(show=True)
    viewer.window.resize(1366, 768)
    add_sample(viewer, "nuclei_2d")
    _, panel = viewer.window.add_plugin_dock_widget("napari-fbias", "Session")
    two_approaches(qtbot, viewer, panel)
    box = panel.export_box
    panel.tabs.setCurrentIndex(panel.tabs.count() - 1)
    box.folder.setText(str(tmp_path / "delivery"))
    box.zip.setChecked(True)
    box.export_button.click()
    settle(qtbot, panel)
    assert box.result is not None, box.status.text()
    qtbot.wait(200)
    window = viewer.window._qt_window
    assert window.width() <= 1366 and window.height() <= 768
    area = panel.tabs.currentWidget()  # the tab's scroll area
    assert not area.horizontalScrollBar().isVisible(), "the Export tab is wider than its dock"
    assert box.status.width() <= area.viewport().width()
    out = Path(os.environ.get("FBIAS_SCREENSHOTS", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    assert window.grab().save(str(out / "export_tab_1366x768.png"))
    assert panel.grab().save(str(out / "export_tab_panel.png"))
    panel.tabs.setCurrentIndex(1)  # the recorded steps, with "Load settings into the widget"
    qtbot.wait(100)
    assert not panel.tabs.currentWidget().horizontalScrollBar().isVisible()
    assert panel.grab().save(str(out / "approaches_tab_panel.png"))
