"""The Session panel in a real napari viewer: every action goes through the recorder.

Each test drives the panel's own widgets (fields, buttons, lists, tables) and
checks both what the panel shows and what the journal on disk holds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QFocusEvent
from qtpy.QtWidgets import QApplication

from napari_fbias._qt.session_widget import SessionWidget
from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io import samples
from napari_fbias.session import SessionRecorder, load_session
from napari_fbias.session.recompute import recompute_approach

pytestmark = pytest.mark.qt

SECRET = "hunter2-s3cr3t"


def events(rec: Any, name: str | None = None) -> list[dict]:
    """The journal's events (optionally only those called ``name``)."""
    lines = Path(rec.journal_path).read_text(encoding="utf-8").splitlines()
    out = [json.loads(line) for line in lines]
    return [e for e in out if name is None or e["event"] == name]


def focus_out(widget: Any) -> None:
    """Tell a widget it lost the focus, as clicking elsewhere does."""
    QApplication.sendEvent(
        widget, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.MouseFocusReason)
    )


def settle(qtbot: Any, panel: SessionWidget) -> None:
    """Wait until the panel's workers (session list, object counts) are done."""
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)


def run(qtbot: Any, viewer: Any, op: str, inputs: dict[str, str], params: dict) -> Any:
    """Run an op through the workspace (as the op widgets do) and wait for it."""
    ws = get_workspace(viewer)
    worker = ws.run_op(op, {k: viewer.layers[v] for k, v in inputs.items()}, params)
    qtbot.waitUntil(lambda: worker.fbias_job.done, timeout=60000)
    assert worker.fbias_job.error is None, worker.fbias_job.error
    return worker.fbias_job


def n_objects(layer: Any) -> int:
    values = np.unique(np.asarray(layer.data))
    return int(np.count_nonzero(values))


@pytest.fixture
def session_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sessions"
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(root))
    return root


@pytest.fixture
def viewer(make_napari_viewer: Any) -> Any:
    return make_napari_viewer()


@pytest.fixture
def panel(viewer: Any, qtbot: Any, session_root: Path) -> Iterator[SessionWidget]:
    w = SessionWidget(viewer)
    viewer.window.add_dock_widget(w, name="Session")
    settle(qtbot, w)
    yield w
    settle(qtbot, w)


def start(panel: SessionWidget, analysts: str = "Marie, Jean") -> Any:
    panel.form.title.setText("Nuclei per field")
    panel.form.user.setText("Ann")
    panel.form.lab.setText("Cell lab")
    panel.form.question.setText("How many nuclei per field?")
    panel.form.analysts.setText(analysts)
    panel.start_button.click()
    assert panel.recorder is not None
    return panel.recorder


def add_approach(panel: SessionWidget, title: str, analyst: str) -> str:
    panel.new_title.setText(title)
    panel.new_analyst.setCurrentText(analyst)
    panel.add_approach_button.click()
    return panel.session.active


def open_sample(viewer: Any) -> Any:
    viewer.open_sample("napari-fbias", "nuclei_2d")
    return viewer.layers["nuclei_2d"]


def test_start_session_records_who_came_and_lists_it(
    panel: SessionWidget, viewer: Any, qtbot: Any, session_root: Path
) -> None:
    assert not panel.save_button.isEnabled()  # nothing to save before a session
    rec = start(panel, analysts="Marie, Jean, Marie")
    assert get_workspace(viewer).recorder is rec
    assert Path(rec.folder).parent == session_root
    (first,) = events(rec, "session_started")
    assert first["session"]["user"] == {"name": "Ann", "lab": "Cell lab"}
    assert first["session"]["question"] == "How many nuclei per field?"
    assert first["session"]["analysts"] == ["Marie", "Jean"]
    assert "Nuclei per field" in panel.header.text()
    assert "Ann (Cell lab)" in panel.header.text()
    assert panel.save_button.isEnabled()
    settle(qtbot, panel)
    table = panel.session_table
    assert table.rowCount() == 1
    assert table.item(0, 1).text() == "Nuclei per field"
    assert table.item(0, 3).text() == "How many nuclei per field?"


def test_approaches_add_switch_and_show_recorded_steps(
    panel: SessionWidget, viewer: Any, qtbot: Any
) -> None:
    rec = start(panel)
    assert add_approach(panel, "classical", "Marie") == "A"
    assert add_approach(panel, "threshold + watershed", "Jean") == "B"
    texts = [panel.approach_list.item(i).text() for i in range(panel.approach_list.count())]
    assert [t.strip() for t in texts] == [
        "A — classical (Marie)",
        "● B — threshold + watershed (Jean)",
    ]
    open_sample(viewer)

    panel.approach_list.setCurrentRow(0)  # the analyst clicks approach A
    assert rec.session.active == "A"
    assert events(rec, "approach_switched")[-1]["approach"] == "A"
    assert panel.active_box.title() == "Active approach: A — classical (Marie)"
    run(qtbot, viewer, "segment.nuclei", {"image": "nuclei_2d"}, {"min_size": 40})
    assert panel.steps_table.row_texts() == [
        ("nuclei", "segment.nuclei", "min_size=40", "A: nuclei")
    ]

    panel.approach_list.setCurrentRow(1)
    assert rec.session.active == "B"
    assert panel.steps_table.row_texts() == []
    run(qtbot, viewer, "segment.threshold", {"image": "nuclei_2d"}, {"min_size": 20})
    assert panel.steps_table.row_texts() == [
        ("threshold", "segment.threshold", "min_size=20", "B: threshold")
    ]
    assert [s.id for s in rec.session.approach("A").steps] == ["nuclei"]

    # re-running A's step replaces it: the table shows what was tried
    panel.approach_list.setCurrentRow(0)
    run(qtbot, viewer, "segment.nuclei", {"image": "nuclei_2d"}, {"min_size": 50})
    assert panel.steps_table.row_texts() == [
        ("nuclei · 1 tried", "segment.nuclei", "min_size=50", "A: nuclei")
    ]

    # the active approach's title and analyst can be corrected
    panel.active_title.setText("classical recipe")
    panel.active_title.editingFinished.emit()
    assert rec.session.approach("A").title == "classical recipe"
    last = events(rec, "field_set")[-1]
    assert (last["field"], last["value"], last["approach"]) == ("title", "classical recipe", "A")


def test_notes_are_recorded_when_editing_ends_not_per_keystroke(
    panel: SessionWidget, qtbot: Any
) -> None:
    rec = start(panel)
    add_approach(panel, "classical", "Marie")
    add_approach(panel, "cellpose", "Jean")
    panel.approach_list.setCurrentRow(0)

    qtbot.keyClicks(panel.notes, "otsu is fine")
    assert events(rec, "note_set") == []  # typing records nothing yet
    focus_out(panel.notes)
    assert [e["text"] for e in events(rec, "note_set")] == ["otsu is fine"]
    focus_out(panel.notes)  # nothing changed: nothing more recorded
    assert len(events(rec, "note_set")) == 1

    qtbot.keyClicks(panel.notes, "; li too")
    qtbot.keyClick(panel.notes, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert [e["text"] for e in events(rec, "note_set")][-1] == "otsu is fine; li too"

    # notes typed for A stay with A when B becomes active before the box lost the focus
    qtbot.keyClicks(panel.notes, " (checked)")
    panel.approach_list.setCurrentRow(1)
    assert rec.session.approach("A").notes == "otsu is fine; li too (checked)"
    assert rec.session.approach("B").notes == ""
    assert panel.notes.toPlainText() == ""

    # credentials typed in a URL are neither journaled nor shown back
    qtbot.keyClicks(panel.notes, f"data at https://ann:{SECRET}@example.org/a.zarr?token={SECRET}")
    focus_out(panel.notes)
    journal = Path(rec.journal_path).read_text(encoding="utf-8")
    assert SECRET not in journal
    assert rec.session.approach("B").notes == "data at https://example.org/a.zarr"
    assert panel.notes.toPlainText() == "data at https://example.org/a.zarr"


def test_compare_counts_objects_from_the_layers_and_toggles_visibility(
    panel: SessionWidget, viewer: Any, qtbot: Any
) -> None:
    rec = start(panel)
    image = open_sample(viewer)
    add_approach(panel, "classical", "Marie")
    run(qtbot, viewer, "segment.nuclei", {"image": "nuclei_2d"}, {})
    add_approach(panel, "threshold + watershed", "Jean")
    run(qtbot, viewer, "segment.threshold", {"image": "nuclei_2d"}, {"min_size": 20})
    run(
        qtbot,
        viewer,
        "segment.watershed_split",
        {"labels": "B: threshold", "image": "nuclei_2d"},
        {"min_distance": 4},
    )
    settle(qtbot, panel)
    a_layer = viewer.layers["A: nuclei"]
    b1, b2 = viewer.layers["B: threshold"], viewer.layers["B: watershed split"]
    n_a, n_b1, n_b2 = n_objects(a_layer), n_objects(b1), n_objects(b2)
    assert n_a > 10 and n_b2 >= n_b1 > 0

    table = panel.compare_table
    assert table.rowCount() == 2
    assert [table.cell_text(i, "Approach") for i in range(2)] == [
        "A — classical",
        "B — threshold + watershed",
    ]
    assert [table.cell_text(i, "Analyst") for i in range(2)] == ["Marie", "Jean"]
    assert [table.cell_text(i, "Steps") for i in range(2)] == ["1", "2"]
    assert table.cell_text(0, "Objects") == str(n_a)
    assert table.cell_text(1, "Objects") == f"threshold: {n_b1}, watershed split: {n_b2}"
    assert table.cell_text(1, "Summary") == "threshold → watershed_split"
    # the counts are recorded as each approach's result
    assert rec.session.approach("A").result["objects"] == {"A: nuclei": n_a}
    assert rec.session.approach("B").result["objects"] == {
        "B: threshold": n_b1,
        "B: watershed split": n_b2,
    }

    # counted from the layer, not from the record: edit the layer, count again
    edited = np.asarray(a_layer.data).copy()
    edited[edited > 5] = 0
    a_layer.data = edited
    panel.count_button.click()
    settle(qtbot, panel)
    assert table.cell_text(0, "Objects") == str(n_objects(a_layer))
    assert rec.session.approach("A").result["objects"] == {"A: nuclei": n_objects(a_layer)}

    table.set_shown("B", False)
    assert (b1.visible, b2.visible) == (False, False)
    assert a_layer.visible and image.visible
    table.set_shown("B", True)
    assert b1.visible and b2.visible


def test_conclusion_and_save_write_the_snapshot(panel: SessionWidget, qtbot: Any) -> None:
    rec = start(panel)
    add_approach(panel, "classical", "Marie")
    add_approach(panel, "cellpose", "Jean")
    panel.tabs.setCurrentIndex(3)

    combo = panel.solution_approach
    combo.setCurrentIndex(combo.findData("A"))
    combo.activated.emit(combo.currentIndex())
    qtbot.keyClicks(panel.solution_text, "Approach A with a background subtraction")
    focus_out(panel.solution_text)
    assert rec.session.solution.approach == "A"
    assert rec.session.solution.text == "Approach A with a background subtraction"

    for text in ("images at higher resolution", "uneven illumination"):
        panel.issues.field.setText(text)
        panel.issues.add_button.click()
    panel.issues.list.setCurrentRow(0)
    panel.issues.remove_button.click()
    qtbot.keyClicks(panel.next_steps.field, "send ten more images")
    qtbot.keyClick(panel.next_steps.field, Qt.Key.Key_Return)
    assert panel.issues.items() == ["uneven illumination"]
    assert panel.next_steps.items() == ["send ten more images"]

    panel.save_button.click()
    snapshot = Path(rec.folder) / "session.yaml"
    assert str(snapshot) in panel.status.text()
    saved = yaml.safe_load(snapshot.read_text(encoding="utf-8"))
    solution = {"approach": "A", "text": "Approach A with a background subtraction"}
    assert saved["solution"] == solution
    assert saved["issues"] == ["uneven illumination"]
    assert saved["next_steps"] == ["send ten more images"]
    assert [a["title"] for a in saved["approaches"]] == ["classical", "cellpose"]
    assert events(rec)[-1]["event"] == "snapshot_saved"


def test_reopen_lists_newest_first_and_restores_what_was_tried(
    panel: SessionWidget, viewer: Any, qtbot: Any, session_root: Path
) -> None:
    img, _ = samples.load_nuclei_2d()
    with SessionRecorder.start("Old visit", user_name="Bob", question="Old question") as old:
        old.add_approach("first look", "Marie")
    with SessionRecorder.start(
        "Nuclei per field", user_name="Ann", question="How many nuclei?", analysts=["Marie"]
    ) as new:
        new.add_image(img, layers={"nuclei_2d": {}})
        new.add_approach("classical", "Marie")
        new.record_step("segment.nuclei", {"min_size": 40}, {"image": "nuclei_2d"}, "A: nuclei")
        new.record_step("segment.nuclei", {"min_size": 45}, {"image": "nuclei_2d"}, "A: nuclei")
        new.set_notes("min_size 45 is better")
        new.set_result({"objects": {"A: nuclei": 57}})
    panel.refresh_button.click()
    settle(qtbot, panel)
    table = panel.session_table
    assert table.rowCount() == 2
    assert [table.item(i, 1).text() for i in range(2)] == ["Nuclei per field", "Old visit"]
    assert [table.item(i, 2).text() for i in range(2)] == ["Ann", "Bob"]
    assert [table.item(i, 3).text() for i in range(2)] == ["How many nuclei?", "Old question"]

    panel.form.analysts.setText("Marie, Carol")  # Marie is back: she goes on with her approach
    table.selectRow(0)
    panel.reopen_button.click()  # read, images opened, results recomputed: in a worker
    settle(qtbot, panel)
    rec = get_workspace(viewer).recorder
    assert rec is not None and Path(rec.folder) == Path(new.folder)
    assert panel.recorder is rec
    assert rec.session.analysts == ("Marie", "Carol")
    # the image is open again, from its source
    np.testing.assert_array_equal(np.asarray(viewer.layers["nuclei_2d"].data), img.data)
    # and what was tried is shown
    assert [panel.approach_list.item(i).text().strip() for i in range(1)] == [
        "● A — classical (Marie) · other napari"  # recorded by the napari of the first sitting
    ]
    assert panel.steps_table.row_texts() == [
        ("nuclei · 1 tried", "segment.nuclei", "min_size=45", "A: nuclei")
    ]
    assert panel.notes.toPlainText() == "min_size 45 is better"
    assert "Reopened Nuclei per field: 1 approach(es), 1 step(s)" in panel.status.text()
    assert "results of A recomputed here" in panel.status.text()
    # its result layer is back (recomputed bit for bit): Compare counts it, not the record
    expected = recompute_approach(load_session(new.link), "A")["nuclei"].data
    np.testing.assert_array_equal(viewer.layers["A: nuclei"].data, expected)
    settle(qtbot, panel)
    assert panel.compare_table.cell_text(0, "Objects") == str(n_objects(viewer.layers["A: nuclei"]))


def test_a_session_being_recorded_elsewhere_can_be_joined(
    panel: SessionWidget, viewer: Any, qtbot: Any, session_root: Path
) -> None:
    busy = SessionRecorder.start("Being recorded", user_name="Ann")
    damaged = session_root / "2020-01-01-broken-00000000"
    damaged.mkdir(parents=True)
    (damaged / "journal.jsonl").write_text('{"v": 1, "seq": 1, "event": "nonsense"}\nnot json\n')
    try:
        panel.refresh_button.click()
        settle(qtbot, panel)
        table = panel.session_table
        titles = [table.item(i, 1).text() for i in range(table.rowCount())]
        assert "Being recorded" in titles
        broken = titles.index("⚠ 2020-01-01-broken-00000000")
        assert "unknown event type" in table.item(broken, 1).toolTip()

        table.selectRow(titles.index("Being recorded"))
        panel.reopen_button.click()
        settle(qtbot, panel)
        rec = get_workspace(viewer).recorder
        assert rec is not None and panel.recorder is rec, panel.status.text()
        assert rec.journal_path != busy.journal_path, "each napari writes its own journal"
        busy.add_issue("raised in the other napari")
        rec.sync()
        assert rec.session.issues == ("raised in the other napari",)
    finally:
        busy.close()


def test_changes_recorded_from_another_thread_reach_the_panel(
    panel: SessionWidget, qtbot: Any
) -> None:
    rec = start(panel)
    add_approach(panel, "classical", "Marie")

    def work() -> None:
        rec.set_notes("written by a worker thread")
        rec.add_issue("found by a worker thread")

    t = threading.Thread(target=work)
    t.start()
    t.join()
    qtbot.waitUntil(lambda: panel.notes.toPlainText() == "written by a worker thread")
    qtbot.waitUntil(lambda: panel.issues.items() == ["found by a worker thread"])


def test_panel_is_listed_in_the_manifest_and_adding_an_approach_starts_a_session(
    make_napari_viewer: Any, qtbot: Any, session_root: Path
) -> None:
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-fbias", "Session")
    assert isinstance(widget, SessionWidget)
    assert widget.workspace is get_workspace(viewer)
    settle(qtbot, widget)
    assert widget.recorder is None
    widget.new_title.setText("quick look")
    widget.add_approach_button.click()  # nothing is lost: a session is started for it
    rec = get_workspace(viewer).recorder
    assert rec is not None and widget.recorder is rec
    assert [a.title for a in rec.session.approaches] == ["quick look"]
    assert Path(rec.folder).parent == session_root
    settle(qtbot, widget)
