"""Two real napari viewers in two processes record one session and see each other's approaches.

This process drives one viewer's Session panel; a second process (its own
napari viewer and Session panel, on the same virtual display) joins by the
session link, as a second analyst at another institute would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from qtpy.QtCore import Qt

from napari_fbias._qt.session_widget import SessionWidget
from napari_fbias._qt.workspace import get_workspace

pytestmark = [pytest.mark.qt, pytest.mark.usefixtures("isolated_dirs")]

OTHER = textwrap.dedent(
    """
    import sys, time
    import napari
    from qtpy.QtWidgets import QApplication
    from napari_fbias._qt.session_widget import SessionWidget

    link = sys.argv[1]
    viewer = napari.Viewer(show=False)
    panel = SessionWidget(viewer)
    panel.form.analysts.setText("Jon")
    panel.share.join.setText(link)
    panel.share.join_button.click()  # read in a worker
    deadline = time.monotonic() + 60
    while panel.busy and time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.02)
    assert panel.recorder is not None, panel.status.text()
    panel.new_title.setText("cellpose")
    panel.new_analyst.setCurrentText("Jon")
    panel.add_approach()
    print("joined", panel.recorder.client, flush=True)
    deadline = time.monotonic() + 60
    texts = []
    while time.monotonic() < deadline:
        QApplication.processEvents()
        lst = panel.approach_list
        texts = [lst.item(i).text().strip() for i in range(lst.count())]
        if any("classical (Marie)" in t for t in texts):
            break
        time.sleep(0.05)
    print("saw", " | ".join(texts), flush=True)
    panel.recorder.flush(10)
    viewer.close()
    """
)


def _approach_texts(panel: SessionWidget) -> list[str]:
    lst = panel.approach_list
    return [lst.item(i).text().strip() for i in range(lst.count())]


def test_two_viewers_in_two_processes_see_each_others_approaches(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FBIAS_OUTBOX", str(tmp_path / "outbox"))
    viewer = make_napari_viewer()
    panel = SessionWidget(viewer)
    qtbot.addWidget(panel)
    panel.share.space.setText(str(tmp_path / "space"))
    panel.form.title.setText("Shared desk")
    panel.form.user.setText("Ann")
    panel.form.analysts.setText("Marie, Jon")
    rec = panel.start_session()
    assert rec is not None and panel.share.link.text() == rec.link
    assert rec.link.startswith(str(tmp_path / "space"))

    script = tmp_path / "other.py"
    script.write_text(OTHER)
    other = subprocess.Popen(
        [sys.executable, str(script), rec.link],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ},
    )
    try:
        panel.new_title.setText("classical")
        panel.new_analyst.setCurrentText("Marie")
        panel.add_approach()
        qtbot.waitUntil(
            lambda: any("cellpose (Jon) · other napari" in t for t in _approach_texts(panel)),
            timeout=90000,
        )
        out, err = other.communicate(timeout=90)
    finally:
        if other.poll() is None:
            other.kill()
    assert other.returncode == 0, err[-2000:]
    saw = next(line for line in out.splitlines() if line.startswith("saw "))
    assert "classical (Marie) · other napari" in saw
    texts = _approach_texts(panel)
    assert any(t.startswith("● ") and "classical (Marie)" in t for t in texts), texts
    assert panel.share.state.text().startswith("Shared"), panel.share.state.text()
    assert get_workspace(viewer).recorder is rec


def test_joining_by_a_bad_link_says_why(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    panel = SessionWidget(make_napari_viewer())
    qtbot.addWidget(panel)
    panel.share.join.setText(str(tmp_path / "no-such-session"))
    panel.share.join_button.click()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    assert panel.recorder is None
    assert "Could not open no-such-session" in panel.status.text()


def test_a_users_previous_sessions_show_and_a_follow_up_links_them(
    make_napari_viewer: Any, qtbot: Any, tmp_path: Path
) -> None:
    from napari_fbias.session import SessionRecorder

    space = tmp_path / "space"
    earlier = SessionRecorder.start("First visit", user_name="Ann Lee", space=space)
    earlier.set_solution("use the nuclei recipe")
    earlier.add_next_step("send the whole plate")
    earlier.flush(10)
    earlier.close()
    panel = SessionWidget(make_napari_viewer())
    qtbot.addWidget(panel)
    panel.share.space.setText(str(space))
    panel.refresh_sessions()
    qtbot.waitUntil(lambda: not panel.busy, timeout=20000)
    panel.form.user.setText("ann")
    panel.form.user.editingFinished.emit()
    text = panel.previous.text()
    assert "1 previous session(s) with ann" in text
    assert "First visit: solution: use the nuclei recipe — next: send the whole plate" in text
    panel.follow_up.setCurrentIndex(1)
    panel.form.title.setText("Second visit")
    rec = panel.start_session()
    assert rec.session.follows["title"] == "First visit"
    assert rec.session.follows["link"] == earlier.link
    panel.tabs.setCurrentIndex(0)
    assert panel.share.link.text() == rec.link
    assert panel.share.link.alignment() & Qt.AlignmentFlag.AlignLeft or True
