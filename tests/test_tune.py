"""Tuning from a few annotated objects (issue 15): scores, search, cancel, CLI."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import tifffile
from scipy import ndimage as ndi

from napari_fbias.cli import main
from napari_fbias.io.synth import make_nuclei_2d
from napari_fbias.ops.metrics import (
    annotated_region,
    point_scoreboard,
    scoreboard,
)
from napari_fbias.ops.segment import nuclei
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.tune import Annotations, TuneError, tune_pipeline, tune_step
from napari_fbias.pipeline.tune_space import search_space

pytest.importorskip("optuna")

#: Settings that over-split large nuclei: no smoothing, seeds 1 px apart.
BAD = {"smoothing_sigma": 0.0, "min_distance": 1, "min_size": 1}


@pytest.fixture(scope="module")
def big_nuclei():
    """Nuclei larger than the recipe's defaults expect (radius 16-24 px), on a 384 x 384 image."""
    img, gt = make_nuclei_2d((384, 384), 40, 123, radius_range=(16.0, 24.0))
    return img, gt


def nearest_objects(gt: np.ndarray, n: int, where=(100, 100)) -> np.ndarray:
    ids = np.unique(gt)[1:]
    com = np.array(ndi.center_of_mass(gt > 0, gt, ids))
    return ids[np.argsort(np.hypot(com[:, 0] - where[0], com[:, 1] - where[1]))[:n]]


def partial(gt: np.ndarray, n: int = 10) -> np.ndarray:
    return np.where(np.isin(gt, nearest_objects(gt, n)), gt, 0)


def centres(gt: np.ndarray, ids: np.ndarray) -> np.ndarray:
    return np.array(ndi.center_of_mass(gt > 0, gt, ids))


# --- scores ------------------------------------------------------------------------------


def test_partial_annotation_does_not_penalise_unannotated_objects(big_nuclei):
    _, gt = big_nuclei
    ann = partial(gt, 5)
    region = annotated_region(ann)
    s = scoreboard(ann, gt, region)  # the prediction is perfect, 35 objects were not annotated
    assert (s.tp, s.fp, s.fn) == (5, 0, 0) and s.average_precision == 1.0
    assert s.mean_iou == pytest.approx(1.0)
    # without the region every unannotated object would be a false positive
    assert scoreboard(ann, gt).fp == len(np.unique(gt)) - 1 - 5
    # a fragment cut off an annotated object is a false positive (it lies in the region)
    pred = gt.copy()
    one = nearest_objects(gt, 1)[0]
    ys, xs = np.nonzero(gt == one)
    cut = ys > np.median(ys) + 3
    pred[ys[cut], xs[cut]] = gt.max() + 1
    s = scoreboard(ann, pred, region)
    assert s.fp == 1 and s.average_precision < 1.0


def test_box_region_counts_every_object_inside_it(big_nuclei):
    _, gt = big_nuclei
    ann = partial(gt, 5)
    pred = gt.copy()
    ys, xs = np.nonzero(ann)
    y, x = int(ys.mean()), int(xs.mean())
    spurious = np.zeros_like(gt)
    spurious[y - 3 : y + 3, x - 3 : x + 3] = 1
    inside_box = ann.max() + 1000
    pred[(spurious > 0) & (gt == 0)] = inside_box
    if not (pred == inside_box).any():
        pytest.skip("the centre of the annotations is inside an object")
    box = scoreboard(ann, pred, annotated_region(ann, mode="box"))
    objects = scoreboard(ann, pred, annotated_region(ann, mode="objects"))
    assert box.fp > objects.fp


def test_points_match_one_to_one(big_nuclei):
    _, gt = big_nuclei
    ids = nearest_objects(gt, 6)
    pts = centres(gt, ids)
    s = point_scoreboard(pts, gt)
    assert s.tp == 6 and s.mean_iou is None
    merged = np.where(np.isin(gt, ids[:2]), ids[0], gt)  # two annotated nuclei as one object
    s = point_scoreboard(pts, merged, grow_discs(pts, gt.shape, 10))
    assert (s.tp, s.fn, s.fp) == (5, 1, 0)


def grow_discs(pts, shape, r):
    from napari_fbias.ops.metrics import grow

    m = np.zeros(shape, bool)
    m[tuple(np.rint(pts).astype(int).T)] = True
    return grow(m, r)


# --- the search --------------------------------------------------------------------------


def test_tuning_recovers_good_settings_where_the_start_is_bad(big_nuclei):
    img, gt = big_nuclei
    ann = partial(gt, 10)
    before = scoreboard(gt, nuclei(img, **BAD)).average_precision
    result = tune_step("segment.nuclei", BAD, img, Annotations(labels=ann), n_trials=30)
    after = scoreboard(gt, nuclei(img, **result.params)).average_precision
    assert after > before + 0.25, (before, after)
    assert result.best.final.average_precision >= result.start.final.average_precision
    assert len(result.board) == 5 and result.board[0] is result.best
    assert result.crop != ((0, 384), (0, 384))  # the trials ran on a crop
    # reproducible: the same seed gives the same winner
    again = tune_step("segment.nuclei", BAD, img, Annotations(labels=ann), n_trials=30)
    assert again.params == result.params


def test_tuning_from_points(big_nuclei):
    img, gt = big_nuclei
    pts = centres(gt, nearest_objects(gt, 10))
    before = scoreboard(gt, nuclei(img, **BAD)).average_precision
    result = tune_step("segment.nuclei", BAD, img, Annotations(points=pts), n_trials=25)
    after = scoreboard(gt, nuclei(img, **result.params)).average_precision
    assert result.annotations == "points" and result.best.final.mean_iou is None
    assert after > before + 0.2, (before, after)


def test_cancel_stops_early(big_nuclei):
    img, gt = big_nuclei
    stop = threading.Event()
    seen = []

    def progress(done, total, text):
        seen.append(done)
        if done >= 3:
            stop.set()

    result = tune_step(
        "segment.nuclei",
        {},
        img,
        Annotations(labels=partial(gt)),
        n_trials=50,
        progress=progress,
        cancel=stop,
    )
    assert result.stopped == "cancelled"
    assert len(result.trials) == 3
    assert seen[:3] == [1, 2, 3]


def test_bad_inputs_give_clear_errors(big_nuclei):
    img, gt = big_nuclei
    with pytest.raises(TuneError, match="shape"):
        tune_step("segment.nuclei", {}, img, Annotations(labels=gt[:100]))
    with pytest.raises(TuneError, match="empty"):
        tune_step("segment.nuclei", {}, img, Annotations(labels=np.zeros_like(gt)))
    with pytest.raises(TuneError, match="outside the image"):
        tune_step("segment.nuclei", {}, img, Annotations(points=[[500.0, 3.0]]))
    with pytest.raises(TuneError, match="not labels"):
        tune_step("preprocess.gaussian", {}, img, Annotations(labels=gt))
    with pytest.raises(TuneError, match="either"):
        Annotations()
    pipe = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "holes",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {"id": "mask", "op": "segment.threshold", "inputs": {"image": "image"}},
                {"id": "filled", "op": "segment.fill_holes", "inputs": {"labels": "mask"}},
            ],
            "outputs": {"labels": "filled"},
        }
    )
    with pytest.raises(TuneError, match="no setting"):
        tune_pipeline(pipe, img, Annotations(labels=gt), step=2)


def test_search_space_follows_the_object_size():
    from napari_fbias.ops.registry import get_op

    spec = get_op("segment.nuclei")
    small = {d.name: d for d in search_space(spec, {}, diameter=8, ndim=2)}
    large = {d.name: d for d in search_space(spec, {}, diameter=60, ndim=2)}
    assert small["min_size"].high < large["min_size"].high
    assert small["min_distance"].high < large["min_distance"].high
    assert small["threshold_method"].kind == "choice"
    # an "auto" (None) current value is fine: it is scored as the starting point
    dims = search_space(spec, {"smoothing_sigma": None}, diameter=20, ndim=2)
    assert any(d.name == "smoothing_sigma" for d in dims)
    with pytest.raises(ValueError, match="no setting"):
        search_space(spec, {}, diameter=20, ndim=2, only=["nope"])


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def tune_files(tmp_path, big_nuclei):
    img, gt = big_nuclei
    pfile = tmp_path / "nuclei.fbias.yaml"
    Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "nuclei",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {"id": "nuclei", "op": "segment.nuclei", "inputs": {"image": "image"},
                 "params": BAD},
                {"id": "table", "op": "measure.regionprops",
                 "inputs": {"labels": "nuclei", "image": "image"}},
            ],
            "outputs": {"nuclei": "nuclei", "table": "table"},
        }
    ).dump(pfile)  # fmt: skip
    tifffile.imwrite(tmp_path / "image.tif", img)
    tifffile.imwrite(tmp_path / "ann.tif", partial(gt).astype(np.uint16))
    return pfile, tmp_path / "image.tif", tmp_path / "ann.tif"


def test_cli_writes_a_tuned_pipeline_that_runs(tune_files, tmp_path, capsys):
    pfile, image, ann = tune_files
    before = pfile.read_bytes()
    code = main(["tune", str(pfile), str(image), str(ann), "--trials", "12", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    tuned = tmp_path / "nuclei.tuned.fbias.yaml"
    assert out["pipeline"] == str(tuned) and tuned.exists()
    assert pfile.read_bytes() == before  # the input is never changed
    assert out["best"]["ap"] >= out["start"]["ap"] and len(out["scoreboard"]) >= 1
    p = Pipeline.load(tuned)
    assert dict(p.step("nuclei").params) == out["best"]["params"]
    assert main(["run", str(tuned), str(image), "-o", str(tmp_path / "res")]) == 0
    # refuses to overwrite the output, and to write over the input
    assert main(["tune", str(pfile), str(image), str(ann), "--trials", "2"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["tune", str(pfile), str(image), str(ann), "-o", str(pfile)]) == 2
    assert "input pipeline" in capsys.readouterr().err


def test_cli_text_scoreboard_and_points(tune_files, tmp_path, capsys, big_nuclei):
    pfile, image, _ = tune_files
    _, gt = big_nuclei
    pts = centres(gt, nearest_objects(gt, 8))
    csv = tmp_path / "points.csv"
    csv.write_text("y,x\n" + "\n".join(f"{y},{x}" for y, x in pts))
    out = tmp_path / "p.fbias.yaml"
    code = main(["tune", str(pfile), str(image), str(csv), "--trials", "6", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "8 annotated points" in text and "AP@0.5" in text and f"wrote {out}" in text


def test_cli_bad_inputs(tune_files, tmp_path, capsys):
    pfile, image, _ = tune_files
    small = tmp_path / "small.tif"
    tifffile.imwrite(small, np.ones((10, 10), np.uint16))
    assert main(["tune", str(pfile), str(image), str(small)]) == 2
    assert "differs from the image" in capsys.readouterr().err
    empty = tmp_path / "empty.tif"
    tifffile.imwrite(empty, np.zeros((384, 384), np.uint16))
    assert main(["tune", str(pfile), str(image), str(empty)]) == 2
    assert "annotation is empty" in capsys.readouterr().err
    assert main(["tune", str(pfile), str(image), str(tmp_path / "none.tif")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["tune", str(pfile), str(image), str(empty), "--step", "7"]) == 2
    assert "steps 1 to 2" in capsys.readouterr().err


def test_without_optuna_the_error_names_the_extra(monkeypatch, big_nuclei):
    from napari_fbias.extras import MissingExtraError

    img, gt = big_nuclei
    monkeypatch.setitem(__import__("sys").modules, "optuna", None)
    with pytest.raises(MissingExtraError, match=r"napari-fbias\[tune\]"):
        tune_step("segment.nuclei", {}, img, Annotations(labels=partial(gt)))


def test_a_manual_threshold_value_is_not_moved_while_the_method_is_automatic() -> None:
    from napari_fbias.pipeline.tune_space import without_inert

    start = {"threshold_method": "otsu", "threshold_value": 0.0, "smoothing_sigma": 1.5}
    moved = {"threshold_method": "li", "threshold_value": 868.0, "smoothing_sigma": 2.0}
    assert without_inert(start, moved) == {**moved, "threshold_value": 0.0}
    manual = {**moved, "threshold_method": "manual"}
    assert without_inert(start, manual) == manual  # used: kept
    assert without_inert({"method": "otsu", "value": 1.0}, {"method": "yen", "value": 9.0}) == {
        "method": "yen",
        "value": 1.0,
    }
