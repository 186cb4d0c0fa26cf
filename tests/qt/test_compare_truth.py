"""Compare view: AP@0.5, F1 and mean IoU of each approach against a ground-truth layer."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from widget_helpers import wait_job

from napari_fbias._qt.approach_compare import TruthScoreboard, score_all, truth_candidates
from napari_fbias._qt.session_widget import SessionWidget

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]


def test_score_all_is_plain_and_skips_other_shapes() -> None:
    gt = np.zeros((20, 20), np.int32)
    gt[2:8, 2:8] = 1
    gt[10:16, 10:16] = 2
    pred = gt.copy()
    pred[10:16, 10:16] = 0
    out = score_all(gt, {"A": {"A: nuclei": pred, "A: other": np.zeros((3, 3), np.int32)}})
    assert set(out["A"]) == {"A: nuclei"}
    s = out["A"]["A: nuclei"]
    assert (s.tp, s.fn, s.fp) == (1, 1, 0) and s.average_precision == 0.5


def test_compare_scoreboard_shows_numbers_and_records_them(qtbot: Any, viewer: Any) -> None:
    panel = SessionWidget(viewer)
    ws = panel.workspace
    wait_job(qtbot, ws.run_op("segment.nuclei", {"image": viewer.layers["nuclei_2d"]}, {}))
    board: TruthScoreboard = panel.truth_board
    board.refresh()
    truth = [ly.name for ly in viewer.layers if type(ly).__name__ == "Labels"][0]
    assert truth_candidates(viewer.layers, ws.recorder.session)[0] == truth
    assert board.truth_choice.currentText() == truth
    board.score()
    qtbot.waitUntil(lambda: board.worker is None and board.table.rowCount() > 0, timeout=30000)
    assert board.cell_text(0, "Approach") == "A"
    ap = float(board.cell_text(0, "AP@0.5"))
    assert 0.3 < ap <= 1.0 and float(board.cell_text(0, "F1")) >= ap
    assert 0 < float(board.cell_text(0, "Mean IoU")) <= 1
    recorded = ws.recorder.session.approach("A").result["ground_truth"]
    assert recorded["truth"] == truth and recorded["ap50"] == pytest.approx(ap, abs=1e-3)
