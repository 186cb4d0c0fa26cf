"""The seeded generators: deterministic, realistic, with consistent ground truth."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

from napari_fbias.io import synth

CAMERA_OFFSET = 100


@pytest.fixture(scope="module")
def nuclei():
    return synth.make_nuclei_2d()


@pytest.fixture(scope="module")
def spots():
    return synth.make_spots_timelapse()


@pytest.fixture(scope="module")
def cells():
    return synth.make_cells_3d()


# --- determinism ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("func", "kwargs"),
    [
        (synth.make_nuclei_2d, {"shape": (128, 160), "n_nuclei": 8}),
        (synth.make_spots_timelapse, {"shape": (6, 64, 80), "n_spots": 6}),
        (synth.make_cells_3d, {"shape": (14, 64, 72), "n_cells": 4}),
    ],
)
def test_same_seed_same_bytes_other_seed_other_image(func, kwargs):
    a_img, a_gt = func(**kwargs, seed=5)
    b_img, b_gt = func(**kwargs, seed=5)
    c_img, _ = func(**kwargs, seed=6)
    assert a_img.tobytes() == b_img.tobytes()
    if isinstance(a_gt, pd.DataFrame):
        pd.testing.assert_frame_equal(a_gt, b_gt)
    else:
        assert a_gt.tobytes() == b_gt.tobytes()
    assert a_img.tobytes() != c_img.tobytes()


def test_default_sizes_generate_fast():
    for func in (synth.make_nuclei_2d, synth.make_spots_timelapse, synth.make_cells_3d):
        start = time.perf_counter()
        func()
        # target is < 2 s; generous bound for a busy shared test machine
        assert time.perf_counter() - start < 6.0, func.__name__


# --- 2D nuclei -----------------------------------------------------------------------------
def test_nuclei_image_and_labels_basic(nuclei):
    image, labels = nuclei
    assert image.shape == labels.shape == (512, 512)
    assert image.dtype == np.uint16 and labels.dtype == np.uint16
    ids = np.unique(labels)
    np.testing.assert_array_equal(ids, np.arange(61))  # background + 1..60
    # every nucleus is one connected region, entirely inside the image
    for i, sl in enumerate(ndi.find_objects(labels), start=1):
        _, n_parts = ndi.label(labels[sl] == i)
        assert n_parts == 1, f"label {i} is split"
    border = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    assert not border.any()


def test_nuclei_count_follows_request():
    _, labels = synth.make_nuclei_2d((160, 128), n_nuclei=7, seed=3)
    assert len(np.unique(labels)) - 1 == 7


def test_some_nuclei_touch_and_labels_separate_them(nuclei):
    _, labels = nuclei
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1], labels[1:])):
        touching = (a != b) & (a > 0) & (b > 0)
        pairs |= {tuple(sorted(p)) for p in zip(a[touching], b[touching], strict=True)}
    assert len(pairs) >= 4
    # but most are free: connected components of the foreground merge only the touching ones
    _, n_blobs = ndi.label(labels > 0)
    assert 60 - len(pairs) <= n_blobs < 60


def test_nuclei_vary_in_size_and_brightness(nuclei):
    image, labels = nuclei
    idx = np.arange(1, 61)
    areas = ndi.sum_labels(np.ones_like(labels), labels, idx)
    means = ndi.mean(image.astype(float) - CAMERA_OFFSET, labels, idx)
    assert areas.std() / areas.mean() > 0.25
    assert means.std() / means.mean() > 0.15
    assert areas.min() >= 20


def test_nuclei_are_bright_textured_on_uneven_noisy_background(nuclei):
    image, labels = nuclei
    img = image.astype(float)
    fg = labels > 0
    bg = ~ndi.binary_dilation(fg, iterations=8)
    assert np.median(img[fg]) - CAMERA_OFFSET > 4 * (np.median(img[bg]) - CAMERA_OFFSET)
    # uneven background: corner means of background pixels differ clearly
    q = 128
    corners = []
    for ys in (slice(0, q), slice(-q, None)):
        for xs in (slice(0, q), slice(-q, None)):
            corners.append(img[ys, xs][bg[ys, xs]].mean() - CAMERA_OFFSET)
    assert max(corners) > 1.3 * min(corners)
    # noise: pixel-to-pixel differences in the background, larger in the nuclei (shot noise)
    high_pass = img - ndi.uniform_filter(img, 3)
    bg_noise = high_pass[bg].std()
    assert bg_noise > 3.0
    assert high_pass[ndi.binary_erosion(fg, iterations=3)].std() > 2 * bg_noise
    # blur: edges are soft, no pixel jumps from background to nucleus level
    assert np.abs(np.diff(ndi.gaussian_filter(img, 0.5), axis=1)).max() < 0.8 * img.max()
    # texture inside nuclei beyond noise (smoothed intensity still varies)
    smooth = ndi.gaussian_filter(img, 1.0)
    inner = ndi.binary_erosion(labels == 1, iterations=2)
    if inner.sum() > 30:
        assert smooth[inner].std() / (smooth[inner].mean() - CAMERA_OFFSET) > 0.05


def test_nuclei_bad_arguments_are_named():
    with pytest.raises(ValueError, match="shape"):
        synth.make_nuclei_2d((512,), 10)
    with pytest.raises(ValueError, match="n_nuclei"):
        synth.make_nuclei_2d((128, 128), 0)
    with pytest.raises(ValueError, match="500 nuclei .* cannot fit"):
        synth.make_nuclei_2d((64, 64), 500)
    with pytest.raises(ValueError, match="could not fit 4 nuclei"):
        synth.make_nuclei_2d((64, 64), 4, touching_fraction=0.0, radius_range=(12.0, 13.0))


# --- spots time-lapse ----------------------------------------------------------------------
def test_spots_movie_and_tracks_table(spots):
    movie, tracks = spots
    assert movie.shape == (30, 256, 256) and movie.dtype == np.uint16
    assert tuple(tracks.columns) == synth.TRACK_COLUMNS
    assert tracks["track_id"].dtype == np.int64 and tracks["t"].dtype == np.int64
    assert tracks["after_blink"].dtype == bool
    assert tracks["t"].between(0, 29).all()
    assert tracks["y"].between(0, 255).all() and tracks["x"].between(0, 255).all()
    ids = tracks["track_id"].unique()
    np.testing.assert_array_equal(np.sort(ids), np.arange(1, len(ids) + 1))
    assert tracks.equals(tracks.sort_values(["track_id", "t"]))
    for _, g in tracks.groupby("track_id"):
        dt = np.diff(g["t"].to_numpy())
        assert (dt >= 1).all() and (dt <= 3).all()  # blinks last 1-2 frames
        np.testing.assert_array_equal(g["after_blink"].to_numpy()[1:], dt > 1)
        assert not g["after_blink"].iloc[0]
    per_frame = tracks.groupby("t").size()
    assert per_frame.min() >= 15


def test_spots_enter_leave_and_blink(spots):
    _, tracks = spots
    span = tracks.groupby("track_id")["t"].agg(["min", "max"])
    assert (span["min"] > 0).sum() >= 3  # appear or drift in
    assert (span["max"] < 29).sum() >= 3  # vanish or drift out
    assert tracks["after_blink"].sum() >= 10


def test_spots_move_by_drift_and_diffusion(spots):
    _, tracks = spots
    steps = []
    for _, g in tracks.groupby("track_id"):
        consecutive = np.diff(g["t"].to_numpy()) == 1
        steps.append(np.diff(g[["y", "x"]].to_numpy(), axis=0)[consecutive])
    steps = np.concatenate(steps)
    drift = steps.mean(axis=0)
    assert np.hypot(*drift) > 0.3  # common motion
    assert steps.std(axis=0).min() > 0.3  # plus random motion
    assert np.hypot(steps[:, 0], steps[:, 1]).max() < 6.0  # linkable with search_range 6


def test_spots_are_drawn_where_the_tracks_say(spots):
    movie, tracks = spots
    hits = 0
    for row in tracks.itertuples():
        y, x = int(round(row.y)), int(round(row.x))
        y0, x0 = max(y - 3, 0), max(x - 3, 0)
        win = movie[row.t, y0 : y + 4, x0 : x + 4]
        py, px = np.unravel_index(np.argmax(win), win.shape)
        hits += np.hypot(py + y0 - row.y, px + x0 - row.x) <= 1.5
    assert hits / len(tracks) > 0.95


def test_spots_are_trackable_with_trackpy(spots):
    trackpy = pytest.importorskip("trackpy")
    movie, tracks = spots
    trackpy.quiet()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = trackpy.batch(movie, 7, minmass=200, processes=1)
        linked = trackpy.link(found, search_range=6, memory=2)
    inner = tracks[tracks["y"].between(5, 250) & tracks["x"].between(5, 250)]
    matched = {}
    for t, gt in inner.groupby("t"):
        det = linked[linked["frame"] == t]
        d = np.hypot(
            det["y"].to_numpy()[None] - gt["y"].to_numpy()[:, None],
            det["x"].to_numpy()[None] - gt["x"].to_numpy()[:, None],
        )
        for k, row in enumerate(gt.itertuples()):
            if d.shape[1] and d[k].min() < 2:
                matched[(row.track_id, t)] = int(det["particle"].to_numpy()[d[k].argmin()])
    assert len(matched) / len(inner) > 0.95
    # consecutive GT detections of a track mostly keep the same trackpy particle
    same = total = 0
    for (tid, t), particle in matched.items():
        nxt = [(tid, t + k) for k in (1, 2, 3) if (tid, t + k) in matched]
        if nxt:
            total += 1
            same += matched[nxt[0]] == particle
    assert same / total > 0.95
    # and false detections are rare
    assert len(found) < 1.05 * len(tracks)


def test_spots_bad_arguments_are_named():
    with pytest.raises(ValueError, match="at least 32 x 32"):
        synth.make_spots_timelapse((5, 16, 16))
    with pytest.raises(ValueError, match="spot_sigma"):
        synth.make_spots_timelapse(spot_sigma=0.0)
    with pytest.raises(ValueError, match="n_spots"):
        synth.make_spots_timelapse(n_spots=-1)


# --- 3D cells ------------------------------------------------------------------------------
def test_cells_3d_image_and_labels(cells):
    image, labels = cells
    assert image.shape == (2, 24, 128, 128) and image.dtype == np.uint16
    assert labels.shape == (24, 128, 128) and labels.dtype == np.uint16
    np.testing.assert_array_equal(np.unique(labels), np.arange(13))
    for face in (labels[0], labels[-1], labels[:, 0], labels[:, -1], labels[..., 0]):
        assert not face.any()
    assert not labels[..., -1].any()
    # anisotropic voxels: nuclei span fewer planes than pixels in y
    for sl in ndi.find_objects(labels):
        dz, dy = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
        assert dz < dy / 2


def test_cells_3d_channels_show_nuclei_and_membranes(cells):
    image, labels = cells
    dna, membrane = image.astype(float) - CAMERA_OFFSET
    nuc = labels > 0
    assert dna[nuc].mean() > 5 * dna[~ndi.binary_dilation(nuc, iterations=3)].mean()
    # the membrane channel is dim inside nuclei and bright on outlines
    assert np.percentile(membrane, 98) > 3 * membrane[nuc].mean()
    assert membrane[nuc].mean() > 5  # faint cytoplasm, not empty
    # noise in both channels
    for ch in (dna, membrane):
        assert (ch - ndi.uniform_filter(ch, (1, 3, 3))).std() > 2


def test_cells_3d_bad_arguments_are_named():
    with pytest.raises(ValueError, match="at least 64 x 64"):
        synth.make_cells_3d((24, 32, 32))
    with pytest.raises(ValueError, match="n_cells"):
        synth.make_cells_3d(n_cells=0)
