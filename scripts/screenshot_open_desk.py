"""Refresh the README screenshots: the Open desk dock at 1366x768 and the report page.

Run it under a display (a virtual one does)::

    xvfb-run -a -s "-screen 0 1366x768x24" python scripts/screenshot_open_desk.py

It opens napari (1366x768, a laptop screen) with the 2D nuclei sample and the
*Open desk* dock, and plays a short mock consultation through the dock (user,
question, two analysts; approach A the nuclei recipe, approach B a threshold
then a watershed split; notes, counts, conclusion), shows approach A over the
image and the Compare tab, and saves the window as ``docs/images/open_desk.png``.
It then exports the delivery bundle from the dock's Export tab and saves the
first screen of its ``report.html`` as rendered by headless Chromium
(``docs/images/report.png``). Files are written atomically; the session and
the bundle live in a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"
SIZE = (1366, 768)
#: Height of the report's first screen (a laptop browser window).
REPORT_SIZE = (1366, 900)
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


def add_approach(panel: Any, title: str, analyst: str) -> None:
    panel.new_title.setText(title)
    panel.new_analyst.setCurrentText(analyst)
    panel.add_approach_button.click()


def play_session(viewer: Any, app: Any) -> Any:
    """Play the mock session in the Open desk dock; return the dock."""
    from napari_fbias._qt.op_widget import OpWidget

    viewer.open_sample(PLUGIN, "nuclei_2d")
    image = viewer.layers["nuclei_2d"]
    _, desk = viewer.window.add_plugin_dock_widget(PLUGIN, "Open desk")
    panel, segment = desk.session, desk.segment
    wait(app, lambda: not panel.busy)

    panel.form.title.setText("Nuclei per field")
    panel.form.user.setText("Ann")
    panel.form.lab.setText("Cell biology lab")
    panel.form.question.setText("How many nuclei per field, and how large?")
    panel.form.analysts.setText("Marie, Jean")
    panel.start_button.click()

    add_approach(panel, "classical", "Marie")
    desk.show_page("Segment")
    segment.inputs["image"].value = image
    run_widget(app, segment)
    type_notes(panel, "nuclei recipe: clean outlines, touching nuclei split")

    add_approach(panel, "threshold + watershed", "Jean")
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
    panel.switch_to("A")
    # back to approach A: the nuclei recipe again, with a larger minimum size (replaces the step)
    segment.method.value = "segment.nuclei"
    segment.inputs["image"].value = image
    segment.settings["min_size"].value = 40
    run_widget(app, segment)
    panel.update_counts()
    wait(app, lambda: not panel.busy)
    panel.compare_table.set_shown("B", False)  # show approach A over the image
    viewer.layers["ground truth"].visible = False
    nuclei = viewer.layers["A: nuclei"]
    nuclei.contour = 2  # outlines: the nuclei stay visible under them
    viewer.layers.selection.active = nuclei
    desk.show_page("Compare")
    panel.compare_table.selectRow(0)
    rec.save()
    return desk


def close_notifications(viewer: Any) -> None:
    """Dismiss napari's toasts (e.g. a binding or plugin notice) so they do not cover the image."""
    from napari._qt.dialogs.qt_notification import NapariQtNotification

    for toast in viewer.window._qt_window.findChildren(NapariQtNotification):
        toast.close()


def write_atomically(out: Path, write: Any) -> Path:
    """Call ``write(tmp)`` for a temporary sibling of ``out``, then rename it to ``out``."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a documentation image is not
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def grab(viewer: Any, app: Any, out: Path) -> Path:
    """Save the napari window (1366x768) as a PNG at ``out``; return ``out``."""
    qt_window = viewer.window._qt_window
    for _ in range(3):
        qt_window.resize(*SIZE)
        app.processEvents()
    viewer.reset_view()
    for _ in range(20):
        app.processEvents()
        time.sleep(0.02)
    close_notifications(viewer)
    app.processEvents()
    canvas = viewer.window._qt_viewer.canvas.native.width()
    print(f"window {qt_window.width()}x{qt_window.height()}, canvas {canvas} px wide")
    pixmap = qt_window.grab()

    def save(tmp: Path) -> None:
        if not pixmap.save(str(tmp), "PNG"):
            raise OSError(f"Qt could not write {tmp}")

    return write_atomically(out, save)


def export_bundle(desk: Any, app: Any, folder: Path) -> Path:
    """Export the delivery bundle from the dock's Export tab; return its report."""
    desk.show_page("Export")
    box = desk.session.export_box
    box.set_chosen(["A", "B"])
    box.folder.setText(str(folder))
    box.export_button.click()
    wait(app, lambda: not box.busy, timeout=300)
    if box.error is not None:
        raise RuntimeError(f"export failed: {box.error}")
    return folder / "report.html"


def chromium() -> str:
    """Return the Chromium command found on this machine."""
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found (apt-get install chromium)")


def screenshot_report(report: Path, out: Path) -> Path:
    """Save the first screen of ``report`` rendered by headless Chromium at ``out``."""

    def save(tmp: Path) -> None:
        with tempfile.TemporaryDirectory(prefix="fbias-chromium-") as profile:
            command = [
                chromium(),
                "--headless",
                "--no-sandbox",  # as root in a container
                "--disable-gpu",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={REPORT_SIZE[0]},{REPORT_SIZE[1]}",
                f"--screenshot={tmp}",
                report.as_uri(),
            ]
            subprocess.run(command, check=True, capture_output=True, timeout=120)
        if not tmp.stat().st_size:
            raise OSError(f"Chromium wrote nothing for {report}")

    return write_atomically(out, save)


def main(argv: list[str] | None = None) -> int:
    """Play the mock consultation and save both screenshots; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "-o", "--output-dir", type=Path, default=IMAGES, help="folder of the PNGs to write"
    )
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
        print("no display: run under xvfb-run -a", file=sys.stderr)
        return 2
    outdir = args.output_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="fbias-screenshot-") as tmp:
        os.environ["FBIAS_SESSION_DIR"] = str(Path(tmp) / "sessions")
        os.environ["FBIAS_CONFIG_DIR"] = str(Path(tmp) / "config")
        import napari
        from qtpy.QtWidgets import QApplication

        viewer = napari.Viewer(title="napari-fbias open desk", show=True)
        app = QApplication.instance()
        try:
            desk = play_session(viewer, app)
            print(f"wrote {grab(viewer, app, outdir / 'open_desk.png')}")
            report = export_bundle(desk, app, Path(tmp) / "delivery")
        finally:
            viewer.close()
        print(f"wrote {screenshot_report(report, outdir / 'report.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
