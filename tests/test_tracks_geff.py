"""Tracks other tools read: divisions in label tracking, GEFF, and the CTC output scored by an
independent scorer (py-ctcmetrics, the Cell Tracking Challenge's metrics in Python)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from skimage.draw import disk

from napari_fbias.io.errors import OutputExistsError
from napari_fbias.io.samples import load_spots_timelapse
from napari_fbias.io.tracks_geff import track_graph, write_geff
from napari_fbias.io.tracks_write import write_ctc
from napari_fbias.ops.track import track_labels, track_spots

geff = pytest.importorskip("geff")


def dividing_movie() -> np.ndarray:
    """One cell for 3 frames, then two daughters for 3 frames; a second cell throughout."""
    m = np.zeros((6, 64, 80), np.uint16)
    for t in range(6):
        rr, cc = disk((32, 64), 7)
        m[t][rr, cc] = 9  # a cell that never divides
        if t < 3:
            rr, cc = disk((32, 20 + t), 10)
            m[t][rr, cc] = 1
        else:
            rr, cc = disk((26 - (t - 3), 22), 6)
            m[t][rr, cc] = 1
            rr, cc = disk((38 + (t - 3), 22), 6)
            m[t][rr, cc] = 2
    return m


def test_label_tracking_finds_a_division_only_when_asked() -> None:
    movie = dividing_movie()
    plain = track_labels(movie, axes="tyx")
    assert "parent_track_id" not in plain.columns  # the default table is unchanged
    assert plain["track_id"].nunique() == 3  # the mother runs on as one daughter
    tracks = track_labels(movie, axes="tyx", divisions=True)
    spans = tracks.groupby("track_id").agg(first=("t", "min"), last=("t", "max"))
    parents = tracks.groupby("track_id")["parent_track_id"].first()
    mother = int(tracks.loc[(tracks["t"] == 0) & (tracks["label"] == 1), "track_id"].iloc[0])
    daughters = sorted(parents[parents == mother].index)
    assert len(daughters) == 2
    assert spans.loc[mother].tolist() == [0, 2]
    assert all(spans.loc[d].tolist() == [3, 5] for d in daughters)
    other = int(tracks.loc[tracks["label"] == 9, "track_id"].iloc[0])
    assert parents[other] == 0 and spans.loc[other].tolist() == [0, 5]
    with pytest.raises(ValueError, match="method='overlap' only"):
        track_labels(movie, axes="tyx", method="centroid", divisions=True)


def test_ctc_and_geff_carry_the_division(tmp_path: Path) -> None:
    movie = dividing_movie()
    tracks = track_labels(movie, axes="tyx", divisions=True)
    ctc = write_ctc(tmp_path / "01_RES", movie, tracks)
    lines = sorted((ctc / "res_track.txt").read_text().split("\n")[:-1])
    mother = int(tracks.loc[(tracks["t"] == 0) & (tracks["label"] == 1), "track_id"].iloc[0])
    assert sum(line.endswith(f" 3 5 {mother}") for line in lines) == 2

    out = write_geff(
        tmp_path / "tracks.geff", tracks, spacing=(0.5, 0.5), units=("micrometer",) * 2
    )
    geff.validate_structure(out)  # the reference implementation accepts it
    graph, meta = geff.read(out)
    assert graph.number_of_nodes() == len(tracks)
    assert meta.track_node_props == {"tracklet": "track_id"}
    assert [a.name for a in meta.axes] == ["t", "y", "x"]
    assert [a.scale for a in meta.axes] == [1.0, 0.5, 0.5]
    # the mother's last detection has two successors: the daughters' first detections
    last = tracks.index[(tracks["track_id"] == mother) & (tracks["t"] == 2)][0]
    kids = sorted(graph.successors(int(last)))
    assert [int(tracks.loc[k, "t"]) for k in kids] == [3, 3]
    assert graph.number_of_edges() == len(tracks) - tracks["track_id"].nunique() + 2
    assert graph.nodes[0]["area"] == tracks.loc[0, "area"]
    with pytest.raises(OutputExistsError):
        write_geff(out, tracks)
    # the same table gives the same bytes (column order, not a set's, in any process)
    again = write_geff(
        tmp_path / "again.geff", tracks, spacing=(0.5, 0.5), units=("micrometer",) * 2
    )
    assert (again / ".zattrs").read_bytes() == (out / ".zattrs").read_bytes()


def test_track_graph_refuses_what_is_not_tracks() -> None:
    with pytest.raises(ValueError, match="no column"):
        track_graph(pd.DataFrame({"t": [0]}))
    bad = pd.DataFrame({"track_id": [1, 1], "t": [0, 0], "y": [0.0, 1.0], "x": [0.0, 1.0]})
    with pytest.raises(ValueError, match="two detections at t=0"):
        track_graph(bad)
    orphan = pd.DataFrame(
        {"track_id": [2], "t": [0], "y": [0.0], "x": [0.0], "parent_track_id": [7]}
    )
    with pytest.raises(ValueError, match="parent track 7"):
        track_graph(orphan)


def _as_ground_truth(res: Path, gt: Path) -> None:
    """Turn a CTC result folder into a ground-truth TRA folder (the scorer's layout)."""
    tra = gt / "TRA"
    tra.mkdir(parents=True)
    for mask in sorted(res.glob("mask*.tif")):
        shutil.copy(mask, tra / mask.name.replace("mask", "man_track"))
    shutil.copy(res / "res_track.txt", tra / "man_track.txt")


def test_ctc_output_is_scored_by_an_independent_scorer(tmp_path: Path) -> None:
    ctc_metrics = pytest.importorskip("ctc_metrics")
    # divisions: the result with parents scores perfectly against a ground truth with them
    movie = dividing_movie()
    truth = track_labels(movie, axes="tyx", divisions=True)
    _as_ground_truth(write_ctc(tmp_path / "truth", movie, truth), tmp_path / "gt_div")
    found = write_ctc(tmp_path / "div_RES", movie, track_labels(movie, axes="tyx", divisions=True))
    flat = write_ctc(tmp_path / "flat_RES", movie, track_labels(movie, axes="tyx"))
    with_div = ctc_metrics.evaluate_sequence(str(found), str(tmp_path / "gt_div"), ["TRA"], 1)
    without = ctc_metrics.evaluate_sequence(str(flat), str(tmp_path / "gt_div"), ["TRA"], 1)
    assert with_div["TRA"] == pytest.approx(1.0)
    assert without["TRA"] < with_div["TRA"]

    # the sample's spots, tracked with trackpy, against its ground-truth tracks (as discs)
    image, gt_tracks = load_spots_timelapse()
    movie = np.asarray(image.levels[0])
    tracks = track_spots(movie, axes="tyx")
    shape = movie.shape
    _as_ground_truth(
        write_ctc(tmp_path / "gt_spots", None, gt_tracks, shape=shape, radius=3),
        tmp_path / "gt",
    )
    res = write_ctc(tmp_path / "01_RES", None, tracks, shape=shape, radius=3)
    scores = ctc_metrics.evaluate_sequence(str(res), str(tmp_path / "gt"), ["DET", "TRA"], 1)
    assert scores["DET"] >= 0.9 and scores["TRA"] >= 0.85, scores
