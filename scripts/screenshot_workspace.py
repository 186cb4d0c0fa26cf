"""Take the README screenshot of the open-desk workspace (``docs/images/workspace.png``).

Run it under a display (a virtual one does)::

    xvfb-run -a python scripts/screenshot_workspace.py [-o docs/images/workspace.png]

It opens napari with the 2D nuclei sample, docks the Session panel and the
Segment widget, plays a short mock session through the widgets (user,
question, two analysts; approach A the nuclei recipe, approach B a threshold
then a watershed split; notes, counts, conclusion), shows approach A over the
image and the Compare tab, and saves the window (about 1400x900) atomically.
The session is recorded in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "docs" / "images" / "workspace.png"
SIZE = (1400, 900)
#: Height of the Session panel under the canvas (pixels).
PANEL_HEIGHT = 330
PLUGIN = "napari-fbias"


def wait(app: Any, done: Any, timeout: float = 120.0) -> None:
    """Process Qt events until ``done()`` (or fail after ``timeout`` seconds)."""
    t0 = time.monotonic()
    while not done():
        if time.monotonic() - t0 > timeout:
            raise TimeoutError("the workspace did not finish in time")
        app.processEvents()
        time.sleep(0.02)


def run_widget(app: Any, widget: Any) -> None:
    """Press Run in an op widget and wait for its recorded result."""
    widget.run_button.native.click()
    wait(app, lambda: not widget.running)
    if "done" not in widget.status.value:
        raise RuntimeError(f"{widget.spec.name}: {widget.status.value}")


def type_notes(panel: Any, text: str) -> None:
    """Write the active approach's notes as a user does (committed when editing ends)."""
    panel.notes.setPlainText(text)
    panel.notes.document().setModified(True)
    panel.notes.finish_editing()


def play_session(viewer: Any, app: Any) -> tuple[Any, Any]:
    """Play the mock session; return the Session panel and the Segment widget."""
    from qtpy.QtCore import Qt

    from napari_fbias._qt.op_widget import OpWidget

    viewer.open_sample(PLUGIN, "nuclei_2d")
    image = viewer.layers["nuclei_2d"]
    from napari_fbias._qt.session_widget import SessionWidget

    _, segment = viewer.window.add_plugin_dock_widget(PLUGIN, "Segment")
    panel = SessionWidget(viewer)
    # the Session panel under the canvas and the Segment widget; layer list and controls keep
    # the whole left side
    viewer.window._qt_window.setCorner(
        Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea
    )
    dock = viewer.window.add_dock_widget(panel, name="Session (napari-fbias)", area="bottom")
    viewer.window._qt_window.resizeDocks([dock], [PANEL_HEIGHT], Qt.Orientation.Vertical)
    wait(app, lambda: not panel.busy)

    panel.form.title.setText("Nuclei per field")
    panel.form.user.setText("Ann")
    panel.form.lab.setText("Cell biology lab")
    panel.form.question.setText("How many nuclei per field, and how large?")
    panel.form.analysts.setText("Marie, Jean")
    panel.start_button.click()

    panel.new_title.setText("classical")
    panel.new_analyst.setCurrentText("Marie")
    panel.add_approach_button.click()
    segment.inputs["image"].value = image
    run_widget(app, segment)
    type_notes(panel, "nuclei recipe: clean outlines, touching nuclei split")

    panel.new_title.setText("threshold + watershed")
    panel.new_analyst.setCurrentText("Jean")
    panel.add_approach_button.click()
    segment.method.value = "segment.threshold"
    segment.inputs["image"].value = image
    segment.settings["min_size"].value = 20
    run_widget(app, segment)
    split = OpWidget(viewer, ["segment.watershed_split"])  # the "Any operation" widget's core
    split.inputs["labels"].value = viewer.layers["B: threshold"]
    split.inputs["image"].value = image
    split.settings["min_distance"].value = 4
    run_widget(app, split)
    type_notes(panel, "otsu merges touching nuclei; the watershed splits most of them")

    rec = panel.recorder
    rec.set_solution("Approach A on the whole plate; report counts and areas", approach="A")
    rec.add_issue("a few nuclei touch the image border")
    rec.add_next_step("Ann sends the full plate as OME-Zarr")
    panel.update_counts()
    wait(app, lambda: not panel.busy)
    panel.compare_table.set_shown("B", False)  # show approach A over the image
    viewer.layers["ground truth"].visible = False
    panel.switch_to("A")
    # back to approach A: the nuclei recipe again, with a larger minimum size (replaces the step)
    segment.method.value = "segment.nuclei"
    segment.inputs["image"].value = image
    segment.settings["min_size"].value = 40
    run_widget(app, segment)
    wait(app, lambda: not panel.busy)
    nuclei = viewer.layers["A: nuclei"]
    nuclei.contour = 2  # outlines: the nuclei stay visible under them
    viewer.layers.selection.active = nuclei
    panel.tabs.setCurrentIndex(2)
    panel.compare_table.selectRow(0)
    rec.save()
    return panel, segment


def close_notifications(viewer: Any) -> None:
    """Dismiss napari's toasts (e.g. a binding or plugin notice) so they do not cover the image."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def grab(viewer: Any, app: Any, out: Path) -> Path:
    """Save the napari window as a PNG at ``out`` (temporary sibling, then rename)."""
    from qtpy.QtCore import Qt
    from qtpy.QtWidgets import QDockWidget

    qt_window = viewer.window._qt_window
    qt_window.resize(*SIZE)
    for _ in range(5):
        app.processEvents()
    panel_dock = next(
        d for d in qt_window.findChildren(QDockWidget) if d.windowTitle().startswith("Session")
    )
    qt_window.resizeDocks([panel_dock], [PANEL_HEIGHT], Qt.Orientation.Vertical)
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    close_notifications(viewer)
    app.processEvents()
    pixmap = qt_window.grab()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        if not pixmap.save(tmp, "PNG"):
            raise OSError(f"Qt could not write {tmp}")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a documentation image is not
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    """Play the mock session in napari and save the screenshot; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUT, help="PNG to write")
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("no display: run under xvfb-run -a", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fbias-screenshot-") as tmp:
        os.environ["FBIAS_SESSION_DIR"] = str(Path(tmp) / "sessions")
        os.environ["FBIAS_CONFIG_DIR"] = str(Path(tmp) / "config")
        import napari
        from qtpy.QtWidgets import QApplication

        viewer = napari.Viewer(title="napari-fbias open desk", show=True)
        app = QApplication.instance()
        try:
            play_session(viewer, app)
            out = grab(viewer, app, args.output.resolve())
        finally:
            viewer.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
