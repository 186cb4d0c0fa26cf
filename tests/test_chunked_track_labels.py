"""``track.track_labels`` chunk-wise: a lazy labels movie read a few frames at a time.

A small synthetic movie (objects that move, divide, vanish for a frame and
come back, live briefly) in one-frame chunks cut spatially through the
objects; every chunk-wise table is compared with the in-memory one, exactly.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import pytest
from dask.callbacks import Callback
from skimage.draw import disk

from napari_fbias.ops.track_chunks import FRAMES_PER_COMPUTE
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.runner import run_pipeline


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def track_step(params: dict, axes: str = "tyx") -> Pipeline:
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "x",
            "inputs": {"labels": {"kind": "labels", "axes": axes}},
            "steps": [
                {
                    "id": "s",
                    "op": "track.track_labels",
                    "inputs": {"labels": "labels"},
                    "params": params,
                }
            ],
            "outputs": {"out": {"from": "s"}},
        }
    )


def synthetic_movie(n_t: int = 10, shape: tuple[int, int] = (64, 80)) -> np.ndarray:
    """Moving, dividing, blinking and short-lived discs; ids shuffled per frame."""
    rng = np.random.default_rng(7)
    movie = np.zeros((n_t, *shape), np.uint16)
    for t in range(n_t):
        discs = [(14 + t, 12 + 2 * t, 7), (48, 70 - 2 * t, 6)]  # two movers
        if t < 4:  # a mother, then two daughters moving apart
            discs.append((34, 40 + t, 9))
        else:
            discs += [(28 - (t - 4), 41, 5), (40 + (t - 4), 41, 5)]
        if t != 5:  # a blinker: gone at t = 5, back at t = 6
            discs.append((12, 62, 5))
        if 7 <= t <= 8:  # short-lived
            discs.append((55, 15, 4))
        ids = rng.permutation(len(discs)) + 3
        for (cy, cx, r), i in zip(discs, ids, strict=True):
            rr, cc = disk((cy, cx), r, shape=shape)
            movie[t][rr, cc] = i
    return movie


@pytest.fixture(scope="module")
def movie() -> np.ndarray:
    return synthetic_movie()


def _frames_with_gap(tracks: pd.DataFrame) -> bool:
    return any(
        (np.diff(np.sort(g["t"].to_numpy())) > 1).any() for _, g in tracks.groupby("track_id")
    )


CASES = [
    {"method": "overlap", "memory": 1},
    {"method": "overlap", "memory": 1, "divisions": True, "min_length": 2},
    {"method": "overlap", "memory": 0, "divisions": True, "min_length": 3},
    {"method": "centroid", "memory": 1, "search_range": 8.0},
    {"method": "centroid", "memory": 1, "search_range": 8.0, "min_length": 3},
]


@pytest.mark.parametrize("params", CASES, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_chunk_wise_tracks_equal_in_memory(movie, params):
    p = track_step(params)
    expected = p.run(movie)["out"]
    res = run_pipeline(p, movie, chunked=True, chunks=16, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    got = res["out"]
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.attrs == expected.attrs
    # the movie exercises what is compared
    assert len(expected) > 0 and expected["track_id"].nunique() >= 5
    if params.get("divisions"):
        assert (expected["parent_track_id"] > 0).sum() > 0
    if params["memory"] == 1 and params.get("min_length", 1) == 1:
        assert _frames_with_gap(expected)  # the blinker is bridged


def test_chunk_wise_3d_movie_with_divisions():
    flat = synthetic_movie(6, (40, 48))
    movie = np.repeat(flat[:, np.newaxis], 3, axis=1)
    movie[:, 0] = 0  # objects do not fill every plane
    p = track_step({"memory": 1, "divisions": True}, axes="tzyx")
    expected = p.run(movie)["out"]
    res = run_pipeline(p, movie, chunked=True, chunks=12, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    pd.testing.assert_frame_equal(res["out"], expected, check_exact=True)
    assert list(expected.columns[:5]) == ["track_id", "t", "z", "y", "x"]


def test_movie_over_the_memory_budget_runs_chunk_wise(movie):
    p = track_step({"memory": 1, "divisions": True})
    expected = p.run(movie)["out"]
    res = run_pipeline(p, movie, memory_limit=movie.nbytes // 2, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    pd.testing.assert_frame_equal(res["out"], expected, check_exact=True)


class CountingMovie:
    """An array-like labels movie that logs every frame a read touches."""

    def __init__(self, data: np.ndarray) -> None:
        self.data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.ndim = data.ndim
        self.reads: list[tuple] = []  # ("block", frames, y0, x0); the test adds ("compute",)

    def __getitem__(self, index):
        out = self.data[index]
        if out.size:
            frames = range(*index[0].indices(self.shape[0]))
            self.reads.append(("block", tuple(frames), index[1].start, index[2].start))
        return out


@pytest.mark.parametrize("method", ["overlap", "centroid"])
def test_only_a_few_frames_are_computed_at_once(movie, method):
    source = CountingMovie(movie)
    lazy = da.from_array(source, chunks=(1, 16, 32), meta=np.empty((0, 0, 0), movie.dtype))
    n_blocks = int(np.prod(lazy.numblocks))
    p = track_step({"method": method, "memory": 2, "search_range": 8.0})
    expected = p.run(movie)["out"]
    source.reads.clear()

    def mark(dsk):
        source.reads.append(("compute",))

    with Callback(start=mark):
        res = run_pipeline(p, lazy, chunked=True, checksum=False)
    pd.testing.assert_frame_equal(res["out"], expected, check_exact=True)
    assert res.record["steps"][0]["mode"] == "chunked"
    computes: list[set[int]] = []
    blocks = []
    for entry in source.reads:
        if entry[0] == "compute":
            computes.append(set())
        else:
            computes[-1].update(entry[1])
            blocks.append(entry)
    frames_per_compute = [len(c) for c in computes if c]
    # frame by frame, never the movie: each compute reads at most a few frames...
    assert max(frames_per_compute) <= FRAMES_PER_COMPUTE < movie.shape[0]
    assert len(frames_per_compute) >= movie.shape[0] // FRAMES_PER_COMPUTE
    # ... and every block of the movie is read exactly once
    assert len(blocks) == n_blocks == len(set(blocks))


def test_spacing_and_frame_interval_through_the_runner(movie):
    from napari_fbias.pipeline.values import Value

    value = Value(movie, "labels", "tyx", (2.0, 0.5, 0.5))
    p = track_step({"memory": 1})
    expected = p.run(value)["out"]
    got = run_pipeline(p, value, chunked=True, chunks=16, checksum=False)["out"]
    assert expected.attrs["frame_interval"] == 2.0
    assert {"t_physical", "speed_physical", "area_physical"} <= set(expected.columns)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert got.attrs == expected.attrs


def test_channels_are_refused_chunk_wise_as_in_memory(movie):
    two = np.stack([movie, movie], axis=1)
    p = track_step({}, axes="tcyx")
    with pytest.raises(StepError, match="select a channel"):
        p.run(two)
    with pytest.raises(StepError, match="select a channel"):
        run_pipeline(p, two, chunked=True, chunks=16, checksum=False)
