"""The Tune widget: tune from painted objects, cancel, apply the winner as a recorded step."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import ndimage as ndi
from widget_helpers import wait_job

from napari_fbias._qt.tune_widget import TuneWidget

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]
pytest.importorskip("optuna")


def _annotate(viewer: Any, n: int = 8) -> Any:
    """Paint ``n`` ground-truth nuclei near a corner into a new Labels layer."""
    gt = next(ly for ly in viewer.layers if type(ly).__name__ == "Labels").data
    gt = np.asarray(gt)
    ids = np.unique(gt)[1:]
    com = np.array(ndi.center_of_mass(gt > 0, gt, ids))
    keep = ids[np.argsort(np.hypot(com[:, 0], com[:, 1]))[:n]]
    return viewer.add_labels(np.where(np.isin(gt, keep), gt, 0), name="painted")


def test_tune_then_apply_records_a_step(qtbot: Any, viewer: Any) -> None:
    w = TuneWidget(viewer)
    viewer.window.add_dock_widget(w, name="Tune")
    _annotate(viewer)
    w.set_choice("nuclei_2d", "painted", "segment.nuclei")
    w.trials.setValue(8)
    worker = w.tune()
    assert worker is not None and w.running
    qtbot.waitUntil(lambda: not w.running, timeout=120000)
    assert w.result is not None, w.status.text()
    assert w.apply_button.isEnabled()
    assert w.board.rowCount() >= 1 and float(w.board_text(0, "AP@0.5")) >= 0.0
    assert "AP@0.5" in w.status.text()
    # the search went to the session record, not to a step
    rec = w.workspace.recorder
    assert rec is not None and rec.active.result["tuning"]["op"] == "segment.nuclei"
    assert not rec.active.steps
    wait_job(qtbot, w.apply())
    step = rec.active.steps[-1]
    assert step.op == "segment.nuclei"
    for k, v in w.result.params.items():
        if v is not None:
            assert (
                step.params[k] == pytest.approx(v) if isinstance(v, float) else step.params[k] == v
            )
    assert step.output_layer in viewer.layers
    # the recorded step is now offered for tuning
    w.refresh()
    assert any(w.op_choice.itemText(i).startswith("step ") for i in range(w.op_choice.count()))
    assert w.width() <= 440


def test_cancel_and_bad_annotations(qtbot: Any, viewer: Any) -> None:
    w = TuneWidget(viewer)
    viewer.add_labels(np.zeros((5, 5), np.uint8), name="wrong")
    w.set_choice("nuclei_2d", "wrong", "segment.nuclei")
    qtbot.waitUntil(lambda: w.tune() is not None or not w.running, timeout=5000)
    qtbot.waitUntil(lambda: not w.running, timeout=60000)
    assert "differs from the image" in w.status.text() and w.result is None
    _annotate(viewer)
    w.set_choice("nuclei_2d", "painted", "segment.nuclei")
    w.trials.setValue(500)
    w.tune()
    w.cancel()
    qtbot.waitUntil(lambda: not w.running, timeout=120000)
    assert w.result is not None and w.result.stopped == "cancelled"
    assert len(w.result.trials) < 500
