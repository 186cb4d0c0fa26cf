"""Tracks writers: CSV and the Cell Tracking Challenge result format, parsed back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_fbias.io.errors import OutputExistsError
from napari_fbias.io.tracks_write import ctc_track_table, write_ctc, write_tracks_csv
from napari_fbias.ops.track import relabel_by_track, track_labels

# --- reading the CTC result format back, independently of the writer ------------------------


def read_ctc(folder: Path) -> tuple[np.ndarray, pd.DataFrame]:
    names = sorted(p.name for p in folder.glob("mask*.tif"))
    masks = np.stack([tifffile.imread(folder / n) for n in names])
    table = pd.read_csv(
        folder / "res_track.txt", sep=" ", header=None, names=["label", "begin", "end", "parent"]
    )
    return masks, table


def check_ctc(masks: np.ndarray, table: pd.DataFrame) -> None:
    """The hard rules of the CTC format (as the challenge's tools check them)."""
    assert masks.dtype == np.uint16
    assert table["label"].min() >= 1 and table["label"].is_unique
    ends = dict(zip(table["label"], table["end"], strict=True))
    for row in table.itertuples():
        assert row.begin <= row.end
        if row.parent:
            assert row.parent in ends and ends[row.parent] < row.begin
    for t in range(masks.shape[0]):
        alive = set(table.loc[(table["begin"] <= t) & (table["end"] >= t), "label"])
        present = set(np.unique(masks[t]).tolist()) - {0}
        assert present == alive, f"frame {t}: masks {present} vs res_track {alive}"


def moving_discs(n_frames: int = 6, gap: bool = False) -> np.ndarray:
    yy, xx = np.mgrid[:48, :48]
    movie = np.zeros((n_frames, 48, 48), np.int32)
    for t in range(n_frames):
        movie[t][(yy - 10 - 2 * t) ** 2 + (xx - 12) ** 2 <= 16] = 4
        if not (gap and t == 3):
            movie[t][(yy - 35) ** 2 + (xx - 8 - 1.5 * t) ** 2 <= 16] = 9 if t % 2 else 2
    return movie


# --- CSV -------------------------------------------------------------------------------


def test_tracks_csv_round_trip_and_refuses_overwrite(tmp_path):
    tracks = pd.DataFrame(
        {
            "speed": [np.nan, 1.25, np.nan],
            "track_id": [1, 1, 2],
            "t": [0, 1, 0],
            "y": [1.5, 2.0, 7.125],
            "x": [3.0, 3.5, 0.1],
        }
    )
    path = write_tracks_csv(tmp_path / "tracks.csv", tracks)
    back = pd.read_csv(path)
    assert list(back.columns) == ["track_id", "t", "y", "x", "speed"]
    pd.testing.assert_frame_equal(back, tracks[["track_id", "t", "y", "x", "speed"]])
    before = path.read_bytes()
    with pytest.raises(OutputExistsError):
        write_tracks_csv(path, tracks.iloc[:1])
    assert path.read_bytes() == before
    write_tracks_csv(path, tracks.iloc[:1], overwrite=True)
    assert len(pd.read_csv(path)) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tracks.csv"]  # no temporary leftovers
    with pytest.raises(ValueError, match="track_id"):
        write_tracks_csv(tmp_path / "bad.csv", tracks.drop(columns="track_id"))
    assert not (tmp_path / "bad.csv").exists()


# --- CTC from labels -------------------------------------------------------------------------


def test_ctc_from_label_tracks_parses_back(tmp_path):
    movie = moving_discs()
    tracks = track_labels(movie, axes="tyx")
    out = write_ctc(tmp_path / "01_RES", movie, tracks)
    assert sorted(p.name for p in out.iterdir()) == [f"mask{i:03d}.tif" for i in range(6)] + [
        "res_track.txt"
    ]
    masks, table = read_ctc(out)
    check_ctc(masks, table)
    # every object carries its track id, pixel for pixel
    np.testing.assert_array_equal(masks, relabel_by_track(movie, tracks))
    assert set(np.unique(masks)) == {0, 1, 2}
    expected = tracks.groupby("track_id")["t"].agg(["min", "max"])
    assert table["label"].tolist() == expected.index.tolist()
    assert table["begin"].tolist() == expected["min"].tolist()
    assert table["end"].tolist() == expected["max"].tolist()
    assert (table["parent"] == 0).all()
    assert (out / "res_track.txt").read_text().splitlines()[0] == "1 0 5 0"


def test_ctc_gap_becomes_a_child_track(tmp_path):
    movie = moving_discs(gap=True)
    tracks = track_labels(movie, memory=1)
    assert tracks["track_id"].nunique() == 2  # the gap was bridged
    gapped = int(tracks.loc[tracks["t"] == 0].sort_values("y")["track_id"].iloc[-1])
    masks, table = read_ctc(write_ctc(tmp_path / "res", movie, tracks))
    check_ctc(masks, table)
    rows = table.set_index("label")
    assert rows.loc[gapped, ["begin", "end", "parent"]].tolist() == [0, 2, 0]
    assert rows.loc[3, ["begin", "end", "parent"]].tolist() == [4, 5, gapped]  # new label = max + 1
    assert masks[4, 35, 14] == 3 and masks[2, 35, 11] == gapped


def test_ctc_table_splits_at_gaps():
    tracks = pd.DataFrame({"track_id": [2, 2, 2, 2, 1], "t": [0, 1, 4, 7, 3], "y": 0.0, "x": 0.0})
    table, row_label = ctc_track_table(tracks)
    assert table.to_numpy().tolist() == [[1, 3, 3, 0], [2, 0, 1, 0], [3, 4, 4, 2], [4, 7, 7, 3]]
    assert row_label.tolist() == [2, 2, 3, 4, 1]


# --- CTC from spot tracks (discs) -------------------------------------------------------------


def test_ctc_discs_for_spot_tracks(tmp_path):
    tracks = pd.DataFrame(
        {
            "track_id": [1, 1, 1, 2, 2, 3],
            "t": [0, 1, 2, 0, 1, 1],
            "y": [10.2, 11.0, 12.4, 30.0, 30.0, 30.4],  # track 3 lands on track 2's pixel at t=1
            "x": [10.0, 12.0, 14.0, 20.0, 21.0, 20.6],
        }
    )
    out = write_ctc(tmp_path / "res", None, tracks, shape=(3, 40, 40), radius=2.0)
    masks, table = read_ctc(out)
    check_ctc(masks, table)
    assert masks[0, 10, 10] == 1 and masks[2, 12, 14] == 1 and masks[1, 30, 21] == 2
    assert int(np.count_nonzero(masks[0] == 1)) == 13  # a disc of radius 2
    assert 3 not in table["label"].tolist()  # hidden under track 2: dropped, not a broken file
    # anisotropic 3D: a ball flattened along z
    tracks3 = pd.DataFrame({"track_id": [1], "t": [0], "z": [4.0], "y": [8.0], "x": [8.0]})
    out3 = write_ctc(
        tmp_path / "res3", None, tracks3, shape=(1, 9, 16, 16), radius=3, spacing=(1.5, 0.5, 0.5)
    )
    m3, t3 = read_ctc(out3)
    check_ctc(m3, t3)
    assert m3.shape == (1, 9, 16, 16)
    assert np.flatnonzero(m3[0].any(axis=(1, 2))).tolist() == [3, 4, 5]


def test_ctc_four_digit_names_beyond_1000_frames(tmp_path):
    n = 1001
    tracks = pd.DataFrame({"track_id": 1, "t": np.arange(n), "y": 2.0, "x": 2.0})
    out = write_ctc(tmp_path / "long", None, tracks, shape=(n, 5, 5), radius=1)
    names = sorted(p.name for p in out.glob("mask*.tif"))
    assert names[0] == "mask0000.tif" and names[-1] == "mask1000.tif" and len(names) == n
    assert (out / "res_track.txt").read_text() == "1 0 1000 0\n"


# --- safety and errors --------------------------------------------------------------------


def test_ctc_is_atomic_and_refuses_to_overwrite(tmp_path):
    movie = moving_discs()
    tracks = track_labels(movie)
    dest = write_ctc(tmp_path / "res", movie, tracks)
    before = {p.name: p.read_bytes() for p in dest.iterdir()}
    with pytest.raises(OutputExistsError):
        write_ctc(dest, movie, tracks.iloc[:3])
    assert {p.name: p.read_bytes() for p in dest.iterdir()} == before
    write_ctc(dest, movie, tracks[tracks["track_id"] == 1], overwrite=True)
    _, table = read_ctc(dest)
    assert table["label"].tolist() == [1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]
    # a failure half-way leaves nothing behind
    with pytest.raises(ValueError, match="not in frame"):
        write_ctc(tmp_path / "broken", movie, tracks.assign(label=77))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res"]


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"labels_t": moving_discs(), "drop": "label"}, "label"),
        ({"labels_t": None}, "shape"),
        ({"labels_t": moving_discs()[0]}, "dimensions"),
        ({"labels_t": moving_discs().astype(float)}, "integer"),
    ],
)
def test_ctc_bad_input_is_explained(tmp_path, kwargs, words):
    movie = moving_discs()
    tracks = track_labels(movie)
    if kwargs.pop("drop", None):
        tracks = tracks.drop(columns="label")
    with pytest.raises(ValueError, match=words):
        write_ctc(tmp_path / "res", kwargs["labels_t"], tracks)
    assert not (tmp_path / "res").exists()
