"""Tracking operations: trackpy spots, linking, label tracking, track features, MSD."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linear_sum_assignment

from napari_fbias.ops.registry import get_op
from napari_fbias.ops.track import (
    TrackingError,
    link_spots,
    locate_spots,
    relabel_by_track,
    track_labels,
    track_spots,
)
from napari_fbias.ops.track_features import msd, track_features

# --- tiny ground-truth generators ----------------------------------------------------------


def render_spots(
    positions: dict[int, list[tuple[float, ...]]],
    shape: tuple[int, ...],
    *,
    sigma: float = 1.4,
    amplitude: float = 300.0,
    background: float = 100.0,
    noise: float = 4.0,
    seed: int = 0,
) -> np.ndarray:
    """Gaussian spots at ``positions[t]`` (list of (y, x) or (z, y, x)), camera noise, uint16."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape[1:]], indexing="ij")
    movie = np.empty(shape, np.uint16)
    for t in range(shape[0]):
        img = np.full(shape[1:], background)
        for p in positions.get(t, []):
            r2 = sum((g - c) ** 2 for g, c in zip(grids, p, strict=True))
            img += amplitude * np.exp(-r2 / (2 * sigma**2))
        img = rng.poisson(img) + rng.normal(0, noise, img.shape)
        movie[t] = np.clip(np.rint(img), 0, 65535).astype(np.uint16)
    return movie


def straight_lines(n_frames: int = 10) -> tuple[dict[int, list[tuple[float, float]]], list]:
    """Five particles on parallel straight lines, far apart (no crossings)."""
    starts = [(12.0, 10.0), (12.0, 40.0), (34.0, 15.0), (34.0, 45.0), (50.0, 28.0)]
    velocity = [(0.8, 1.5), (0.8, 1.5), (-0.6, 1.2), (-0.6, 1.2), (0.0, 1.8)]
    truth = [
        [(y0 + vy * t, x0 + vx * t) for t in range(n_frames)]
        for (y0, x0), (vy, vx) in zip(starts, velocity, strict=True)
    ]
    positions = {t: [tr[t] for tr in truth] for t in range(n_frames)}
    return positions, truth


def spots_table(points: list[tuple[int, float, float]]) -> pd.DataFrame:
    return pd.DataFrame(points, columns=["t", "y", "x"]).astype({"t": np.int64})


def disc_movie(
    centres: list[list[tuple[float, float]]], shape: tuple[int, int, int], radius: float = 6.0
) -> np.ndarray:
    """Labels movie of discs; ids are shuffled per frame (ids must not carry identity)."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[: shape[1], : shape[2]]
    movie = np.zeros(shape, np.int32)
    for t in range(shape[0]):
        ids = rng.permutation(len(centres)) + 5
        for k, track in enumerate(centres):
            if track[t] is None:
                continue
            cy, cx = track[t]
            movie[t][(yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2] = ids[k]
    return movie


def match_frames(det: pd.DataFrame, gt: pd.DataFrame, tol: float) -> dict[int, int]:
    """One-to-one matching (per frame) of ground-truth rows to detected rows within ``tol``."""
    out: dict[int, int] = {}
    for t, g in gt.groupby("t"):
        d = det[det["t"] == t]
        if len(d) == 0:
            continue
        cost = np.linalg.norm(
            g[["y", "x"]].to_numpy()[:, None] - d[["y", "x"]].to_numpy()[None], axis=2
        )
        rows, cols = linear_sum_assignment(cost)
        for i, j in zip(rows, cols, strict=True):
            if cost[i, j] <= tol:
                out[g.index[i]] = d.index[j]
    return out


# --- detection + linking --------------------------------------------------------------


def test_straight_lines_recovered_exactly():
    positions, truth = straight_lines()
    movie = render_spots(positions, (10, 64, 80))
    tracks = track_spots(movie, diameter=7, axes="tyx")
    assert tracks["track_id"].nunique() == 5
    assert list(tracks.groupby("track_id").size()) == [10] * 5
    for _, g in tracks.groupby("track_id"):
        # each found track follows exactly one true line, frame by frame
        first = g.iloc[0]
        k = int(np.argmin([np.hypot(tr[0][0] - first.y, tr[0][1] - first.x) for tr in truth]))
        expected = np.array(truth[k])
        np.testing.assert_allclose(g[["y", "x"]].to_numpy(), expected, atol=0.35)
    # ids by first appearance, then position (y, x)
    firsts = tracks.groupby("track_id").first()
    assert list(firsts.index) == [1, 2, 3, 4, 5]
    assert firsts[["y", "x"]].apply(tuple, axis=1).tolist() == sorted(
        firsts[["y", "x"]].apply(tuple, axis=1).tolist()
    )
    # per-row speed and per-track features of constant-velocity lines
    line_speed = [
        np.hypot(0.8, 1.5),
        np.hypot(0.8, 1.5),
        np.hypot(0.6, 1.2),
        np.hypot(0.6, 1.2),
        1.8,
    ]
    assert tracks.groupby("track_id")["speed"].apply(lambda s: s.isna().sum()).tolist() == [1] * 5
    assert sorted(tracks.groupby("track_id")["mean_speed"].first().round(1)) == sorted(
        np.round(line_speed, 1)
    )
    assert np.allclose(tracks["straightness"], 1.0, atol=0.03)


def test_locate_spots_columns_single_frame_and_physical():
    positions, _ = straight_lines(1)
    frame = render_spots(positions, (1, 64, 80))[0]
    spots = locate_spots(frame)  # a single 2D frame is t = 0
    assert list(spots.columns[:3]) == ["t", "y", "x"]
    assert {"mass", "size", "ecc", "signal", "raw_mass"} <= set(spots.columns)
    assert len(spots) == 5 and (spots["t"] == 0).all()
    assert spots["t"].dtype == np.int64
    spots = locate_spots(frame[np.newaxis], axes="tyx", spacing=(2.0, 0.5, 0.25))
    np.testing.assert_allclose(spots["y_physical"], spots["y"] * 0.5)
    np.testing.assert_allclose(spots["x_physical"], spots["x"] * 0.25)


def test_auto_minmass_rejects_noise_keeps_spots():
    positions, _ = straight_lines(3)
    movie = render_spots(positions, (3, 64, 80), noise=8.0, amplitude=150.0)
    auto = locate_spots(movie, axes="tyx")
    assert len(auto) == 15  # the 5 spots in each frame, no noise "spots"
    everything = locate_spots(movie, axes="tyx", minmass=0.0)
    assert len(everything) > 3 * len(auto)  # noise maxima that the automatic threshold removed
    assert auto.attrs["minmass"] > 0


def test_locate_spots_3d_anisotropic():
    truth = [[(4.0, 12.0 + t, 10.0 + 1.5 * t), (5.0, 20.0, 24.0 - t)] for t in range(3)]
    positions = dict(enumerate(truth))
    # spots elongated along z as in a confocal stack: render on a fine grid then subsample z
    movie = render_spots(positions, (3, 9, 32, 36), sigma=1.3)
    tracks = track_spots(movie, axes="tzyx", spacing=(1.0, 0.9, 0.3, 0.3), diameter=7)
    assert list(tracks.columns[:5]) == ["track_id", "t", "z", "y", "x"]
    assert tracks["track_id"].nunique() == 2 and len(tracks) == 6
    np.testing.assert_allclose(tracks["z_physical"], tracks["z"] * 0.9)
    np.testing.assert_allclose(tracks["t_physical"], tracks["t"] * 1.0)


def test_lazy_dask_movie_gives_same_result():
    import dask.array as da

    positions, _ = straight_lines(4)
    movie = render_spots(positions, (4, 64, 80))
    lazy = da.from_array(movie, chunks=(1, 32, 80))
    pd.testing.assert_frame_equal(track_spots(lazy, axes="tyx"), track_spots(movie, axes="tyx"))
    labels = disc_movie(_three_discs(4), (4, 72, 72))
    pd.testing.assert_frame_equal(
        track_labels(da.from_array(labels, chunks=(1, 72, 72))), track_labels(labels)
    )


def test_link_spots_physical_units_from_runner_context():
    spots = spots_table([(t, 10.0 + 3.0 * t, 20.0 + 4.0 * t) for t in range(4)])
    tracks = link_spots(spots, axes="tyx", spacing=(2.0, 0.5, 0.5))
    assert tracks["speed"].iloc[1:].tolist() == pytest.approx([5.0] * 3)  # pixels / frame
    assert tracks["speed_physical"].iloc[1:].tolist() == pytest.approx([1.25] * 3)  # um / s
    assert tracks["t_physical"].tolist() == [0.0, 2.0, 4.0, 6.0]
    assert tracks["displacement_physical"].iloc[0] == pytest.approx(7.5)
    assert tracks.attrs["spacing"] == {"y": 0.5, "x": 0.5} and tracks.attrs["frame_interval"] == 2.0
    plain = link_spots(spots)
    assert "speed_physical" not in plain.columns and plain.attrs["spacing"] is None


def test_memory_bridges_a_one_frame_gap():
    pts = [(t, 20.0 + 1.0 * t, 30.0 + 0.5 * t) for t in range(8) if t != 4]
    pts += [(t, 60.0, 10.0 + t) for t in range(8)]
    spots = spots_table(pts)
    without = link_spots(spots, search_range=4.0, memory=0)
    assert without["track_id"].nunique() == 3  # the gap splits the first particle
    bridged = link_spots(spots, search_range=4.0, memory=1)
    assert bridged["track_id"].nunique() == 2
    first = bridged[bridged["track_id"] == 1]
    assert first["t"].tolist() == [0, 1, 2, 3, 5, 6, 7]
    # the step over the gap is two frames: speed is per frame
    over_gap = first.set_index("t").loc[5, "speed"]
    assert over_gap == pytest.approx(np.hypot(2.0, 1.0) / 2)


def test_min_length_drops_short_tracks():
    pts = [(t, 10.0 + t, 10.0) for t in range(6)] + [(2, 50.0, 50.0), (3, 50.5, 50.0)]
    tracks = link_spots(spots_table(pts), search_range=3.0, min_length=3)
    assert tracks["track_id"].unique().tolist() == [1]
    assert len(tracks) == 6


def test_oversize_subnet_gives_actionable_error():
    rng = np.random.default_rng(0)
    pts = [(t, *rng.uniform(0, 6, 2)) for t in range(3) for _ in range(40)]
    spots = spots_table(pts)
    with pytest.raises(TrackingError) as info:
        link_spots(spots, search_range=20.0)
    msg = str(info.value)
    assert isinstance(info.value, ValueError)
    assert "search_range" in msg and "adaptive_stop" in msg and "track.link_spots" in msg


def test_adaptive_search_resolves_crowded_frames():
    rng = np.random.default_rng(1)
    base = rng.uniform(0, 30, (60, 2))
    pts = [(t, *(p + 0.2 * t)) for t in range(3) for p in base]
    spots = spots_table(pts)
    with pytest.raises(TrackingError):
        link_spots(spots, search_range=15.0)
    tracks = link_spots(spots, search_range=15.0, adaptive_stop=0.5)
    assert tracks["track_id"].nunique() == 60
    assert (tracks.groupby("track_id").size() == 3).all()


def test_tracks_columns_dtypes_and_napari_layer():
    positions, _ = straight_lines(6)
    tracks = track_spots(render_spots(positions, (6, 64, 80)), axes="tyx")
    assert list(tracks.columns[:4]) == ["track_id", "t", "y", "x"]
    assert tracks["track_id"].dtype == np.int64 and tracks["t"].dtype == np.int64
    assert tracks["y"].dtype == np.float64 and tracks["x"].dtype == np.float64
    assert tracks["track_id"].min() == 1
    assert tracks.equals(tracks.sort_values(["track_id", "t"]).reset_index(drop=True))
    from napari.layers import Tracks as TracksLayer

    layer = TracksLayer(tracks[["track_id", "t", "y", "x"]].to_numpy(), features=tracks.iloc[:, 4:])
    assert layer.data.shape == (len(tracks), 4)
    assert "speed" in layer.features.columns


def test_deterministic_and_independent_of_row_order():
    positions, _ = straight_lines(6)
    movie = render_spots(positions, (6, 64, 80))
    a = track_spots(movie, axes="tyx")
    b = track_spots(movie, axes="tyx")
    pd.testing.assert_frame_equal(a, b)
    spots = locate_spots(movie, axes="tyx")
    shuffled = spots.sample(frac=1.0, random_state=4)
    pd.testing.assert_frame_equal(link_spots(spots), link_spots(shuffled))


def test_empty_inputs_give_empty_tables_with_columns():
    empty_spots = locate_spots(np.zeros((3, 32, 32), np.uint16), axes="tyx")
    assert len(empty_spots) == 0 and list(empty_spots.columns[:3]) == ["t", "y", "x"]
    tracks = link_spots(empty_spots)
    assert len(tracks) == 0
    assert list(tracks.columns[:4]) == ["track_id", "t", "y", "x"]
    assert {"speed", "mass", "track_length"} <= set(tracks.columns)
    assert tracks["track_id"].dtype == np.int64
    assert list(track_spots(np.zeros((2, 32, 32)), axes="tyx").columns[:4]) == [
        "track_id",
        "t",
        "y",
        "x",
    ]
    lab_tracks = track_labels(np.zeros((3, 16, 16), np.int32))
    assert len(lab_tracks) == 0 and {"label", "area"} <= set(lab_tracks.columns)


@pytest.mark.parametrize(
    ("call", "words"),
    [
        (lambda: locate_spots(np.zeros((2, 3, 16, 16)), axes="tcyx"), "select a channel"),
        (lambda: locate_spots(np.zeros((2, 16, 16)), diameter=6), "diameter"),
        (lambda: locate_spots(np.full((2, 16, 16), np.nan)), "NaN"),
        (lambda: locate_spots(np.zeros((0, 16, 16))), "empty"),
        (lambda: locate_spots(np.zeros((2, 16, 16)), spacing=(1.0, -1.0, 1.0)), "spacing"),
        (lambda: link_spots(pd.DataFrame({"t": [0], "y": [1.0]})), "x"),
        (lambda: link_spots(spots_table([(0, 1.0, 1.0)]), search_range=0.0), "search_range"),
        (lambda: link_spots(spots_table([(0, 1.0, 1.0)]), memory=-1), "memory"),
        (lambda: track_labels(np.zeros((2, 8, 8), float)), "integer"),
        (lambda: track_labels(np.zeros((2, 8, 8), np.int32), min_overlap=0.0), "min_overlap"),
    ],
)
def test_bad_input_named_in_error(call, words):
    with pytest.raises(ValueError, match=words):
        call()


def test_ops_are_registered_with_context_params():
    for name in (
        "track.locate_spots",
        "track.link_spots",
        "track.track_spots",
        "track.track_labels",
    ):
        spec = get_op(name)
        assert spec.spatial is False
        assert set(spec.context) == {"axes", "spacing"}
    assert get_op("track.track_spots").output == "tracks"
    assert get_op("track.locate_spots").output == "spots"
    assert get_op("track.link_spots").inputs[0].kind == "spots"
    assert get_op("track.track_labels").param("method").choices == ("overlap", "centroid")


# --- ground truth from the shared synthetic sample ---------------------------------------------


def test_track_spots_defaults_recover_synthetic_ground_truth():
    synth = pytest.importorskip("napari_fbias.io.synth")
    movie, gt = synth.make_spots_timelapse(shape=(30, 256, 256), n_spots=40, seed=1)
    tracks = track_spots(movie, axes="tyx")
    matched = match_frames(tracks, gt, tol=2.0)
    assert len(matched) / len(gt) >= 0.9  # recall
    assert len(matched) / len(tracks) >= 0.95  # precision: (almost) no noise "spots"
    track_of = tracks["track_id"]
    good = total = false_merges = 0
    for _, g in gt.sort_values(["track_id", "t"]).groupby("track_id"):
        rows = g.index.tolist()
        for a, b in zip(rows[:-1], rows[1:], strict=False):
            total += 1
            good += a in matched and b in matched and track_of[matched[a]] == track_of[matched[b]]
    gt_track = {d: gt.loc[g, "track_id"] for g, d in matched.items()}
    for _, g in tracks.groupby("track_id"):
        rows = [r for r in g.index if r in gt_track]
        false_merges += sum(
            gt_track[a] != gt_track[b] for a, b in zip(rows[:-1], rows[1:], strict=False)
        )
    assert good / total >= 0.85
    assert false_merges <= 0.02 * total


def test_track_spots_on_shipped_sample_as_the_runner_calls_it():
    samples = pytest.importorskip("napari_fbias.io.samples")
    image, gt = samples.load_spots_timelapse()
    axes = "".join(image.axes)
    tracks = track_spots(image.data, axes=axes, spacing=image.scale)  # lazy dask movie
    assert len(match_frames(tracks, gt, tol=2.0)) / len(gt) >= 0.9
    dt, dy, _ = image.scale
    moving = tracks["speed"].notna()
    np.testing.assert_allclose(
        tracks.loc[moving, "speed_physical"], tracks.loc[moving, "speed"] * dy / dt, rtol=1e-12
    )
    np.testing.assert_allclose(tracks["t_physical"], tracks["t"] * dt)


# --- label-based tracking ----------------------------------------------------------------------


def _three_discs(n_frames: int = 8) -> list[list[tuple[float, float]]]:
    return [
        [(12.0 + 2 * t, 12.0 + t) for t in range(n_frames)],
        [(40.0, 10.0 + 2.5 * t) for t in range(n_frames)],
        [(60.0 - 1.5 * t, 50.0) for t in range(n_frames)],
    ]


@pytest.mark.parametrize("method", ["overlap", "centroid"])
def test_track_labels_moving_discs(method):
    centres = _three_discs()
    movie = disc_movie(centres, (8, 72, 72))
    tracks = track_labels(movie, method=method, axes="tyx")
    assert tracks["track_id"].nunique() == 3
    assert (tracks.groupby("track_id").size() == 8).all()
    for _, g in tracks.groupby("track_id"):
        k = int(
            np.argmin([np.hypot(c[0][0] - g.y.iloc[0], c[0][1] - g.x.iloc[0]) for c in centres])
        )
        np.testing.assert_allclose(g[["y", "x"]].to_numpy(), np.array(centres[k]), atol=0.3)
        # the original label per row is the one at the centroid in that frame
        for row in g.itertuples():
            assert movie[row.t, round(row.y), round(row.x)] == row.label
    assert {"label", "area"} <= set(tracks.columns)
    relabelled = relabel_by_track(movie, tracks)
    assert relabelled.dtype == np.int32
    for tid, g in tracks.groupby("track_id"):
        for row in g.itertuples():
            assert relabelled[row.t, round(row.y), round(row.x)] == tid
    assert set(np.unique(relabelled)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(relabelled > 0, movie > 0)


def test_track_labels_overlap_memory_and_3d():
    centres = _three_discs(6)
    centres[1][3] = None  # missing in one frame
    movie2d = disc_movie(centres, (6, 72, 72))
    assert track_labels(movie2d, memory=0)["track_id"].nunique() == 4
    bridged = track_labels(movie2d, memory=1)
    assert bridged["track_id"].nunique() == 3
    # 3D: the same discs as cylinders through 4 z planes
    movie3d = np.repeat(disc_movie(_three_discs(4), (4, 72, 72))[:, np.newaxis], 4, axis=1)
    tracks3d = track_labels(movie3d, axes="tzyx", spacing=(1.0, 2.0, 0.5, 0.5))
    assert list(tracks3d.columns[:5]) == ["track_id", "t", "z", "y", "x"]
    assert tracks3d["track_id"].nunique() == 3
    np.testing.assert_allclose(tracks3d["z"], 1.5)
    np.testing.assert_allclose(tracks3d["area_physical"], tracks3d["area"] * 0.5)


def test_track_labels_overlap_prefers_best_total_overlap():
    # one object splits in two: the larger overlap continues the track, the other starts one
    frame0 = np.zeros((20, 30), np.int32)
    frame0[5:15, 5:25] = 1
    frame1 = np.zeros_like(frame0)
    frame1[5:15, 5:17] = 7
    frame1[5:15, 19:25] = 3
    tracks = track_labels(np.stack([frame0, frame1]), min_overlap=0.2)
    first = tracks[tracks["track_id"] == 1]
    assert first["label"].tolist() == [1, 7]
    assert tracks["track_id"].nunique() == 2


# --- track features, MSD --------------------------------------------------------------------


def test_track_features_by_hand():
    tracks = pd.DataFrame(
        {
            "track_id": [1, 1, 1, 2, 2],
            "t": [0, 1, 3, 2, 3],
            "y": [0.0, 3.0, 3.0, 10.0, 10.0],
            "x": [0.0, 4.0, 8.0, 10.0, 10.0],
        }
    )
    f = track_features(tracks, spacing=(0.5, 0.5), frame_interval=2.0).set_index("track_id")
    assert f.loc[1, "n_points"] == 3 and f.loc[1, "duration"] == 3
    assert f.loc[1, "path_length"] == pytest.approx(9.0)
    assert f.loc[1, "displacement"] == pytest.approx(np.hypot(3, 8))
    assert f.loc[1, "straightness"] == pytest.approx(np.hypot(3, 8) / 9.0)
    assert f.loc[1, "mean_speed"] == pytest.approx(9.0 / (3 * 2.0))
    assert f.loc[1, "max_speed"] == pytest.approx(5.0 / 2.0)
    assert f.loc[1, "path_length_physical"] == pytest.approx(4.5)
    assert f.loc[1, "mean_speed_physical"] == pytest.approx(4.5 / 6.0)
    assert np.isnan(f.loc[2, "straightness"])  # a track that does not move
    with pytest.raises(ValueError, match="spacing"):
        track_features(tracks, spacing=(1.0,))


def test_msd_per_track_matches_trackpy_and_pools_pairs():
    import trackpy

    rng = np.random.default_rng(2)
    walks = np.cumsum(rng.normal(0, 1.0, (20, 12, 2)), axis=1)
    rows = [(p + 1, t, *walks[p, t]) for p in range(20) for t in range(12) if (p, t) != (3, 5)]
    tracks = pd.DataFrame(rows, columns=["track_id", "t", "y", "x"])
    per = msd(tracks, max_lag=5, frame_interval=0.5, per_track=True)
    assert list(per.columns) == ["track_id", "lag", "lag_time", "msd", "n_pairs"]
    theirs = trackpy.imsd(
        tracks.rename(columns={"track_id": "particle", "t": "frame"}),
        mpp=1.0,
        fps=2.0,
        max_lagtime=5,
    )
    ours = per.pivot(index="lag_time", columns="track_id", values="msd")
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours.index.to_numpy(), theirs.index.to_numpy())
    assert per.loc[(per.track_id == 4) & (per.lag == 1), "n_pairs"].item() == 9  # gap at t=5
    # ensemble: the mean over every pair, computed the slow way
    ens = msd(tracks, max_lag=3, spacing=(2.0, 2.0))
    pos = {(r.track_id, r.t): np.array([r.y, r.x]) * 2.0 for r in tracks.itertuples()}
    for lag in (1, 2, 3):
        sq = [
            np.sum((pos[(k, t + lag)] - p) ** 2) for (k, t), p in pos.items() if (k, t + lag) in pos
        ]
        row = ens[ens["lag"] == lag].iloc[0]
        assert row["msd"] == pytest.approx(np.mean(sq)) and row["n_pairs"] == len(sq)


def _traced(func):
    import tracemalloc

    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        out = func()
        return out, tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_tables_are_built_without_whole_copies():
    """The spots and tracks tables are assembled column by column: no concatenated,
    reindexed, sorted or consolidated copy of the whole table (each was one more table)."""
    from napari_fbias.ops.track import _spots_table
    from napari_fbias.ops.track_features import build_tracks

    rng = np.random.default_rng(0)
    features = ["mass", "size", "ecc", "signal", "raw_mass", "ep"]
    found = []
    for t in range(3):
        n = 40_000
        f = pd.DataFrame({c: rng.uniform(0, 100, n) for c in ["y", "x", *features]})
        f.insert(0, "t", np.int64(t))
        found.append(f.sample(frac=1.0, random_state=t))  # unsorted, as blocks come
    spots, peak = _traced(lambda: _spots_table(found, ["y", "x"], features, None, None, 10.0))
    size = spots.memory_usage(index=False).sum()
    assert peak < 1.5 * size, peak / size  # was 3 tables: concatenated, reindexed, sorted
    expected = pd.concat(found, ignore_index=True)
    expected = expected.sort_values(["t", "y", "x"], kind="stable", ignore_index=True)
    pd.testing.assert_frame_equal(spots, expected)

    particle = np.arange(len(spots)) % 50_000
    tracks, peak = _traced(lambda: build_tracks(spots, particle, extra=features))
    size = tracks.memory_usage(index=False).sum()
    assert peak < 1.75 * size, peak / size  # was 2.5: the columns, then one consolidated copy
    assert len(tracks) == len(spots) and tracks["track_id"].nunique() == 50_000


def test_a_spots_table_of_its_own_is_emptied_as_the_tracks_are_built(monkeypatch):
    """``track_spots`` (in memory and chunk-wise) links a spots table it made itself: its
    columns are taken out as they are copied, so the two tables are not held whole at once."""
    import tracemalloc

    from napari_fbias.ops import link_tiles
    from napari_fbias.ops.track import _link_spots

    monkeypatch.setattr(link_tiles, "TILE_DETECTIONS", 2000)  # trackpy's share stays small
    rng = np.random.default_rng(1)
    n, frames = 30_000, 3
    start = rng.uniform(0, 4000, (n, 2))
    parts = []
    for t in range(frames):
        p = start + rng.normal(0, 0.5, start.shape) * t
        extra = {c: rng.uniform(1, 100, n) for c in ["mass", "size", "ecc", "signal", "raw_mass"]}
        parts.append(pd.DataFrame({"t": np.full(n, t), "y": p[:, 0], "x": p[:, 1], **extra}))
    spots = pd.concat(parts, ignore_index=True)
    expected = _link_spots(spots.copy(), search_range=3.0, memory=1)

    def run(consume: bool):
        """Peak above the table, traced from before the table is made (frees count)."""
        tracemalloc.start()
        try:
            own = pd.DataFrame({c: spots[c].to_numpy().copy() for c in spots}, copy=False)
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            out = _link_spots(own, search_range=3.0, memory=1, consume=consume)
            return out, own, tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()

    kept, kept_table, peak_kept = run(False)
    got, own, peak_own = run(True)
    pd.testing.assert_frame_equal(got, expected)
    pd.testing.assert_frame_equal(kept, expected)
    assert len(own.columns) == 0 and len(kept_table.columns) == len(spots.columns)
    size = spots.memory_usage(index=False).sum()
    assert peak_own < peak_kept - 0.4 * size, (peak_kept / size, peak_own / size)
