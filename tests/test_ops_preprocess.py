"""Preprocessing operations: known answers on small synthetic images."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from napari_fbias.ops import get_op
from napari_fbias.ops.preprocess import (
    gaussian,
    max_projection,
    median,
    normalize,
    select,
    subtract_background,
)

RNG = np.random.default_rng(42)


def noisy(shape=(64, 64), mean=100.0, std=10.0, seed=0):
    return np.random.default_rng(seed).normal(mean, std, shape).astype(np.float32)


# --- registry specs ----------------------------------------------------------------------


def test_specs_are_registered_as_intended():
    g = get_op("preprocess.gaussian")
    assert g.category == "preprocess" and g.spatial and g.output == "image"
    assert g.param_names == ("sigma",)
    assert (g.param("sigma").default, g.param("sigma").minimum) == (1.0, 0.0)
    assert g.context == ("spacing",)
    assert g.depth({"sigma": 2.0}) >= 8  # 4 sigma halo

    m = get_op("preprocess.median")
    assert m.param("radius").default == 2 and m.param("radius").minimum == 1
    assert m.depth({"radius": 3}) >= 3

    b = get_op("preprocess.subtract_background")
    assert b.param("method").choices == ("tophat", "rolling_ball")
    assert b.param("method").default == "tophat"
    assert b.param("radius").default == 25
    assert b.depth({"radius": 10}) >= 20

    n = get_op("preprocess.normalize")
    assert n.defaults() == {"low": 1.0, "high": 99.8, "clip": True}
    assert n.depth is None  # percentiles are global: never chunk-wise

    s = get_op("preprocess.select")
    assert not s.spatial and s.context == ("axes",)
    assert s.param("axis").choices == ("c", "z", "t")
    assert s.axes_out("tczyx", {"axis": "c", "index": 1}) == "tzyx"
    assert s.axes_out("tzyx", {"axis": "t", "index": 0}) == "zyx"

    p = get_op("preprocess.max_projection")
    assert not p.spatial and p.param("axis").default == "z"
    assert p.axes_out("czyx", {"axis": "z"}) == "cyx"


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("func", [gaussian, median, subtract_background, normalize])
def test_bad_inputs_give_clear_errors(func):
    with pytest.raises(ValueError, match=r"2D \(y, x\) or 3D \(z, y, x\).*got 4 dimension"):
        func(np.zeros((2, 3, 8, 8)))
    with pytest.raises(ValueError, match="empty"):
        func(np.zeros((0, 8)))
    with pytest.raises(ValueError, match="only NaN"):
        func(np.full((8, 8), np.nan))
    partial = np.ones((8, 8))
    partial[2, 3] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        func(partial)
    with pytest.raises(ValueError, match="numbers"):
        func(np.full((8, 8), "a"))


def test_bad_settings_name_the_setting():
    img = noisy()
    with pytest.raises(ValueError, match="sigma"):
        gaussian(img, sigma=-1)
    with pytest.raises(ValueError, match="radius"):
        median(img, radius=0)
    with pytest.raises(ValueError, match="radius"):
        subtract_background(img, radius=0)
    with pytest.raises(ValueError, match="method"):
        subtract_background(img, method="magic")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low < high"):
        normalize(img, low=50, high=50)


# --- smoothing ---------------------------------------------------------------------------


def test_gaussian_reduces_noise_and_keeps_mean():
    img = noisy(std=10.0)
    out = gaussian(img, sigma=2.0)
    assert out.shape == img.shape and out.dtype == np.float32
    assert out.std() < img.std() / 3
    assert abs(float(out.mean()) - float(img.mean())) < 0.5


def test_gaussian_dtypes_and_zero_sigma():
    u16 = (noisy() * 10).astype(np.uint16)
    assert gaussian(u16, sigma=1).dtype == np.float32
    f64 = noisy().astype(np.float64)
    assert gaussian(f64, sigma=1).dtype == np.float64
    same = gaussian(u16, sigma=0)
    np.testing.assert_array_equal(same, u16.astype(np.float32))


def test_gaussian_uses_spacing_for_anisotropy():
    vol = np.zeros((21, 21, 21), np.float32)
    vol[10, 10, 10] = 1000
    iso = gaussian(vol, sigma=2.0)
    aniso = gaussian(vol, sigma=2.0, spacing=(4.0, 1.0, 1.0))
    # isotropic: same spread along z and x; with a 4x coarser z: less spread along z
    assert iso[12, 10, 10] == pytest.approx(iso[10, 10, 12], rel=1e-5)
    assert aniso[11, 10, 10] < aniso[10, 10, 11] / 2


def test_median_removes_salt_keeps_edges():
    img = np.zeros((32, 32), np.uint16)
    img[:, 16:] = 200  # a step edge
    img[5, 5] = 60000  # salt
    out = median(img, radius=2)
    assert out.dtype == np.uint16
    assert out[5, 5] == 0
    np.testing.assert_array_equal(out[10:20, :], img[10:20, :])


def test_median_3d_uses_a_ball():
    vol = np.zeros((9, 9, 9), np.float32)
    vol[4, 4, 4] = 5.0
    assert median(vol, radius=1)[4, 4, 4] == 0
    assert median(vol, radius=1, spacing=(3.0, 1.0, 1.0)).max() == 0


# --- background ----------------------------------------------------------------------------


def ramp_with_square(dtype=np.uint16):
    yy, xx = np.mgrid[0:80, 0:80]
    ramp = 100 + 0.5 * xx + 0.25 * yy  # smooth background, 100..160
    img = ramp.astype(np.float64)
    img[30:36, 40:46] += 500  # a small object
    return img.astype(dtype), ramp


@pytest.mark.parametrize("method", ["tophat", "rolling_ball"])
def test_subtract_background_removes_a_ramp(method):
    img, _ = ramp_with_square()
    before = img.copy()
    out = subtract_background(img, method=method, radius=10)
    np.testing.assert_array_equal(img, before)  # input untouched
    assert out.dtype == np.uint16
    obj = np.zeros(img.shape, bool)
    obj[30:36, 40:46] = True
    # background near zero (was 100..160) away from the image border, where
    # a ball / disk cannot reach into the corner of a rising ramp; the object
    # keeps most of its height
    inner = np.zeros(img.shape, bool)
    inner[10:-10, 10:-10] = True
    assert np.abs(out[inner & ~obj].astype(float)).max() <= 3
    assert np.percentile(out[~obj], 90) <= 3
    assert out[obj].min() >= 450


def test_subtract_background_3d_is_plane_by_plane():
    img, _ = ramp_with_square()
    vol = np.stack([img, img // 2])
    out = subtract_background(vol, radius=10)
    assert out.shape == vol.shape
    np.testing.assert_array_equal(out[0], subtract_background(img, radius=10))
    np.testing.assert_array_equal(out[1], subtract_background(img // 2, radius=10))


# --- chunk-wise with the declared halo (no border padding, as the runner does) = whole image


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("preprocess.gaussian", {"sigma": 1.5}),
        ("preprocess.median", {"radius": 2}),
        ("preprocess.subtract_background", {"radius": 4}),
    ],
)
def test_declared_depth_makes_chunked_equal_whole(name, params):
    spec = get_op(name)
    img = (noisy((96, 96), std=30) + 200).astype(np.float32)
    img[40:50, 20:30] += 300
    whole = spec.func(img, **params)
    depth = spec.depth(params) if callable(spec.depth) else spec.depth
    chunked = da.from_array(img, chunks=32).map_overlap(
        lambda b: spec.func(b, **params), depth=depth, boundary="none", dtype=whole.dtype
    )
    np.testing.assert_allclose(chunked.compute(scheduler="synchronous"), whole, rtol=1e-5)


# --- normalisation -------------------------------------------------------------------------


def test_normalize_maps_percentiles_to_0_1():
    img = np.arange(1000, dtype=np.uint16).reshape(20, 50)
    out = normalize(img, low=10, high=90)
    assert out.dtype == np.float32
    assert out.min() == 0 and out.max() == 1
    lo, hi = np.percentile(img, (10, 90))
    assert out[10, 0] == pytest.approx((img[10, 0] - lo) / (hi - lo), abs=1e-6)
    raw = normalize(img, low=10, high=90, clip=False)
    assert raw.min() < 0 and raw.max() > 1
    np.testing.assert_allclose(raw[(raw >= 0) & (raw <= 1)], out[(raw >= 0) & (raw <= 1)])


def test_normalize_flat_image_gives_zeros():
    out = normalize(np.full((8, 8), 7, np.uint8))
    assert out.dtype == np.float32 and not out.any()


# --- selection and projection --------------------------------------------------------------


def test_select_channel_plane_time():
    data = RNG.integers(0, 1000, (3, 2, 4, 5, 6)).astype(np.uint16)  # tczyx
    ch = select(data, axis="c", index=1, axes="tczyx")
    assert ch.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(ch, data[:, 1])
    assert np.shares_memory(ch, data)  # a view, no copy
    z = select(data, axis="z", index=3, axes="tczyx")
    np.testing.assert_array_equal(z, data[:, :, 3])
    t = select(data, axis="t", index=2, axes="tczyx")
    np.testing.assert_array_equal(t, data[2])


def test_select_works_lazily_on_dask():
    data = da.from_array(RNG.random((2, 8, 8)), chunks=(1, 8, 8))
    out = select(data, axis="c", index=1, axes="cyx")
    assert isinstance(out, da.Array)
    np.testing.assert_array_equal(out.compute(), data[1].compute())


def test_select_errors():
    data = np.zeros((2, 8, 8))
    with pytest.raises(ValueError, match="out of range.*'c'.*2 entries"):
        select(data, axis="c", index=2, axes="cyx")
    with pytest.raises(ValueError, match="no 'z' axis"):
        select(data, axis="z", index=0, axes="cyx")
    with pytest.raises(ValueError, match="needs the axes"):
        select(data, axis="c", index=0)
    with pytest.raises(ValueError, match="do not match"):
        select(data, axis="c", index=0, axes="tcyx")


def test_max_projection():
    data = RNG.integers(0, 1000, (2, 5, 6, 7)).astype(np.uint16)  # czyx
    out = max_projection(data, axis="z", axes="czyx")
    assert out.shape == (2, 6, 7)
    np.testing.assert_array_equal(out, data.max(axis=1))
    out_t = max_projection(data[0], axis="t", axes="tyx")
    np.testing.assert_array_equal(out_t, data[0].max(axis=0))
    with pytest.raises(ValueError, match="no 't' axis"):
        max_projection(data, axis="t", axes="czyx")


def test_deterministic():
    img = noisy()
    for func in (gaussian, median, subtract_background, normalize):
        a, b = func(img), func(img.copy())
        assert a.tobytes() == b.tobytes()
