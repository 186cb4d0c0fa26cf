"""``track.locate_spots`` / ``track.track_spots`` chunk-wise against in memory.

Through the pipeline runner (``chunked=True``) with small spatial chunks
whose seams cut through spots: the bundled spots sample, and synthetic
movies with spots exactly on block borders and corners. The spots tables
must hold the same spots (integer images: positions within 1e-9 px, mass,
size, ecc, signal, raw_mass exactly, ep to 1e-9 relative; float images: the
tolerances measured in :mod:`napari_fbias.ops.spot_chunks`) and the tracks
the same track ids.
"""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest

from napari_fbias.io.samples import sample_path
from napari_fbias.ops.spot_chunks import halo_for
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline
from napari_fbias.pipeline.values import Value


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def step(op: str, params: dict, axes: str = "tyx") -> Pipeline:
    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "spots",
            "inputs": {"image": {"kind": "image", "axes": axes}},
            "steps": [{"id": "s", "op": op, "inputs": {"image": "image"}, "params": params}],
            "outputs": {"out": {"from": "s"}},
        }
    )


def both(p: Pipeline, data, chunks: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    expected = p.run(data)["out"]
    res = run_pipeline(p, data, chunked=True, chunks=chunks, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    return expected, res["out"]


def assert_same_spots(got: pd.DataFrame, expected: pd.DataFrame, floats: bool = False) -> None:
    """Same spots; ``floats``: the tolerances measured on float images (spot_chunks docstring)."""
    assert list(got.columns) == list(expected.columns)
    assert len(got) == len(expected)
    pos = [c for c in ("z", "y", "x") if c in expected.columns]
    for c in expected.columns:
        a, b = got[c].to_numpy(), expected[c].to_numpy()
        if c in pos or c.endswith("_physical"):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 if floats else 1e-9, err_msg=c)
        elif c.startswith("ep"):
            np.testing.assert_allclose(a, b, rtol=1e-6 if floats else 1e-9, err_msg=c)
        elif floats and c != "t":
            np.testing.assert_allclose(a, b, rtol=1e-2, err_msg=c)  # 1 of 255 levels
        else:
            np.testing.assert_array_equal(a, b, err_msg=c)
    assert got.attrs.get("minmass") == expected.attrs.get("minmass")


def near_seams(spots: pd.DataFrame, chunk: int, within: float) -> int:
    """Spots whose centre lies within ``within`` px of a chunk border along y or x."""
    d = [np.abs(spots[c].to_numpy() - chunk * np.round(spots[c].to_numpy() / chunk)) for c in "yx"]
    return int((np.minimum(*d) <= within).sum())


def gaussian_spots(shape, centres, dtype="uint16", amp=400.0, sigma=1.5, seed=0) -> np.ndarray:
    """Gaussian spots drifting 0.3 px per frame over a noisy background."""
    rng = np.random.default_rng(seed)
    grids = np.indices(shape[1:], dtype=float)
    out = np.empty(shape)
    for t in range(shape[0]):
        img = np.full(shape[1:], 100.0)
        for c in centres:
            r2 = sum((g - ci - 0.3 * t) ** 2 for g, ci in zip(grids, c, strict=True))
            img += amp * np.exp(-r2 / (2 * sigma**2))
        out[t] = img + rng.normal(0, 5, shape[1:])
    if np.dtype(dtype).kind in "iu":
        out = np.clip(np.rint(out), 0, None)
    return out.astype(dtype)


C = 32  # chunk side of the synthetic movies
ON_BORDERS = [(C, C), (C, 2 * C), (2 * C - 0.5, C + 10), (20, 3 * C - 0.5), (3 * C, 3 * C)]
INSIDE = [(50, 50), (C + 7, 75), (100, 20)]


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    import tifffile

    path = sample_path("spots_timelapse")  # the bundled sample_data/spots_timelapse.ome.tif
    return tifffile.imread(path)[:5]


def test_locate_on_the_sample_equals_in_memory(sample):
    p = step("track.locate_spots", {"diameter": 7, "minmass": 60.0})
    expected, got = both(p, sample, chunks=48)
    assert_same_spots(got, expected)
    assert len(expected) > 50 and near_seams(expected, 48, 3.0) >= 5  # seams cut spots


def test_track_spots_on_the_sample_gives_the_same_tracks(sample):
    p = step("track.track_spots", {"diameter": 7, "minmass": 60.0, "search_range": 6.0})
    expected, got = both(p, sample, chunks=48)
    pd.testing.assert_series_equal(got["track_id"], expected["track_id"])
    pd.testing.assert_series_equal(got["t"], expected["t"])
    # positions differ by rounding (1e-14 px), and so do speeds and features
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    assert expected["track_id"].nunique() < len(expected)  # spots were linked


def test_automatic_diameter_and_minmass_are_resolved_once_for_the_movie(sample):
    movie = sample[:3, :128, :128]
    p = step("track.locate_spots", {"diameter": None, "minmass": None})
    expected, got = both(p, movie, chunks=64)
    assert_same_spots(got, expected)
    assert expected.attrs["minmass"] > 0


@pytest.mark.parametrize("dtype", ["uint16", "uint8", "float32", "float64", "int32"])
def test_spots_exactly_on_block_borders(dtype):
    movie = gaussian_spots((3, 4 * C, 4 * C), ON_BORDERS + INSIDE, dtype)
    p = step("track.locate_spots", {"diameter": 7, "minmass": 50.0})
    expected, got = both(p, movie, chunks=C)
    assert_same_spots(got, expected, floats=movie.dtype.kind == "f")
    assert near_seams(expected, C, 1.0) >= len(ON_BORDERS)


def test_border_spots_tracked_through_seams():
    movie = gaussian_spots((4, 4 * C, 4 * C), ON_BORDERS + INSIDE)
    p = step("track.track_spots", {"diameter": 7, "minmass": 50.0, "memory": 0})
    expected, got = both(p, movie, chunks=C)
    pd.testing.assert_series_equal(got["track_id"], expected["track_id"])
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=1e-9)
    assert expected.groupby("track_id").size().max() == 4  # whole tracks across seams


def test_inverted_float_frames_with_holes_and_other_settings():
    movie = gaussian_spots((2, 3 * C, 3 * C), ON_BORDERS[:3] + INSIDE[:2], "float32")
    movie = movie.max() - movie
    movie[0, 5:9, 60:70] = np.nan
    params = {"diameter": 9, "minmass": 50.0, "invert": True, "separation": 6.0}
    params.update({"percentile": 80.0, "noise_size": 1.5, "max_size": 3.0})
    expected, got = both(step("track.locate_spots", params), movie, chunks=C)
    assert_same_spots(got, expected, floats=True)
    assert len(expected) >= 5


def test_anisotropic_volume_with_spacing():
    movie = gaussian_spots((2, 12, 64, 64), [(6, 32, 32), (6, 20, 45), (3, 40, 16)], sigma=2.0)
    value = Value(movie, "image", "tzyx", (1.0, 2.0, 0.5, 0.5))
    p = step("track.locate_spots", {"diameter": 9, "minmass": 200.0}, axes="tzyx")
    expected = p.run(value)["out"]
    res = run_pipeline(p, value, chunked=True, chunks=16, checksum=False)
    assert res.record["steps"][0]["mode"] == "chunked"
    assert {"ep_z", "z_physical", "t_physical"} <= set(expected.columns)
    assert_same_spots(res["out"], expected)


def test_halo_grows_with_the_spot_settings():
    small = halo_for({"diameter": 5, "percentile": 64.0, "noise_size": 1.0}, 2)
    large = halo_for({"diameter": 15, "percentile": 64.0, "noise_size": 3.0}, 2)
    wide = halo_for({"diameter": 5, "percentile": 64.0, "noise_size": 1.0, "separation": 20}, 2)
    assert small < large and small < wide
