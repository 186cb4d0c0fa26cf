"""A whole, short open-desk session driven through the widgets, end to end.

Open the nuclei sample -> start a session (user, question, two analysts) in
the Session panel -> approach A: the nuclei recipe in the Segment widget ->
approach B: a threshold in the Segment widget, then a watershed split in the
"Any operation" widget -> notes on each -> the Compare table shows both with
their object counts -> solution, an issue, a next step -> Save. The snapshot
and the journal hold all of it, and approach A exported as a pipeline and run
headless gives labels identical to its layer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from qtpy.QtCore import QEvent, Qt
from qtpy.QtGui import QFocusEvent
from qtpy.QtWidgets import QApplication

from napari_fbias._qt.workspace import get_workspace
from napari_fbias.io.open import open_image
from napari_fbias.session import approach_to_pipeline, load_session

pytestmark = pytest.mark.qt

PLUGIN = "napari-fbias"


def focus_out(widget: Any) -> None:
    QApplication.sendEvent(
        widget, QFocusEvent(QEvent.Type.FocusOut, Qt.FocusReason.MouseFocusReason)
    )


def run_widget(qtbot: Any, widget: Any) -> None:
    """Press Run in an op widget and wait until its result is recorded."""
    widget.run_button.native.click()
    qtbot.waitUntil(lambda: not widget.running, timeout=60000)
    assert "done" in widget.status.value, widget.status.value


def n_objects(layer: Any) -> int:
    return int(np.count_nonzero(np.unique(np.asarray(layer.data))))


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("FBIAS_CONFIG_DIR", str(tmp_path / "config"))


def test_open_desk_session_through_the_widgets(make_napari_viewer: Any, qtbot: Any) -> None:
    viewer = make_napari_viewer()
    viewer.open_sample(PLUGIN, "nuclei_2d")  # File > Open Sample > napari-fbias
    image = viewer.layers["nuclei_2d"]
    _, panel = viewer.window.add_plugin_dock_widget(PLUGIN, "Session")
    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    _, anyop = viewer.window.add_plugin_dock_widget(PLUGIN, "Any operation")
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)

    # --- who came, with which question ---------------------------------------------------
    panel.form.title.setText("Nuclei per field")
    panel.form.user.setText("Ann")
    panel.form.lab.setText("Cell lab")
    panel.form.question.setText("How many nuclei per field?")
    panel.form.analysts.setText("Marie, Jean")
    panel.start_button.click()
    rec = get_workspace(viewer).recorder
    assert rec is not None and panel.recorder is rec

    # --- approach A: the classical nuclei recipe -------------------------------------------
    panel.new_title.setText("classical")
    panel.new_analyst.setCurrentText("Marie")
    panel.add_approach_button.click()
    assert segment.method.value == "segment.nuclei"  # the default method
    segment.inputs["image"].value = image
    segment.settings["min_size"].value = 40
    run_widget(qtbot, segment)
    a_layer = viewer.layers["A: nuclei"]
    qtbot.keyClicks(panel.notes, "nuclei recipe, min_size 40: clean outlines")
    focus_out(panel.notes)

    # --- approach B: threshold, then watershed split -----------------------------------------
    panel.new_title.setText("threshold + watershed")
    panel.new_analyst.setCurrentText("Jean")
    panel.add_approach_button.click()
    segment.method.value = "segment.threshold"
    segment.inputs["image"].value = image
    segment.settings["min_size"].value = 20
    run_widget(qtbot, segment)
    anyop.method.value = "segment.watershed_split"
    anyop.inputs["labels"].value = viewer.layers["B: threshold"]
    anyop.inputs["image"].value = image
    anyop.settings["min_distance"].value = 4
    run_widget(qtbot, anyop)
    b_layer = viewer.layers["B: watershed split"]
    qtbot.keyClicks(panel.notes, "otsu merges touching nuclei; watershed splits most")
    focus_out(panel.notes)

    # --- compare ------------------------------------------------------------------------------
    panel.tabs.setCurrentIndex(2)
    panel.count_button.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    table = panel.compare_table
    n_a, n_t, n_b = n_objects(a_layer), n_objects(viewer.layers["B: threshold"]), n_objects(b_layer)
    assert table.rowCount() == 2
    assert [table.cell_text(i, "Analyst") for i in range(2)] == ["Marie", "Jean"]
    assert [table.cell_text(i, "Steps") for i in range(2)] == ["1", "2"]
    assert table.cell_text(0, "Objects") == str(n_a)
    assert table.cell_text(1, "Objects") == f"threshold: {n_t}, watershed split: {n_b}"
    assert table.cell_text(0, "Summary").startswith("nuclei — nuclei recipe")
    assert n_a > 10 and n_b > 10

    # --- conclusion and save ------------------------------------------------------------------
    panel.tabs.setCurrentIndex(3)
    combo = panel.solution_approach
    combo.setCurrentIndex(combo.findData("A"))
    combo.activated.emit(combo.currentIndex())
    qtbot.keyClicks(panel.solution_text, "Use approach A on the whole data set")
    focus_out(panel.solution_text)
    qtbot.keyClicks(panel.issues.field, "a few nuclei touch the border")
    qtbot.keyClick(panel.issues.field, Qt.Key.Key_Return)
    qtbot.keyClicks(panel.next_steps.field, "send the full plate as OME-Zarr")
    qtbot.keyClick(panel.next_steps.field, Qt.Key.Key_Return)
    panel.save_button.click()

    # --- the record on disk holds it all ------------------------------------------------------
    folder = Path(rec.folder)
    snap = yaml.safe_load((folder / "session.yaml").read_text(encoding="utf-8"))
    assert snap["user"] == {"name": "Ann", "lab": "Cell lab"}
    assert snap["question"] == "How many nuclei per field?"
    assert snap["analysts"] == ["Marie", "Jean"]
    a, b = snap["approaches"]
    assert (a["key"], a["title"], a["analyst"]) == ("A", "classical", "Marie")
    assert (b["key"], b["title"], b["analyst"]) == ("B", "threshold + watershed", "Jean")
    assert [(s["op"], s["output_layer"]) for s in a["steps"]] == [("segment.nuclei", "A: nuclei")]
    assert a["steps"][0]["params"]["min_size"] == 40
    assert [(s["op"], s["output_layer"]) for s in b["steps"]] == [
        ("segment.threshold", "B: threshold"),
        ("segment.watershed_split", "B: watershed split"),
    ]
    assert a["notes"] == "nuclei recipe, min_size 40: clean outlines"
    assert b["notes"] == "otsu merges touching nuclei; watershed splits most"
    assert a["result"]["objects"] == {"A: nuclei": n_a}
    assert b["result"]["objects"] == {"B: threshold": n_t, "B: watershed split": n_b}
    assert snap["solution"] == {"approach": "A", "text": "Use approach A on the whole data set"}
    assert snap["issues"] == ["a few nuclei touch the border"]
    assert snap["next_steps"] == ["send the full plate as OME-Zarr"]
    (img_ref,) = snap["images"]
    assert img_ref["source"] == image.metadata["source"]

    (journal_file,) = (folder / "journals").glob("*.jsonl")  # one napari: one journal
    journal = [json.loads(line) for line in journal_file.read_text(encoding="utf-8").splitlines()]
    # the journal alone rebuilds the same session (the snapshot is only a readable copy)
    replayed = load_session(journal_file).to_dict()
    assert {k: v for k, v in replayed.items() if k not in ("timeline", "updated")} == {
        k: v for k, v in snap.items() if k not in ("timeline", "updated")
    }
    assert journal[-1]["event"] == "snapshot_saved"
    kinds = [e["event"] for e in journal]
    for kind in ("session_started", "approach_added", "step_recorded", "note_set", "solution_set"):
        assert kind in kinds

    # --- approach A re-runs headless to the very same labels ---------------------------------
    pipeline = approach_to_pipeline(load_session(folder), "A")
    results = pipeline.run(open_image(img_ref["source"]))
    (out,) = results.values()
    expected = np.asarray(a_layer.data)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
