"""``fbias demo``: the scripted open-desk session, its bundle and its checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_fbias import demo
from napari_fbias.cli import main


@pytest.mark.slow
def test_demo_runs_the_whole_loop(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    code = main(["demo", "-o", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "every check passed" in printed
    for line in (
        "ok   fbias run pipeline_A.fbias.yaml reproduces approach A",
        "ok   fbias run pipeline_C.fbias.yaml reproduces approach C",
        "ok   python run_pipeline_A.py reproduces approach A",
        "ok   fbias run on the batch folder matches direct runs, image by image",
    ):
        assert line in printed
    assert "approach A (Marie, classical nuclei recipe): objects 57" in printed
    assert "Marie and Jean record from two separate processes, at the same time" in printed
    for key, who in (("A", "Marie"), ("B", "Jean"), ("C", "Jean")):
        assert f"ok   approach {key} recomputed here is bit for bit {who}'s result" in printed
    assert "ok   fbias sessions --space lists the session with both analysts' approaches" in printed
    bundle = out / "bundle"
    for name in (
        "README.md",
        "report.html",
        "pipeline_A.fbias.yaml",
        "pipeline_C.fbias.yaml",
        "run_pipeline_A.py",
        "pipeline_A.ipynb",
        "ro-crate-metadata.json",
    ):
        assert (bundle / name).is_file(), name
    (session,) = (out / "space").iterdir()
    assert len(list((session / "journals").glob("*.jsonl"))) == 3, "coordinator + 2 analysts"
    assert (session / "session.yaml").is_file()
    assert sorted(p.name for p in (out / "batch").iterdir() if p.is_dir()) == [
        "nuclei_01",
        "nuclei_02",
        "nuclei_03",
        "nuclei_04",
    ]
    html = (bundle / "report.html").read_text()
    assert "Nuclei per field (demo)" in html and html.count("data:image/png") >= 5
    assert "Marie" in html and "Jean" in html, "one bundle, both analysts' approaches"
    # running it again into the same folder replaces the earlier demo
    assert (out / demo.MARKER).is_file()


def test_demo_never_touches_a_folder_it_did_not_make(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "data.txt").write_text("precious")
    assert main(["demo", "-o", str(tmp_path)]) == 2
    assert "not empty and was not made by `fbias demo`" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["data.txt"]


def test_an_earlier_demo_folder_is_replaced(tmp_path: Path) -> None:
    old = tmp_path / "demo"
    old.mkdir()
    (old / demo.MARKER).write_text("made by `fbias demo`")
    (old / "stale.txt").write_text("old")
    demo._prepare(old)
    assert sorted(p.name for p in old.iterdir()) == [demo.MARKER]


def test_a_failed_check_gives_exit_status_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def fake(outdir: object) -> demo.DemoReport:
        report = demo.DemoReport(tmp_path, checks=[("a", None), ("b", "3 pixels differ")])
        print(demo._summary(report, tmp_path / "session"))
        return report

    monkeypatch.setattr(demo, "run_demo", fake)
    assert main(["demo", "-o", str(tmp_path)]) == 1
    printed = capsys.readouterr().out
    assert "SOME CHECKS FAILED" in printed and "FAIL b: 3 pixels differ" in printed
