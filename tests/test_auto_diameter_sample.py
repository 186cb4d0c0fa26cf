"""The object size of a large frame's sample: measured tile by tile, in bounded memory."""

from __future__ import annotations

import tracemalloc

import dask.array as da
import numpy as np
import pytest

from napari_fbias.ops import chunk_stitch
from napari_fbias.ops.auto_scale import frames_diameter, image_diameter
from napari_fbias.ops.object_size import TileSample, _TopPool, object_diameter, sample_tiles


def _spots(shape: tuple[int, int], n: int, radius: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.normal(100.0, 4.0, shape)
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    for cy, cx in zip(rng.uniform(0, shape[0], n), rng.uniform(0, shape[1], n), strict=True):
        img += 300.0 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (radius / 2) ** 2))
    return np.clip(img, 0, 65535).astype(np.uint16)


@pytest.fixture
def small_sample(monkeypatch: pytest.MonkeyPatch) -> int:
    """Frames above 512^2 pixels are sampled: 4 x 4 tiles of 128^2."""
    monkeypatch.setattr(chunk_stitch, "AUTO_FULL_PIXELS", 512 * 512)
    return 128


def test_pool_gives_numpy_percentiles_exactly() -> None:
    rng = np.random.default_rng(3)
    pieces = [rng.normal(size=int(rng.integers(1, 5000))).astype(np.float32) for _ in range(9)]
    whole = np.concatenate(pieces)
    for q in (90.0, 97.31, 99.0, 99.99, 100.0, 0.0, 50.0):
        pool = _TopPool(q, whole.size)
        for p in pieces:
            pool.add(p)
        assert pool.value() == pytest.approx(float(np.percentile(whole.astype(np.float64), q)))


def test_a_frame_that_fits_is_measured_whole_as_in_memory(small_sample: int) -> None:
    frame = _spots((512, 512), 120, 5.0)
    view = chunk_stitch.frame_view(da.from_array(frame[None], chunks=(1, 100, 100)), (0,), 1)
    assert type(view) is np.ndarray and sample_tiles(view) is None
    assert np.array_equal(view, frame)
    assert image_diameter(view) == image_diameter(frame)
    assert frames_diameter([view, view]) == image_diameter(frame)


@pytest.mark.parametrize("stored", [True, False])
def test_a_large_frame_gives_its_tiles_one_at_a_time(small_sample: int, stored: bool) -> None:
    frame = _spots((1100, 900), 300, 5.0)
    x = da.from_array(frame[None], chunks=(1, 256, 256))
    if stored:  # a stored array: read by regions, chunk by chunk
        from napari_fbias.io.region_read import register_stored

        x = register_stored(x, frame[None])
    view = chunk_stitch.frame_view(x, (0,), 1)
    tiles = sample_tiles(view)
    assert isinstance(view, TileSample) and tiles is not None and len(tiles) == 16
    gap, size = chunk_stitch.AUTO_GAP, small_sample
    assert view.shape == (4 * size + 3 * gap,) * 2
    # each tile centred in its cell of the frame, the gaps the tiles' lowest value
    inside = np.zeros(view.shape, bool)
    for (i, j), box in zip(np.ndindex(4, 4), tiles, strict=True):
        y0 = (i * 1100 // 4 + (i + 1) * 1100 // 4 - size) // 2
        x0 = (j * 900 // 4 + (j + 1) * 900 // 4 - size) // 2
        assert np.array_equal(view[box], frame[y0 : y0 + size, x0 : x0 + size])
        inside[box] = True
    assert (view[~inside] == min(view[b].min() for b in tiles)).all()
    # the boxes survive an elementwise step (an inverted movie), not a reshaping one
    assert sample_tiles(np.asarray(60000, view.dtype) - view) == tiles
    assert sample_tiles(view[::2]) is None


def test_the_sample_is_measured_tile_by_tile_in_bounded_memory(small_sample: int) -> None:
    frame = _spots((1024, 1024), 500, 5.0)
    view = chunk_stitch.frame_view(da.from_array(frame[None], chunks=(1, 512, 512)), (0,), 1)
    assert sample_tiles(view) is not None
    tracemalloc.start()
    try:
        d = image_diameter(view)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # less than one float32 copy of the sample (the whole-sample measure made float64 ones)
    assert peak < 4 * view.size, (peak, view.size)
    # and about what the whole sample, or the whole frame, measures
    whole = image_diameter(np.asarray(view))
    assert abs(d - whole) <= 0.1 * whole, (d, whole)


def test_an_empty_tile_sample_has_no_contrast() -> None:
    view = TileSample(np.full((40, 40), 7, np.uint16), [(slice(0, 16), slice(0, 16))])
    with pytest.raises(ValueError, match="no contrast"):
        object_diameter(view)
    assert image_diameter(view, fallback=9.5) == 9.5
