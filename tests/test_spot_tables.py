"""Chunk-wise spot tracking's tables on disk equal the in-memory tables, with less held."""

from __future__ import annotations

import tracemalloc

import dask.array as da
import numpy as np
import pandas as pd
import pytest

import napari_fbias.ops.link_tiles as link_tiles
import napari_fbias.ops.spot_tables as spot_tables
from napari_fbias.io.column_table import ColumnTable, ColumnWriter
from napari_fbias.ops.chosen import collect_chosen
from napari_fbias.ops.chunks import block_pixels_budget
from napari_fbias.ops.spot_chunks import track_spots_chunks
from napari_fbias.ops.spot_tables import SpotsOnDisk, tracks_on_disk
from napari_fbias.ops.track import _linker, _spots_table, link_spots, track_spots


def walkers(n, frames, side, step, seed, ndim=2, drift=0.0):
    """Spots on random walks, sorted by t, (z), y, x as locate_spots sorts them; 3 % missed."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, side, (n, ndim))
    cols = ["z", "y", "x"][-ndim:]
    rows = []
    for t in range(frames):
        pos = pos + rng.normal(0, step, pos.shape)
        pos[:, -1] += drift
        seen = rng.random(n) > 0.03
        frame = {"t": np.full(seen.sum(), t, np.int64)}
        frame.update({c: pos[seen, k] for k, c in enumerate(cols)})
        frame["mass"] = rng.uniform(100, 200, seen.sum())
        rows.append(pd.DataFrame(frame))
    spots = pd.concat(rows, ignore_index=True)
    return spots.sort_values(["t", *cols], kind="stable", ignore_index=True)


def on_disk(df: pd.DataFrame) -> ColumnTable:
    writer = ColumnWriter({c: df[c].dtype for c in df.columns}, "test")
    writer.append(df)
    return writer.finish()


def frame_starts(spots: pd.DataFrame, n_t: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(spots["t"], minlength=n_t))])


def linked_on_disk(spots, settings, n_t, pos_cols=("y", "x")):
    link_one, reach = _linker(
        list(pos_cols),
        search_range=settings["search_range"],
        memory=settings.get("memory", 0),
        adaptive_stop=settings.get("adaptive_stop"),
        adaptive_step=0.95,
        spacing=None,
        op="test",
    )
    table = on_disk(spots)
    done = link_tiles.link_sorted_in_tiles(
        table, list(pos_cols), link_one, reach, frame_starts(spots, n_t)
    )
    return table, done


def sets_of(spots: pd.DataFrame, first_row: np.ndarray) -> set[frozenset]:
    groups: dict[int, list] = {}
    for r, f in enumerate(first_row.tolist()):
        groups.setdefault(f, []).append(r)
    return {frozenset(v) for v in groups.values()}


def row_sets(spots: pd.DataFrame, tracks: pd.DataFrame) -> set[frozenset]:
    key = {k: r for r, k in enumerate(zip(spots["t"], spots["y"], spots["x"], strict=True))}
    groups: dict[int, list] = {}
    for tid, k in zip(
        tracks["track_id"], zip(tracks["t"], tracks["y"], tracks["x"], strict=True), strict=True
    ):
        groups.setdefault(int(tid), []).append(key[k])
    return {frozenset(v) for v in groups.values()}


@pytest.mark.parametrize("halo", [16, 1])
def test_linking_a_band_at_a_time_gives_the_tiles_links(monkeypatch, halo):
    spots = walkers(3000, 6, 1500.0, 1.5, seed=2, drift=2.0)
    settings = {"search_range": 6.0, "memory": 2}
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 400)
    monkeypatch.setattr(link_tiles, "HALO_RANGES", halo)
    with collect_chosen() as chosen:
        whole = link_spots(spots, **settings)
    _, done = linked_on_disk(spots, settings, 6)
    assert done.tiles == chosen.summary()["link_tiles"] == 9
    assert done.dropped == chosen.summary()["link_tile_disagreements"]
    if halo == 1:
        assert done.dropped > 0  # the tiles disagree somewhere: both paths drop the same links
    assert sets_of(spots, done.particle) == row_sets(spots, whole)
    assert (done.particle <= np.arange(len(spots))).all()  # a track's first row


def test_linking_a_whole_table_from_disk_gives_first_rows():
    spots = walkers(300, 5, 400.0, 1.0, seed=3)
    _, done = linked_on_disk(spots, {"search_range": 6.0, "memory": 1}, 5)
    assert done.tiles == 1
    whole = link_spots(spots, search_range=6.0, memory=1)
    assert sets_of(spots, done.particle) == row_sets(spots, whole)
    assert (done.particle == np.minimum.reduceat(np.arange(len(spots)), [0])[0]).sum() >= 1
    for r, f in enumerate(done.particle.tolist()):
        assert f <= r and done.particle[f] == f


@pytest.mark.parametrize("spacing", [None, (2.0, 0.5, 0.5)])
@pytest.mark.parametrize("piece", [spot_tables.FEATURE_ROWS, 40, 2])
def test_tracks_built_on_disk_equal_build_tracks(monkeypatch, spacing, piece):
    # pieces of 40 rows end inside tracks; pieces of 2 rows are shorter than most tracks
    spots = walkers(800, 6, 600.0, 1.2, seed=5)
    settings = {"search_range": 6.0, "memory": 2, "min_length": 3}
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 200)
    axes, link_spacing = ("tyx", spacing) if spacing else ("", None)
    expected = link_spots(spots, axes=axes, spacing=link_spacing, **settings)
    table, done = linked_on_disk(spots, settings, 6)
    monkeypatch.setattr(spot_tables, "FEATURE_ROWS", piece)
    monkeypatch.setattr(spot_tables._whole_tracks, "__defaults__", (piece,))
    tracks = tracks_on_disk(
        table,
        done.particle,
        ["y", "x"],
        ["mass"],
        min_length=3,
        spacing=None if spacing is None else spacing[1:],
        frame_interval=None if spacing is None else spacing[0],
        name="test",
    )
    got = tracks.to_pandas()
    pd.testing.assert_frame_equal(got, expected)
    assert got.attrs == expected.attrs
    assert ColumnTable.open(tracks.path).to_pandas().equals(got)


def test_no_track_long_enough_gives_none():
    spots = walkers(50, 2, 400.0, 1.0, seed=6)
    table, done = linked_on_disk(spots, {"search_range": 6.0}, 2)
    kwargs = {"min_length": 5, "spacing": None, "frame_interval": None, "name": "t"}
    assert tracks_on_disk(table, done.particle, ["y", "x"], ["mass"], **kwargs) is None


def test_spots_sorted_frame_by_frame_equal_the_spots_table():
    rng = np.random.default_rng(7)
    blocks = []
    for t in range(3):
        for _ in range(3):  # blocks of a frame come in any spatial order
            n = int(rng.integers(0, 30))
            b = pd.DataFrame({"t": np.full(n, t, np.int64), "z": rng.integers(0, 4, n) * 1.0})
            b["y"] = rng.integers(0, 8, n) * 1.0  # ties on y: x then order of arrival
            b["x"] = rng.uniform(0, 100, n)
            b["mass"] = rng.uniform(0, 1, n)
            if t != 1:
                b["ep"] = rng.uniform(0, 1, n)
            blocks.append(b)
    disk = SpotsOnDisk(["z", "y", "x"], ["mass", "ep"], "test")
    for b in blocks:
        disk.add(b)
    table, starts = disk.sorted(5)  # frames 3 and 4 have no spots
    expected = _spots_table(blocks, ["z", "y", "x"], ["mass", "ep"], None, None, 0.0)
    pd.testing.assert_frame_equal(table.to_pandas(), expected, check_like=False)
    assert starts.tolist() == [0, *np.cumsum(np.bincount(expected["t"], minlength=5)).tolist()]
    with pytest.raises(RuntimeError, match="came after"):
        disk2 = SpotsOnDisk(["y", "x"], ["mass"], "test")
        disk2.add(blocks[6])
        disk2.add(blocks[0])


def movie(n_t=3, side=192, n_spots=120, seed=0):
    rng = np.random.default_rng(seed)
    m = rng.normal(100, 5, (n_t, side, side))
    yy, xx = np.mgrid[:side, :side]
    pts = rng.uniform(8, side - 8, (n_spots, 2))
    for t in range(n_t):
        for p in pts + t * np.array([0.8, -0.6]):
            m[t] += 200 * np.exp(-((yy - p[0]) ** 2 + (xx - p[1]) ** 2) / (2 * 1.5**2))
    return m.astype(np.uint16)


def test_chunkwise_tracks_stay_on_disk_beyond_the_budget(monkeypatch):
    mov = movie()
    params = {
        "diameter": 7,
        "minmass": None,
        "separation": None,
        "percentile": 64.0,
        "search_range": 6.0,
        "memory": 1,
        "adaptive_stop": None,
        "min_length": 2,
        "axes": "tyx",
        "spacing": (2.0, 0.5, 0.5),
    }
    expected = track_spots(mov, **params)
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 30)  # 120 spots a frame: tiles
    tiled = track_spots(mov, **params)
    d = da.from_array(mov, chunks=(1, 64, 64))
    small = track_spots_chunks(None, d, 1, params)  # no budget: in memory
    assert isinstance(small, pd.DataFrame)
    pd.testing.assert_frame_equal(small, tiled)
    nbytes = sum(small[c].to_numpy().nbytes for c in small.columns)
    with block_pixels_budget(None, memory=4 * nbytes - 4):  # a quarter: one byte short
        big = track_spots_chunks(None, d, 1, params)
    assert isinstance(big, ColumnTable)
    pd.testing.assert_frame_equal(big.to_pandas(), tiled)
    pd.testing.assert_frame_equal(tiled, expected)  # tiles far apart enough: as one run


def test_tracks_on_disk_hold_a_fraction_of_the_table():
    rng = np.random.default_rng(8)
    k, n_t = 100_000, 3
    per_frame = [rng.uniform(0, 30000, (k, 2)) for _ in range(n_t)]
    orders = [np.lexsort((p[:, 1], p[:, 0])) for p in per_frame]
    rank = [np.empty(k, np.int64) for _ in range(n_t)]
    for f in range(n_t):
        rank[f][orders[f]] = np.arange(k)  # track j's row within frame f
    writer = ColumnWriter(
        {"t": np.int64, "y": np.float64, "x": np.float64, "mass": np.float64}, "t"
    )
    for f in range(n_t):
        p = per_frame[f][orders[f]]
        writer.append(
            {"t": np.full(k, f), "y": p[:, 0], "x": p[:, 1], "mass": rng.uniform(0, 1, k)}
        )
    spots = writer.finish()
    del per_frame
    first_row = np.empty(k * n_t, np.int32)
    for f in range(n_t):
        first_row[f * k + rank[f]] = rank[0]
    tracemalloc.start()
    try:
        tracks = tracks_on_disk(
            spots, first_row, ["y", "x"], ["mass"], min_length=1, spacing=(0.5, 0.5),
            frame_interval=2.0, name="t",
        )  # fmt: skip
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(tracks) == k * n_t and tracks.nbytes > 36 * 2**20
    assert peak < 0.3 * tracks.nbytes, (peak / 2**20, tracks.nbytes / 2**20)
    head = tracks.frame(0, 6)
    assert head["track_id"].tolist() == [1, 1, 1, 2, 2, 2]
    assert head["t"].tolist() == [0, 1, 2, 0, 1, 2]


def test_a_run_writes_the_same_files_from_tracks_on_disk(monkeypatch, tmp_path):
    """Through the runner: the tracks step runs chunk-wise, its table stays on disk, and the
    CSV, CTC and GEFF outputs are those of the same run with the table in memory, byte for byte."""
    import napari_fbias.ops.chunks as chunks
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.outputs import write_results
    from napari_fbias.pipeline.runner import run_pipeline

    p = Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "spots",
            "inputs": {"image": {"kind": "image", "axes": "tyx"}},
            "steps": [
                {
                    "id": "tracks",
                    "op": "track.track_spots",
                    "inputs": {"image": "image"},
                    "params": {"diameter": 7, "memory": 1, "min_length": 2},
                }
            ],
            "outputs": {"tracks": {"from": "tracks"}},
        }
    )
    mov = movie()
    in_memory = run_pipeline(p, mov, memory_limit=2**20, chunks=(1, 64, 64), checksum=False)
    assert isinstance(in_memory.value("tracks").data, pd.DataFrame)
    monkeypatch.setattr(chunks, "TABLE_SHARE", 10**12)  # any table stays on disk
    chunked = run_pipeline(p, mov, memory_limit=2**20, chunks=(1, 64, 64), checksum=False)
    assert chunked.record["steps"][0]["mode"] == "chunked"
    assert isinstance(chunked.value("tracks").data, ColumnTable)
    # (chunk-wise positions differ from the whole frame's by 1e-14 px: compare chunk-wise runs)
    folders = []
    for name, res in (("memory", in_memory), ("disk", chunked)):
        (tmp_path / name).mkdir()
        files = write_results(res, tmp_path / name)
        assert files["tracks"]["ctc"] and files["tracks"]["geff"]
        folders.append(tmp_path / name)
    a, b = folders
    assert (a / "tracks.csv").read_bytes() == (b / "tracks.csv").read_bytes()
    for sub in ("tracks_ctc", "tracks.geff"):
        left = sorted(q.relative_to(a) for q in (a / sub).rglob("*") if q.is_file())
        right = sorted(q.relative_to(b) for q in (b / sub).rglob("*") if q.is_file())
        assert left == right
        for q in left:
            assert (a / q).read_bytes() == (b / q).read_bytes(), q
