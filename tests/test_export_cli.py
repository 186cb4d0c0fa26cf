"""``fbias export`` on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_fbias.cli import main
from napari_fbias.io.open import open_image
from napari_fbias.io.samples import sample_path
from napari_fbias.session import SessionRecorder


@pytest.fixture
def session_dir(tmp_path: Path) -> Path:
    rec = SessionRecorder.start("cli", analysts=["Jean"], folder=tmp_path / "s", fsync=False)
    name = rec.add_image(open_image(sample_path("nuclei_batch") / "nuclei_03.ome.tif"))
    rec.add_approach("threshold", "Jean")
    rec.record_step("segment.threshold", {}, {"image": name}, "A: mask")
    rec.add_approach("recipe", "Jean")
    rec.record_step("segment.nuclei", {}, {"image": name}, "B: nuclei")
    rec.close()
    return rec.folder


def test_export_writes_the_bundle(
    session_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "delivery"
    code = main(["export", str(session_dir), "-o", str(out), "--approach", "B", "--zip"])
    assert code == 0
    printed = capsys.readouterr().out
    assert f"bundle of approach(es) B -> {out}" in printed and f"{out}.zip" in printed
    assert (out / "pipeline.fbias.yaml").is_file() and (out / "report.html").is_file()
    assert (tmp_path / "delivery.zip").is_file()
    assert "data:image/png" in (out / "report.html").read_text()


def test_export_of_several_approaches_without_figures(session_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "d"
    assert main(["export", str(session_dir), "-o", str(out), "--no-figures"]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"pipeline_A.fbias.yaml", "pipeline_B.fbias.yaml", "run_pipeline_B.py"} <= names
    assert "data:image/png" not in (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--approach", "Z"], "no approach 'Z'"),
        (["--approach", "A", "--approach", "Q"], "no approach 'Q'"),
    ],
)
def test_export_errors_are_one_line(
    session_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    code = main(["export", str(session_dir), "-o", str(tmp_path / "d"), "--no-figures", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("fbias: error: ") and message in err and "Traceback" not in err
    assert not (tmp_path / "d").exists()


def test_export_refuses_missing_session_and_existing_folder(
    session_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["export", str(tmp_path / "nope"), "-o", str(tmp_path / "d")]) == 2
    assert "no session in" in capsys.readouterr().err
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["export", str(session_dir), "-o", str(tmp_path / "taken")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "taken").iterdir()] == ["keep.txt"]


def test_export_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    assert "fbias export" in text and "--include-images" in text and "--zip" in text
