"""The report in a real browser (headless Chromium): figures load, phone layout, no blank page.

Skipped when no Chromium is installed (CI installs the Debian ``chromium``
package).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from napari_fbias.session.export.figures import counts_figure, histogram_figure, overlay_figure
from napari_fbias.session.export.report import ApproachFigures, render_report
from napari_fbias.session.model import Approach, Person, RecordedStep, Session, Solution, StepInput

CHROMIUM = next(
    (
        p
        for p in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
        if p and Path(p).exists()
    ),
    None,
)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-extensions",
    "--no-first-run",
    "--hide-scrollbars",
]

#: A host page showing the untouched report in an iframe of a given size (a phone's
#: width is below the headless browser's smallest window) and recording, after load,
#: what the report shows. The report keeps its own CSP; the probe runs in the host.
HOST = """<!DOCTYPE html>
<html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="r" width="%(width)d" height="%(height)d" style="border:0" srcdoc="%(report)s"></iframe>
<script>
window.addEventListener("load", function () {
  var w = document.getElementById("r").contentWindow, d = w.document;
  var imgs = Array.from(d.images);
  var out = {
    images: imgs.length,
    loaded: imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length,
    widths: imgs.map(function (i) { return i.getBoundingClientRect().width; }),
    page: d.documentElement.scrollWidth,
    viewport: w.innerWidth,
    tables: Array.from(d.querySelectorAll(".table-wrap")).map(function (t) {
      return [t.scrollWidth, t.clientWidth];
    })
  };
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = "PROBE" + JSON.stringify(out) + "END";
  document.body.appendChild(pre);
});
</script>
</body></html>
"""


def report_html() -> str:
    labels = np.zeros((120, 160), dtype=np.int32)
    labels[10:40, 10:40] = 1
    labels[60:100, 80:140] = 2
    image = np.random.default_rng(1).integers(0, 500, size=labels.shape).astype(np.uint16)
    figs = ApproachFigures(
        figures=[
            overlay_figure(image, labels, "A_nuclei"),
            histogram_figure([10, 12, 30, 31, 32], "A_table: area", "area (um^2)"),
        ],
        counts={"A_nuclei": 2},
    )
    long = "a_very_long_setting_value_that_does_not_wrap_" * 6
    step = RecordedStep(
        "nuclei",
        "segment.nuclei",
        {"image": StepInput(image="img", layer="img")},
        {"threshold_method": "otsu", "note": long},
        "A: nuclei",
    )
    session = Session(
        id="abcd",
        title="Browser check",
        user=Person("Ann", "Lab"),
        question="Does it render?",
        analysts=("Marie", "Jean"),
        created="2026-05-04T10:00:00+00:00",
        approaches=(Approach("A", "classical", "Marie", (step,)),),
        solution=Solution("A", "Use A."),
    )
    return render_report(session, figures={"A": figs}, charts=[counts_figure({"A: A_nuclei": 2})])


def _host(tmp_path: Path, width: int, height: int) -> Path:
    import html

    page = tmp_path / "host.html"
    text = HOST % {"width": width, "height": height, "report": html.escape(report_html())}
    page.write_text(text, encoding="utf-8")
    return page


def _dump_dom(path: Path, width: int, height: int) -> dict:
    import json

    proc = subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            f"--window-size={width},{height}",
            "--virtual-time-budget=5000",
            "--dump-dom",
            path.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    m = re.search(r'<pre id="probe">PROBE(.*?)END</pre>', proc.stdout)
    assert m, f"no probe result (exit {proc.returncode}): {proc.stderr[-500:]}"
    return json.loads(m.group(1))


def test_figures_load_under_the_reports_policy(tmp_path: Path) -> None:
    got = _dump_dom(_host(tmp_path, 1100, 900), 1200, 900)
    assert got["images"] == 3
    assert got["loaded"] == 3
    assert all(w > 100 for w in got["widths"])
    assert got["page"] <= got["viewport"] == 1100


def test_phone_width_does_not_overflow(tmp_path: Path) -> None:
    got = _dump_dom(_host(tmp_path, 390, 844), 800, 900)
    assert got["loaded"] == got["images"] == 3
    assert got["viewport"] == 390
    # the page itself fits the phone; the wide steps table scrolls inside its wrapper
    assert got["page"] <= got["viewport"]
    assert all(0 < w <= got["viewport"] for w in got["widths"])
    assert any(scroll > client for scroll, client in got["tables"])


def test_screenshot_of_the_untouched_report_is_not_blank(tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(report_html(), encoding="utf-8")
    shot = tmp_path / "shot.png"
    subprocess.run(
        [CHROMIUM, *FLAGS, "--window-size=390,1400", f"--screenshot={shot}", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), "Chromium wrote no screenshot"
    from matplotlib.image import imread

    pixels = (imread(shot)[..., :3] * 255).astype(np.uint8)
    assert pixels.shape == (1400, 390, 3)
    # many colours: text, the grey microscope image, the coloured outlines; not a blank page
    colours = np.unique(pixels.reshape(-1, 3), axis=0)
    assert len(colours) > 64
    assert (pixels.max(axis=2) < 100).mean() > 0.01  # dark pixels: text and the image


def test_screenshot_of_a_bundle_report_at_desktop_width(tmp_path: Path) -> None:
    """A real bundle's report (nuclei and tracks), as a desktop browser shows it.

    Set ``FBIAS_SCREENSHOT_DIR`` to keep the screenshot
    (``report_desktop.png``) and look at it.
    """
    import os

    from helpers.bundle_sessions import record_two_kinds
    from napari_fbias.session.export import export_bundle

    result = export_bundle(record_two_kinds(tmp_path), tmp_path / "bundle", approaches=["A", "B"])
    shot = tmp_path / "report_desktop.png"
    subprocess.run(
        [
            CHROMIUM,
            *FLAGS,
            "--window-size=1366,2000",
            f"--screenshot={shot}",
            (result.folder / "report.html").as_uri(),
        ],
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert shot.is_file(), "Chromium wrote no screenshot"
    keep = os.environ.get("FBIAS_SCREENSHOT_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(keep) / shot.name)
    from matplotlib.colors import rgb_to_hsv
    from matplotlib.image import imread

    rgb = imread(shot)[..., :3]
    assert rgb.shape == (2000, 1366, 3)
    assert len(np.unique((rgb * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 64
    # the saturated outlines of the first overlay are on screen
    hsv = rgb_to_hsv(rgb)
    assert ((hsv[..., 1] > 0.8) & (hsv[..., 2] > 0.8)).sum() > 500
