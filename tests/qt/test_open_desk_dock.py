"""A whole mock consultation in the Open desk dock, on a 1366x768 screen, with no command line.

Open the sample -> start a session in the Session tab -> approach A (the
nuclei recipe) and approach B (a threshold) run from the Analyse tab, the
approach being recorded chosen above the tabs -> a 500-character error
leaves the canvas its 40 % on every tab -> a recorded step's settings load
back into Segment (the dock shows it) -> conclusion and export from the
Export tab -> the viewer closes, a new one reopens the session from the
Session tab with its result layers bit for bit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_fit_width import LONG_ERROR, SCREEN, _layout, _settle
from widget_helpers import add_sample

from napari_fbias._qt.open_desk import MAX_WIDTH, TABS, OpenDeskWidget
from napari_fbias._qt.workspace import get_workspace

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

PLUGIN = "napari-fbias"


def settle(qtbot: Any, desk: OpenDeskWidget, timeout: int = 120000) -> None:
    qtbot.waitUntil(lambda: not desk.session.busy and not desk.workspace.busy, timeout=timeout)


def run(qtbot: Any, widget: Any) -> None:
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert "done" in widget.status.value, widget.status.value


def current_tab(desk: OpenDeskWidget) -> str:
    return desk.tabs.tabText(desk.tabs.currentIndex())


def assert_fits(qtbot: Any, viewer: Any) -> None:
    _settle(qtbot, viewer.window._qt_window)
    width, height, canvas = _layout(viewer)
    assert width <= SCREEN[0], f"the window is {width} px wide"
    assert height <= SCREEN[1], f"the window is {height} px high"
    assert canvas >= 0.4 * width, f"the canvas has {canvas} of {width} px"


def assert_no_sideways_scrolling(qtbot: Any, desk: OpenDeskWidget) -> None:
    """No page of the dock is wider than the dock (nothing hides off its right edge)."""
    for title in TABS:
        desk.show_page(title)
        qtbot.wait(20)
        page = desk.tabs.currentWidget()
        if hasattr(page, "horizontalScrollBar"):
            assert not page.horizontalScrollBar().isVisible(), f"the {title} tab scrolls sideways"


def test_a_whole_consultation_in_the_open_desk_dock(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    viewer = make_napari_viewer(show=True)
    add_sample(viewer, "nuclei_2d")
    _, desk = viewer.window.add_plugin_dock_widget(PLUGIN, "Open desk")
    assert isinstance(desk, OpenDeskWidget)
    assert [desk.tabs.tabText(i) for i in range(desk.tabs.count())] == list(TABS)
    assert desk.width() <= MAX_WIDTH
    settle(qtbot, desk)
    assert_fits(qtbot, viewer)
    image = viewer.layers["nuclei_2d"]

    # --- Session tab: who came with which question ------------------------------------------
    panel = desk.session
    desk.show_page("Session")
    panel.form.title.setText("Nuclei per field")
    panel.form.user.setText("Ann")
    panel.form.question.setText("How many nuclei per field?")
    panel.form.analysts.setText("Marie, Jon")
    panel.start_button.click()
    rec = get_workspace(viewer).recorder
    assert rec is not None
    assert current_tab(desk) == "Approaches"  # what comes next
    assert panel.active_choice.currentData() is None  # no approach yet, and it says so
    assert "add one" in panel.active_choice.currentText()

    # --- Approaches + Analyse: A, the nuclei recipe; B, a threshold ---------------------------
    for title, analyst in (("recipe", "Marie"), ("otsu", "Jon")):
        panel.new_title.setText(title)
        panel.new_analyst.setCurrentText(analyst)
        panel.add_approach_button.click()
    assert rec.session.active == "B"
    assert panel.active_choice.currentText() == "B — otsu (Jon)"
    # switch back to A above the tabs, from the Analyse tab
    desk.show_page("Segment")
    assert current_tab(desk) == "Analyse"
    assert desk.analyse.currentWidget() is desk.segment.native
    panel.active_choice.setCurrentIndex(panel.active_choice.findData("A"))
    panel.active_choice.activated.emit(panel.active_choice.currentIndex())
    assert rec.session.active == "A"
    assert desk.segment.inputs["image"].value is image
    run(qtbot, desk.segment)  # the nuclei recipe (the default)
    panel.active_choice.setCurrentIndex(panel.active_choice.findData("B"))
    panel.active_choice.activated.emit(panel.active_choice.currentIndex())
    assert rec.session.active == "B"
    desk.segment.method.value = "segment.threshold"
    run(qtbot, desk.segment)
    settle(qtbot, desk)
    assert [s.op for s in rec.session.approach("A").steps] == ["segment.nuclei"]
    assert [s.op for s in rec.session.approach("B").steps] == ["segment.threshold"]
    recorded = {name: np.asarray(viewer.layers[name].data).copy() for name in ("A: nuclei",)}

    # --- a 500-character error: the canvas keeps its 40 % on every tab -----------------------
    desk.segment.status.value = LONG_ERROR
    for title in TABS:
        desk.show_page(title)
        assert_fits(qtbot, viewer)
    assert_no_sideways_scrolling(qtbot, desk)

    # --- a recorded step's settings back into Segment; the dock shows it ----------------------
    panel.switch_to("A")
    desk.show_page("Approaches")
    panel.steps_table.selectRow(0)
    panel.load_settings_button.click()
    assert desk.segment.method.value == "segment.nuclei"
    assert current_tab(desk) == "Analyse" and desk.analyse.currentWidget() is desk.segment.native

    # --- Export tab: the conclusion, then the bundle --------------------------------------------
    desk.show_page("Conclusion")
    assert current_tab(desk) == "Export"
    panel.solution_approach.setCurrentIndex(panel.solution_approach.findData("A"))
    panel.solution_approach.activated.emit(panel.solution_approach.currentIndex())
    assert rec.session.solution.approach == "A"
    box = panel.export_box
    dest = tmp_path / "delivery"
    box.folder.setText(str(dest))
    box.export_button.click()
    settle(qtbot, desk)
    qtbot.waitUntil(lambda: not box.busy, timeout=120000)
    assert box.error is None, box.status.text()
    # approach A alone (the solution): its pipeline file has no key in its name
    assert (dest / "report.html").is_file() and (dest / "pipeline.fbias.yaml").is_file()
    assert_fits(qtbot, viewer)
    link = rec.link

    # --- a new napari reopens it from the Session tab, with its layers ------------------------
    viewer.close()
    other = make_napari_viewer(show=True)
    _, desk2 = other.window.add_plugin_dock_widget(PLUGIN, "Open desk")
    settle(qtbot, desk2)
    desk2.session.reopen(link)
    settle(qtbot, desk2)
    assert desk2.session.recorder is not None, desk2.session.status.text()
    assert current_tab(desk2) == "Approaches"
    np.testing.assert_array_equal(other.layers["A: nuclei"].data, recorded["A: nuclei"])
    assert_fits(qtbot, other)
