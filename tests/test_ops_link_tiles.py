"""Crowded frames are linked in spatial tiles: the same tracks as one trackpy run, less memory."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pandas as pd
import pytest

import napari_fbias.ops.link_tiles as link_tiles
from napari_fbias.ops.chosen import collect_chosen
from napari_fbias.ops.track import link_spots


def walkers(n: int, frames: int, side: float, step: float, seed: int, drift: float = 0.0):
    """Spots doing random walks (with a drift along x); some vanish for a frame."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(0, side, (n, 2))
    rows = []
    for t in range(frames):
        pos = pos + rng.normal(0, step, pos.shape) + [0.0, drift]
        seen = rng.random(n) > 0.03  # 3 % missed in each frame
        rows.append(
            pd.DataFrame(
                {
                    "t": np.full(seen.sum(), t, np.int64),
                    "y": pos[seen, 0],
                    "x": pos[seen, 1],
                    "mass": rng.uniform(100, 200, seen.sum()),
                }
            )
        )
    return pd.concat(rows, ignore_index=True)


def track_sets(tracks: pd.DataFrame) -> set[frozenset]:
    keys = zip(tracks["t"].to_numpy(), tracks["y"].to_numpy(), tracks["x"].to_numpy(), strict=True)
    groups: dict[int, list] = {}
    for tid, key in zip(tracks["track_id"].to_numpy(), keys, strict=True):
        groups.setdefault(int(tid), []).append(key)
    return {frozenset(v) for v in groups.values()}


def test_tiles_give_the_tracks_of_one_run(monkeypatch):
    spots = walkers(3000, 8, 1500.0, 1.2, seed=1, drift=2.0)
    whole = link_spots(spots, search_range=6.0, memory=2)
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 400)
    with collect_chosen() as chosen:
        tiled = link_spots(spots, search_range=6.0, memory=2)
    info = chosen.summary()
    assert info["link_tiles"] == 9  # ceil(2900 / 400) = 8 wanted: a 3 x 3 grid
    assert info["link_tile_disagreements"] == 0
    pd.testing.assert_frame_equal(tiled, whole)  # same tracks, same numbering, same features
    # tracks do cross the tiles' borders (the drift takes them over 16 px)
    cuts = np.quantile(spots["x"], [1 / 3, 2 / 3])
    per_track = tiled.groupby("track_id")["x"].agg(["min", "max"])
    crossing = ((per_track["min"] < cuts[0]) & (per_track["max"] >= cuts[0])).sum()
    assert crossing > 20


def test_crowded_spots_same_tracks_and_a_small_halo_is_reported(monkeypatch):
    # 4000 spots in 400 x 400 px (6 px apart on average, the search range): subnets chain
    spots = walkers(4000, 5, 400.0, 2.5, seed=4)
    settings = {"search_range": 6.0, "memory": 1, "adaptive_stop": 1.0}
    whole = track_sets(link_spots(spots, **settings))
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 500)
    with collect_chosen() as chosen:
        tiled = track_sets(link_spots(spots, **settings))
    assert tiled == whole
    assert chosen.summary() == {"link_tiles": 9, "link_tile_disagreements": 0}
    # with a halo of one search range, subnets are cut: tiles disagree, links are dropped
    monkeypatch.setattr(link_tiles, "HALO_RANGES", 1)
    with collect_chosen() as chosen:
        small = track_sets(link_spots(spots, **settings))
    assert chosen.summary()["link_tile_disagreements"] > 0
    assert 0.95 <= len(whole & small) / len(whole) < 1


def test_small_tables_are_linked_in_one_run(monkeypatch):
    calls = []
    spots = walkers(200, 4, 300.0, 1.0, seed=2)
    real = link_tiles.link_in_tiles

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        calls.append(out.tiles)
        return out

    monkeypatch.setattr("napari_fbias.ops.track.link_in_tiles", spy)
    with collect_chosen() as chosen:
        link_spots(spots, search_range=6.0)
    assert calls == [1]
    assert "link_tiles" not in chosen.summary()


def test_tiles_bound_what_trackpy_holds(monkeypatch):
    spots = walkers(12000, 3, 4000.0, 1.0, seed=3)

    def peak() -> int:
        tracemalloc.start()
        try:
            link_spots(spots, search_range=6.0, memory=2)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    link_spots(spots.iloc[:100], search_range=6.0)  # imports done before measuring
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 10**9)  # one run
    whole = peak()
    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 1500)
    tiled = peak()
    assert tiled < whole / 2, (tiled / 2**20, whole / 2**20)


@pytest.mark.parametrize("t", [[0, 0, 1, 1, 2], [2, 1, 0, 1, 2]])
def test_chains_follow_predecessors(t):
    t = np.array(t)
    pred = np.full(len(t), -1)
    later = np.flatnonzero(t > 0)
    earlier = {int(v): np.flatnonzero(t == v - 1)[0] for v in t[later]}
    for i in later:
        pred[i] = earlier[int(t[i])]
    particle = link_tiles._chains(link_tiles._frames_of(t), pred)
    for i in later:
        assert particle[i] == particle[pred[i]]
