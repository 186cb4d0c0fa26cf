"""Bringing a reopened session's work back, without napari: images opened, results recomputed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from napari_fbias.io.open import open_image
from napari_fbias.session import SessionRecorder, open_session
from napari_fbias.session.checksums import image_checksum, pixels_checksum
from napari_fbias.session.recompute import recompute_approach, value_digest
from napari_fbias.session.restore import (
    ApproachRecomputed,
    ImageOpened,
    Problem,
    Progress,
    restore_work,
)


def _image(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    data = (rng.random((64, 64)) * 1000).astype(np.uint16)
    data[20:40, 20:40] += 3000
    tifffile.imwrite(path, data)
    return path


def _record(tmp_path: Path) -> tuple[SessionRecorder, Path]:
    src = _image(tmp_path / "cells.tif")
    rec = SessionRecorder.start("restore", user_name="Ann", folder=tmp_path / "s")
    name = rec.add_image(open_image(str(src)), checksum=image_checksum(str(src)))
    rec.add_approach("classical", "Marie")
    rec.record_step("preprocess.gaussian", {"sigma": 1.0}, {"image": name}, "A: smooth")
    rec.record_step("segment.threshold", {}, {"image": "A: smooth"}, "A: mask")
    rec.add_approach("other", "Jon")
    rec.record_step("segment.threshold", {"method": "li"}, {"image": "A: smooth"}, "B: mask")
    return rec, src


def test_checksum_is_the_one_recompute_checks(tmp_path: Path) -> None:
    src = _image(tmp_path / "cells.tif")
    pixels = tifffile.imread(src)
    assert (
        image_checksum(str(src))
        == pixels_checksum(pixels)
        == pixels_checksum(open_image(str(src)).data)
    )


def test_restore_opens_each_image_once_and_recomputes_every_approach(tmp_path: Path) -> None:
    rec, src = _record(tmp_path)
    rec.close()
    again = open_session(rec.link)
    calls: list[str] = []

    def opener(source: str) -> object:
        calls.append(source)
        return open_image(source)

    seen: list[object] = []
    summary = restore_work(again.session, report=seen.append, opener=opener)
    assert calls == [str(src)]  # opened once, for the layer and for both approaches
    assert summary.images == ["cells"] and summary.approaches == ["A", "B"]
    assert summary.problems == []
    kinds = [type(v) for v in seen if not isinstance(v, Progress)]
    assert kinds == [ImageOpened, ApproachRecomputed, ApproachRecomputed]
    progress = [v for v in seen if isinstance(v, Progress)]
    assert progress[-1] == Progress(progress[-1].total, progress[-1].total, "done")
    assert [p.done for p in progress] == sorted(p.done for p in progress)
    got = {v.key: v.values for v in seen if isinstance(v, ApproachRecomputed)}
    expected = recompute_approach(again.session, "A")
    assert list(got["A"]) == ["gaussian", "threshold"] and list(got["B"]) == ["threshold_2"]
    assert value_digest(got["A"]["threshold"]) == value_digest(expected["threshold"])
    again.close()


def test_layers_shown_are_not_opened_and_problems_do_not_stop_the_rest(tmp_path: Path) -> None:
    rec, src = _record(tmp_path)
    seen: list[object] = []
    summary = restore_work(rec.session, report=seen.append, present={"cells"})
    assert summary.images == [] and summary.approaches == ["A", "B"]
    _image(src, seed=1)  # other pixels than recorded
    summary = restore_work(rec.session, report=seen.append, present={"cells"})
    assert summary.approaches == []
    assert [p.what for p in summary.problems] == ["approach A", "approach B"]
    assert "other pixels here" in summary.problems[0].message
    src.unlink()
    summary = restore_work(rec.session, report=seen.append)
    first = summary.problems[0]
    assert isinstance(first, Problem) and first.what == "image cells"
    assert "could not re-open image 'cells'" in first.message
    assert [p.what for p in summary.problems[1:]] == ["approach A", "approach B"]
    rec.close()
