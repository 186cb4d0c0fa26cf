"""report.html stays small: figures per approach, in all, in bytes, bars per chart.

A session of many approaches with many results each (recorded with the real
recorder on a real sample file) would otherwise draw a figure for every result:
20 approaches x 100 steps made 1,981 figures, 311 MB and 344 s. The limits are
the named constants of ``session/export/rerun_figures.py``; the tests lower
them so that a small session reaches them.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from napari_fbias.io.open import open_image
from napari_fbias.io.samples import sample_path
from napari_fbias.session import SessionRecorder
from napari_fbias.session.export import export_bundle
from napari_fbias.session.export import rerun_figures as limits

STEPS = 5


def _many_results(folder: Path, approaches: str = "ABC") -> Path:
    """Each approach thresholds the image STEPS times: every step is a result of its own."""
    rec = SessionRecorder.start("Many results", analysts=["Ann"], folder=folder, fsync=False)
    name = rec.add_image(open_image(sample_path("nuclei_batch") / "nuclei_01.ome.tif"))
    for key in approaches:
        rec.add_approach(f"thresholds {key}", "Ann")
        for i in range(1, STEPS + 1):
            rec.record_step("segment.threshold", {"min_size": i}, {"image": name}, f"{key}: t{i}")
    rec.close()
    return rec.folder


def _figure_titles(report: str) -> list[str]:
    return re.findall(r'<figure><img src="data:image/png;base64,[^"]*" alt="([^"]*)"', report)


def test_each_approach_shows_the_figures_of_its_last_results_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_FIGURES_PER_APPROACH", 3)
    monkeypatch.setattr(limits, "MAX_FIGURES", 6)  # 3 approaches share 6: 2 each
    result = export_bundle(_many_results(tmp_path / "s"), tmp_path / "out", approaches=["B"])
    report = (result.folder / "report.html").read_text()
    titles = [t for t in _figure_titles(report) if "per approach" not in t]
    assert [t.split(":")[0] for t in titles] == ["A_t4", "A_t5", "B_t4", "B_t5", "C_t4", "C_t5"]
    said = " ".join(result.notes)
    assert "at most 2 per approach, 6 in all" in said and "9 figures were left out" in said
    assert "9 figures were left out" in report
    assert report.count("3 more figures of this approach") == 3
    # every count is still in the comparison table, drawn or not
    assert all(f"{k}_t1: " in report for k in "ABC")


def test_the_figures_of_a_report_have_a_byte_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _many_results(tmp_path / "s", approaches="A")
    one = export_bundle(folder, tmp_path / "one", approaches=["A"])
    size = max(
        len(m)
        for m in re.findall(r"base64,([^\"]*)", one.folder.joinpath("report.html").read_text())
    )
    monkeypatch.setattr(limits, "MAX_FIGURE_BYTES", int(size * 3 / 4 * 2.5))  # room for ~2 PNGs
    result = export_bundle(folder, tmp_path / "out", approaches=["A"])
    report = (result.folder / "report.html").read_text()
    assert 1 <= len([t for t in _figure_titles(report) if "per approach" not in t]) <= 2
    assert "figures were left out" in report
    assert len(report.encode()) < len(one.folder.joinpath("report.html").read_bytes())


def test_a_comparison_chart_has_a_bar_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "MAX_CHART_BARS", 4)
    result = export_bundle(_many_results(tmp_path / "s"), tmp_path / "out", approaches=["A"])
    report = (result.folder / "report.html").read_text()
    chart = re.search(r'alt="Objects found per approach"[^<]*<figcaption>([^<]*)<', report)
    assert chart is not None
    bars = chart.group(1).split("&mdash;")[1].split(",")
    assert len(bars) == 4
    assert all(b.strip().startswith(("A: A_t5", "B: B_t5", "C: C_t5", "A: A_t4")) for b in bars)


def test_default_limits_share_the_report_between_approaches() -> None:
    assert limits.FigureBudget.for_report(2).per_approach == limits.MAX_FIGURES_PER_APPROACH
    assert limits.FigureBudget.for_report(20).per_approach == 3
    assert limits.FigureBudget.for_report(1000).per_approach == 1
