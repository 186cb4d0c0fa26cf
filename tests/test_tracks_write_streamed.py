"""Tracks on disk (ColumnTable) are written piece by piece, to the same bytes as in a DataFrame.

Every writer that ``fbias run`` uses for tracks (CSV, the Cell Tracking
Challenge folder, GEFF) is given the same rows once as a DataFrame and once
as a table on disk; the files must be identical. Pieces are made small here
so that tracks, gaps and frames straddle them.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile

from napari_fbias.io import ctc_masks, tables, tracks_geff, tracks_write
from napari_fbias.io.column_table import ColumnTable, ColumnWriter
from napari_fbias.io.tracks_geff import write_geff
from napari_fbias.io.tracks_write import write_ctc, write_tracks_csv
from napari_fbias.pipeline.outputs import write_results
from napari_fbias.pipeline.runner import Results
from napari_fbias.pipeline.values import Value


def tracks_table(
    n_tracks: int,
    n_frames: int,
    frame: tuple[int, ...],
    *,
    seed: int = 0,
    spacing: tuple[float, ...] | None = None,
    divisions: bool = False,
) -> pd.DataFrame:
    """A tracks table sorted by (track_id, t): tracks with gaps (memory), random positions."""
    rng = np.random.default_rng(seed)
    rows = []
    for tid in range(1, n_tracks + 1):
        frames = np.flatnonzero(rng.random(n_frames) < 0.6)  # gaps: a CTC track splits
        if frames.size == 0:
            frames = np.array([int(rng.integers(n_frames))])
        rows.append(pd.DataFrame({"track_id": tid, "t": frames}))
    df = pd.concat(rows, ignore_index=True)
    n = len(df)
    names = ["z", "y", "x"][-len(frame) :]
    for name, size in zip(names, frame, strict=True):
        df[name] = rng.uniform(-1.0, size, n)  # some centres off the edge: clipped
    df["mass"] = rng.gamma(2.0, 100.0, n).astype(np.float32)
    df["signal"] = rng.integers(0, 1000, n).astype(np.int32)
    df["speed"] = np.where(rng.random(n) < 0.2, np.nan, rng.random(n) * 3.0)
    df["track_length"] = df.groupby("track_id")["t"].transform("size").astype(np.int64)
    df["on_edge"] = rng.random(n) < 0.1
    if spacing is not None:
        for name, s in zip(names, spacing, strict=True):
            df[f"{name}_physical"] = df[name] * s
    if divisions:  # every 5th track (from 6 on) is a daughter of the track 5 before it
        parent = np.where((df["track_id"] % 5 == 1) & (df["track_id"] > 5), df["track_id"] - 5, 0)
        df["parent_track_id"] = parent.astype(np.int64)
    df = df.sort_values(["track_id", "t"], ignore_index=True)
    df.attrs["spacing"] = list(spacing) if spacing else None
    return df


def on_disk(df: pd.DataFrame, piece: int = 37) -> ColumnTable:
    """The same rows as a table on disk, appended in uneven pieces."""
    writer = ColumnWriter(
        {c: df[c].dtype for c in df.columns}, name="test-tracks", attrs=dict(df.attrs)
    )
    for a in range(0, len(df), piece):
        writer.append(df.iloc[a : a + piece])
    return writer.finish()


@pytest.fixture
def small_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read and write in pieces of a few rows, so everything straddles them."""
    monkeypatch.setattr(tables, "READ_ROWS", 23)
    monkeypatch.setattr(tracks_write, "READ_ROWS", 19)
    monkeypatch.setattr(ctc_masks, "READ_ROWS", 29)
    monkeypatch.setattr(ctc_masks, "FRAME_BATCH_ROWS", 40)
    monkeypatch.setattr(tracks_geff, "CHUNK_ROWS", 31)


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def assert_same_folder(a: Path, b: Path) -> None:
    fa, fb = folder_bytes(a), folder_bytes(b)
    assert sorted(fa) == sorted(fb)
    for name in fa:
        assert fa[name] == fb[name], name


CASES = {
    "2d": {"frame": (60, 50)},
    "2d-spacing": {"frame": (60, 50), "spacing": (0.25, 0.5)},
    "3d": {"frame": (6, 40, 30)},
    "3d-spacing-divisions": {"frame": (6, 40, 30), "spacing": (2.0, 0.5, 0.5), "divisions": True},
    "2d-divisions": {"frame": (60, 50), "divisions": True},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_disk_and_memory_tables_give_the_same_files(
    tmp_path: Path, small_pieces: None, case: str
) -> None:
    kw = CASES[case]
    df = tracks_table(70, 7, kw["frame"], seed=len(case), spacing=kw.get("spacing"),
                      divisions=kw.get("divisions", False))  # fmt: skip
    table = on_disk(df)
    shape = (7, *kw["frame"])
    spacing = kw.get("spacing")
    for name, data in (("mem", df), ("disk", table)):
        out = tmp_path / name
        out.mkdir()
        write_tracks_csv(out / "tracks.csv", data)
        write_ctc(out / "ctc", None, data, shape=shape, radius=2.5, spacing=spacing)
        write_geff(out / "tracks.geff", data, spacing=spacing)
    assert (tmp_path / "mem/tracks.csv").read_text() == (tmp_path / "disk/tracks.csv").read_text()
    assert_same_folder(tmp_path / "mem/ctc", tmp_path / "disk/ctc")
    assert_same_folder(tmp_path / "mem/tracks.geff", tmp_path / "disk/tracks.geff")
    # the tracks were split at gaps, and a disc or two lost to a shared centre pixel
    res = (tmp_path / "disk/ctc/res_track.txt").read_text().splitlines()
    assert len(res) > df["track_id"].nunique()
    masks = np.stack([tifffile.imread(p) for p in sorted((tmp_path / "disk/ctc").glob("*.tif"))])
    assert masks.shape == shape and masks.max() > 0
    back = pd.read_csv(tmp_path / "disk/tracks.csv")
    assert len(back) == len(df) and list(back.columns[:2]) == ["track_id", "t"]


def test_shared_centres_are_dropped_the_same_way(tmp_path: Path, small_pieces: None) -> None:
    """Detections on one pixel: the later (in label order) is left out, tracks split again."""
    df = tracks_table(40, 5, (12, 12), seed=3)  # crowded: many share a centre pixel
    table = on_disk(df)
    for name, data in (("mem", df), ("disk", table)):
        write_ctc(tmp_path / name, None, data, shape=(5, 12, 12), radius=1.0)
    assert_same_folder(tmp_path / "mem", tmp_path / "disk")


def test_label_masks_from_a_table_on_disk(tmp_path: Path, small_pieces: None) -> None:
    from napari_fbias.ops.track import track_labels

    yy, xx = np.mgrid[:48, :48]
    movie = np.zeros((6, 48, 48), np.int32)
    for t in range(6):
        movie[t][(yy - 10 - 2 * t) ** 2 + (xx - 12) ** 2 <= 16] = 4
        if t != 3:
            movie[t][(yy - 35) ** 2 + (xx - 8 - 1.5 * t) ** 2 <= 16] = 9 if t % 2 else 2
    df = track_labels(movie, axes="tyx", memory=1).sort_values(["track_id", "t"])
    df = df.reset_index(drop=True)
    table = on_disk(df, piece=3)
    write_ctc(tmp_path / "mem", movie, df)
    write_ctc(tmp_path / "disk", movie, table)
    assert_same_folder(tmp_path / "mem", tmp_path / "disk")
    # a tracked object missing from its frame is refused, as in memory
    wrong = movie.copy()
    wrong[2][wrong[2] == 4] = 0
    for name, data in (("mem2", df), ("disk2", table)):
        with pytest.raises(ValueError, match="object 4 of the tracks is not in frame t=2"):
            write_ctc(tmp_path / name, wrong, data)


def test_errors_read_the_same(tmp_path: Path) -> None:
    dup = pd.DataFrame({"track_id": [1, 1, 2], "t": [0, 0, 1], "y": [1.0] * 3, "x": [2.0] * 3})
    for data in (dup, on_disk(dup, 2)):
        with pytest.raises(ValueError, match="track 1 has two detections at t=0"):
            write_ctc(tmp_path / "c", None, data, shape=(2, 8, 8))
        with pytest.raises(ValueError, match="track 1 has two detections at t=0"):
            write_geff(tmp_path / "g", data)
    many = pd.DataFrame({"track_id": [3, 70000], "t": [0, 1], "y": [1.0, 2.0], "x": [1.0, 2.0]})
    for data in (many, on_disk(many)):
        with pytest.raises(ValueError, match="70000 track labels do not fit"):
            write_ctc(tmp_path / "c", None, data, shape=(2, 8, 8))
    orphan = pd.DataFrame(
        {"track_id": [2], "t": [0], "y": [0.0], "x": [0.0], "parent_track_id": [7]}
    )
    for data in (orphan, on_disk(orphan)):
        with pytest.raises(ValueError, match="parent track 7"):
            write_geff(tmp_path / "g", data)
        with pytest.raises(ValueError, match="parent track 7"):
            write_ctc(tmp_path / "c", None, data, shape=(2, 8, 8))
    unsorted = on_disk(
        pd.DataFrame({"track_id": [2, 1], "t": [0, 0], "y": [0.0] * 2, "x": [0.0] * 2})
    )
    with pytest.raises(ValueError, match="not sorted"):
        write_geff(tmp_path / "g", unsorted)
    assert not (tmp_path / "g").exists() and not (tmp_path / "c").exists()


def test_an_empty_table_on_disk(tmp_path: Path) -> None:
    df = tracks_table(3, 2, (8, 8)).iloc[:0]
    table = on_disk(df)
    for name, data in (("mem", df), ("disk", table)):
        out = tmp_path / name
        out.mkdir()
        write_tracks_csv(out / "tracks.csv", data)
        write_ctc(out / "ctc", None, data, shape=(2, 8, 8))
        write_geff(out / "tracks.geff", data)
    assert_same_folder(tmp_path / "mem", tmp_path / "disk")


def _results(tracks: object) -> Results:
    image = Value(np.zeros((7, 60, 50), np.uint8), "image", "tyx", (1.0, 0.25, 0.5))
    units = (None, "micrometer", "micrometer")
    value = Value(tracks, "tracks", "tyx", (1.0, 0.25, 0.5), units)
    return Results({"tracks": value}, {}, {"image": image})


def test_write_results_with_tracks_on_disk(tmp_path: Path, small_pieces: None) -> None:
    df = tracks_table(60, 7, (60, 50), spacing=(0.25, 0.5), divisions=True)
    (tmp_path / "mem").mkdir()
    (tmp_path / "disk").mkdir()
    files_mem = write_results(_results(df), tmp_path / "mem")
    files_disk = write_results(_results(on_disk(df)), tmp_path / "disk")
    assert files_mem == files_disk
    assert files_disk["tracks"]["ctc"] == "tracks_ctc"
    assert files_disk["tracks"]["geff"] == "tracks.geff"
    for name in ("tracks.csv", "tracks_ctc", "tracks.geff"):
        a, b = tmp_path / "mem" / name, tmp_path / "disk" / name
        if a.is_dir():
            assert_same_folder(a, b)
        else:
            assert a.read_bytes() == b.read_bytes()


def test_writing_does_not_read_the_table_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CSV, GEFF and CTC of 300 000 rows on disk peak well below the table's size in memory."""
    # masks tile by tile, as 32768^2 frames are, on small frames (the files stay small)
    monkeypatch.setattr(ctc_masks, "TILED_FRAME_PIXELS", 256 * 256)
    monkeypatch.setattr(ctc_masks, "TILE", 256)
    rng = np.random.default_rng(1)
    n_frames, n_tracks = 5, 60_000  # CTC labels must fit 16 bits
    n = n_frames * n_tracks
    columns = ["track_id", "t", "y", "x", "mass", "size", "signal", "speed", "track_length"]
    columns += ["displacement", "mean_speed", "straightness", "y_physical", "x_physical", "ecc"]
    floats = ("y", "x", "mass")  # the others are whole numbers: quicker to write as text
    writer = ColumnWriter(
        {c: np.float64 if c in floats else np.int64 for c in columns}, name="test-big-tracks"
    )
    step = 50_000
    for a in range(0, n, step):
        rows = np.arange(a, a + step)
        piece = {c: rng.integers(0, 100, step) for c in columns}
        piece.update(
            track_id=rows // n_frames + 1,
            t=rows % n_frames,
            y=rng.uniform(0, 1024, step),
            x=rng.uniform(0, 1024, step),
            track_length=np.full(step, n_frames),
        )
        writer.append(piece)
    table = writer.finish()
    del piece, rows
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        write_tracks_csv(tmp_path / "tracks.csv", table)
        write_geff(tmp_path / "tracks.geff", table)
        write_ctc(tmp_path / "ctc", None, table, shape=(n_frames, 1024, 1024), radius=1.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len((tmp_path / "ctc/res_track.txt").read_text().splitlines()) >= n_tracks
    assert peak < 0.5 * table.nbytes, f"peak {peak / 2**20:.1f} MiB of {table.nbytes / 2**20:.1f}"
    # what the bound catches: the table read whole (tracemalloc sees numpy's memory)
    tracemalloc.start()
    try:
        whole = table.to_pandas()
        _, peak_whole = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del whole
    assert peak_whole >= table.nbytes
