"""An export reads only the image sources the analysts opened (docs/delivery.md).

A session record received from someone else -- a ``session.yaml`` sent by
e-mail, named directly or restored into a session folder -- may name any file
on this machine or any URL. These records are made with the real recorder and
then edited as an attacker would; the "private" file they name is a real file
here, and a spy on :func:`napari_fbias.io.open.open_image` tells what was read.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from napari_fbias.cli import main
from napari_fbias.io import open as io_open
from napari_fbias.io.open import open_image
from napari_fbias.io.samples import sample_path
from napari_fbias.session import SessionRecorder, load_snapshot, open_session
from napari_fbias.session.export import export_bundle

SAMPLE = sample_path("nuclei_batch") / "nuclei_01.ome.tif"


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every source the process opens from now on (a spy on ``open_image``)."""
    seen: list[str] = []
    real = io_open.open_image

    def spy(source, *args, **kwargs):
        seen.append(str(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(io_open, "open_image", spy)
    return seen


def _record(folder: Path, image: Path) -> SessionRecorder:
    rec = SessionRecorder.start("Nuclei", analysts=["Ann"], folder=folder, fsync=False)
    name = rec.add_image(open_image(image))
    rec.add_approach("threshold", "Ann")
    rec.record_step("segment.threshold", {}, {"image": name}, "A: mask")
    rec.save()
    rec.close()
    return rec


def _hostile_yaml(tmp_path: Path) -> tuple[Path, Path]:
    """A session.yaml as an attacker would send it: its image is a private file of ours."""
    private = tmp_path / "home" / "private.ome.tif"
    private.parent.mkdir()
    shutil.copy(SAMPLE, private)
    rec = _record(tmp_path / "theirs", SAMPLE)
    snap = yaml.safe_load((rec.folder / "session.yaml").read_text())
    snap["images"][0]["source"] = str(private)
    mailed = tmp_path / "mail" / "session.yaml"
    mailed.parent.mkdir()
    mailed.write_text(yaml.safe_dump(snap))
    return mailed, private


def _approach_figures(report: str) -> int:
    return report.count("<h3>Figures</h3>")


@pytest.mark.parametrize("given", ["yaml", "value"])
def test_a_received_record_reads_no_source_unless_asked(
    tmp_path: Path, opened: list[str], given: str
) -> None:
    mailed, private = _hostile_yaml(tmp_path)
    session = mailed if given == "yaml" else load_snapshot(mailed)
    opened.clear()
    result = export_bundle(session, tmp_path / "out", include_images=True)
    assert str(private) not in opened and opened == []
    assert not [f for f in result.files if f.startswith("images/")]
    said = " ".join(result.notes)
    assert "No figures for approach(es) A" in said and "were not opened in this session" in said
    assert "--read-sources" in said and "read_sources=True" in said
    assert "'nuclei_01' was not copied" in said
    report = (result.folder / "report.html").read_text()
    assert _approach_figures(report) == 0 and "data:image/png" not in report
    assert "fbias export --read-sources" in report

    allowed = export_bundle(session, tmp_path / "out2", include_images=True, read_sources=True)
    assert str(private) in opened
    assert _approach_figures((allowed.folder / "report.html").read_text()) == 1
    assert "images/nuclei_01.ome.tif" in allowed.files
    assert not any("not opened" in n for n in allowed.notes)


def test_a_session_restored_from_a_mailed_yaml_reads_only_what_its_analyst_opened(
    tmp_path: Path, opened: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    mailed, private = _hostile_yaml(tmp_path)
    mine = tmp_path / "data" / "mine.ome.tif"
    mine.parent.mkdir()
    shutil.copy(SAMPLE, mine)
    bob = open_session(mailed.parent, analysts=["Bob"], fsync=False)  # starts: session_restored
    name = bob.add_image(open_image(mine))
    bob.add_approach("recipe", "Bob")
    bob.record_step("segment.nuclei", {}, {"image": name}, "B: nuclei")
    bob.close()
    opened.clear()

    code = main(["export", str(bob.folder), "-o", str(tmp_path / "out"), "--approach", "A"])
    assert code == 0
    assert str(private) not in opened and str(mine) in opened
    err = capsys.readouterr().err
    assert "No figures for approach(es) A" in err and "--read-sources" in err
    assert "restored from" in err
    report = (tmp_path / "out" / "report.html").read_text()
    assert _approach_figures(report) == 1  # approach B's, from the image Bob opened

    code = main(
        [
            "export",
            str(bob.folder),
            "-o",
            str(tmp_path / "out2"),
            "--approach",
            "A",
            "--read-sources",
        ]
    )
    assert code == 0 and str(private) in opened
    assert "--read-sources" not in capsys.readouterr().err
    assert _approach_figures((tmp_path / "out2" / "report.html").read_text()) == 2


def test_images_opened_in_the_session_are_read(tmp_path: Path, opened: list[str]) -> None:
    rec = _record(tmp_path / "s", SAMPLE)
    opened.clear()
    result = export_bundle(rec.folder, tmp_path / "out", include_images=True)
    assert [Path(s).resolve() for s in opened] == [SAMPLE.resolve()]
    assert not any("not opened" in n for n in result.notes)
    assert _approach_figures((result.folder / "report.html").read_text()) == 1
    assert "images/nuclei_01.ome.tif" in result.files


def test_an_image_of_a_restored_snapshot_counts_as_opened_once_opened_again(tmp_path):
    from napari_fbias.session import ImageRef, load_session

    rec = SessionRecorder.start("mailed", user_name="Ann", folder=tmp_path / "orig")
    ref = ImageRef(name="img", source="/data/img.tif", axes="yx", shape=(8, 8))
    rec.add_image(ref)
    snap = rec.save()
    rec.close()
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / "session.yaml").write_bytes(snap.read_bytes())
    again = open_session(copy, analysts=["Bob"])
    kinds = [t.kind for t in again.session.timeline]
    again.add_image(ref)  # Bob opens it in his napari
    again.close()
    new = [t.kind for t in load_session(copy).timeline][len(kinds) :]
    assert new == ["image_added"]
