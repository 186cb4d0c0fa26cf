"""Crash recovery with a real napari process killed with SIGKILL.

The test starts this file as a script (``python test_session_crash.py ROOT``)
under the test's own X display: a real napari viewer opens the nuclei sample,
starts a session through the :class:`Workspace`, runs two ops through
``Workspace.run_op`` in two approaches, types notes into the Session panel and
adds an issue, then prints ``READY`` with what it recorded — and is killed
with SIGKILL. A fresh viewer then reopens the session through the panel, and
every step and note recorded before the kill must be there.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.qt

READY = "READY"
#: Seconds the child may take to start napari, run two ops and record them.
CHILD_TIMEOUT = 180


# --- the child: a real napari session that will be killed ------------------------------
def _wait(app: Any, done: Any, timeout: float = 120.0) -> None:
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the op did not finish in time")
        app.processEvents()
        time.sleep(0.01)


def child(root: str) -> None:
    """Record a session in a real napari viewer, print READY and what it recorded, then idle."""
    os.environ["FBIAS_SESSION_DIR"] = root
    import napari
    from qtpy.QtWidgets import QApplication

    from napari_fbias._qt.session_widget import SessionWidget
    from napari_fbias._qt.workspace import get_workspace

    viewer = napari.Viewer(show=False)
    app = QApplication.instance()
    viewer.open_sample("napari-fbias", "nuclei_2d")
    panel = SessionWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Session")
    ws = get_workspace(viewer)
    rec = ws.start_session(
        title="Crash test", user="Ann", question="Survives a kill?", analysts=["Marie", "Jean"]
    )
    image = viewer.layers["nuclei_2d"]
    runs = [
        ("classical", "Marie", "segment.nuclei", {"image": image}, {"min_size": 40}),
        ("threshold", "Jean", "segment.threshold", {"image": image}, {"min_size": 25}),
    ]
    for title, analyst, op, inputs, params in runs:
        panel.new_title.setText(title)
        panel.new_analyst.setCurrentText(analyst)
        panel.add_approach_button.click()
        worker = ws.run_op(op, inputs, params)
        _wait(app, lambda w=worker: w.fbias_job.done)
        if worker.fbias_job.error:
            raise RuntimeError(worker.fbias_job.error)
        panel.notes.setPlainText(f"{title}: tried by {analyst}")
        panel.notes.document().setModified(True)
        panel.notes.finish_editing()  # what leaving the notes box does
    rec.add_issue("images at higher resolution needed")
    # the panel has counted and recorded the objects, the image's checksum is recorded
    _wait(app, lambda: not panel.busy and not ws.busy)
    recorded = {
        "folder": str(rec.folder),
        "session": rec.session.to_dict(),
    }
    # everything above returned only after its journal line was fsync'ed
    print(READY, json.dumps(recorded), flush=True)
    while True:  # a live napari, until the test kills it
        app.processEvents()
        time.sleep(0.05)


# --- the test --------------------------------------------------------------------------
def _read_ready(proc: subprocess.Popen, errors: Path) -> dict:
    deadline = time.monotonic() + CHILD_TIMEOUT
    assert proc.stdout is not None
    while (left := deadline - time.monotonic()) > 0:
        # the child writes nothing but the READY line to stdout: wait for it, never forever
        if not select.select([proc.stdout], [], [], min(left, 1.0))[0]:
            if proc.poll() is not None:
                break
            continue
        line = proc.stdout.readline()
        if line.startswith(READY):
            return json.loads(line[len(READY) :])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    proc.wait()
    tail = errors.read_text(errors="replace")[-3000:] if errors.exists() else ""
    pytest.fail(f"the napari child never reported READY (exit {proc.returncode}):\n{tail}")


def test_a_killed_napari_session_reopens_with_every_step_and_note(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_fbias._qt.session_widget import SessionWidget
    from napari_fbias._qt.workspace import get_workspace

    assert os.environ.get("DISPLAY"), "run under xvfb-run: the child napari needs a display"
    root = tmp_path / "sessions"
    monkeypatch.setenv("FBIAS_SESSION_DIR", str(root))
    errors = tmp_path / "child.stderr"
    with open(errors, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, __file__, str(root)],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            before = _read_ready(proc, errors)
            os.kill(proc.pid, signal.SIGKILL)
            assert proc.wait(timeout=30) == -signal.SIGKILL
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()  # type: ignore[union-attr]

    viewer = make_napari_viewer()
    panel = SessionWidget(viewer)
    viewer.window.add_dock_widget(panel, name="Session")
    qtbot.waitUntil(lambda: not panel.busy and panel.session_table.rowCount() == 1, timeout=20000)
    listed = panel.session_table.infos[0]
    assert str(listed.path) == before["folder"]
    assert listed.problem is None  # killed between two events: nothing was half-written
    panel.session_table.selectRow(0)
    panel.reopen_button.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=60000)
    rec = get_workspace(viewer).recorder
    assert rec is not None and str(rec.folder) == before["folder"]

    then, now = before["session"], rec.session.to_dict()
    # every step, with its op, settings, inputs and layer; every note and the issue
    assert now["approaches"] == then["approaches"]
    assert [a["notes"] for a in now["approaches"]] == [
        "classical: tried by Marie",
        "threshold: tried by Jean",
    ]
    assert [s["op"] for a in now["approaches"] for s in a["steps"]] == [
        "segment.nuclei",
        "segment.threshold",
    ]
    assert now["issues"] == ["images at higher resolution needed"]
    assert now["images"] == then["images"]
    assert now["timeline"][: len(then["timeline"])] == then["timeline"]
    kinds = [t["kind"] for t in now["timeline"][len(then["timeline"]) :]]
    assert kinds[0] == "session_reopened"
    assert set(kinds[1:]) <= {"approach_switched"}  # going on with the approach of before

    # the panel shows the restored session, and its image is open again
    assert panel.approach_list.count() == 2
    assert "nuclei_2d" in viewer.layers
    panel.approach_list.setCurrentRow(0)
    assert panel.steps_table.row_texts() == [
        ("nuclei", "segment.nuclei", "min_size=40", "A: nuclei")
    ]
    assert panel.notes.toPlainText() == "classical: tried by Marie"
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)


if __name__ == "__main__":
    child(sys.argv[1])
