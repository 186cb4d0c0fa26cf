"""The automatic ``minmass``'s noise numbers from counts, against numpy on the pixels."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from napari_fbias.ops import chunk_stats, spot_chunks
from napari_fbias.ops.spot_noise import countable, median_of_counts
from napari_fbias.ops.track import _auto_minmass, _locate_kwargs, _noise_sigma, _prepare_frame


def counted_noise(x: da.Array):
    """The counting pass of chunk-wise spot tracking on ``x`` (every frame sampled)."""
    prep = spot_chunks._prepare_for(x, False)
    sample = list(range(x.shape[0]))
    return spot_chunks._counted_noise(x, prep, sample, x.dtype)


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def frames_of(dtype: str, shape=(3, 70, 90), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    info = np.iinfo(dtype)
    base = rng.normal(
        0.5 * (int(info.min) + int(info.max)), 0.2 * (int(info.max) - int(info.min)), shape
    )
    frames = np.clip(np.rint(base), info.min, info.max).astype(dtype)
    frames[0, :5] = info.min  # the extremes of the type, and their largest differences
    frames[0, 5:10, ::2] = info.max
    return frames


@pytest.mark.parametrize("dtype", ["uint8", "int8", "uint16", "int16"])
@pytest.mark.parametrize("width", [90, 91, 2])  # even and odd numbers of differences
def test_counts_give_numpys_numbers_bit_for_bit(dtype, width):
    frames = frames_of(dtype, (3, 71, width))
    sigma, level = counted_noise(da.from_array(frames, chunks=(1, 20, 17)))
    assert countable(frames.dtype)
    assert sigma.tolist() == [_noise_sigma(f) for f in frames]
    assert level == float(np.median(frames[0]))


def test_one_pixel_wide_frames_have_no_noise_as_in_memory():
    frames = frames_of("uint16", (3, 40, 1))
    sigma, level = counted_noise(da.from_array(frames, chunks=(1, 16, 1)))
    assert sigma.tolist() == [0.0, 0.0, 0.0]
    assert level == float(np.median(frames[0]))


def test_median_of_counts_is_numpys_median():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 50):
        sample = rng.normal(size=n).round(1)
        values, counts = np.unique(sample, return_counts=True)
        assert median_of_counts(values, counts) == float(np.median(sample))


def test_wider_and_float_types_are_not_counted():
    assert not countable(np.dtype("uint32"))
    assert not countable(np.dtype("float32"))
    assert countable(np.dtype("int16"))


@pytest.mark.parametrize(
    ("dtype", "invert"), [("uint16", False), ("int16", True), ("uint8", False)]
)
def test_chunked_automatic_minmass_equals_in_memory_in_one_pass(dtype, invert, monkeypatch):
    frames = frames_of(dtype, (5, 96, 96), seed=1)
    x = da.from_array(frames, chunks=(1, 32, 32))
    kwargs, _ = _locate_kwargs(7, None, 64.0, 1.0, None, None, 2, "test")
    sample = [0, 2, 4]
    prepared = [_prepare_frame(frames[t], invert, t, "test") for t in sample]
    expected = _auto_minmass(prepared, dict(kwargs))
    prep = spot_chunks._prepare_for(x, invert)
    passes = []
    real = chunk_stats.iter_batches

    def counting(calls, *args, **kw):
        passes.append((calls[0][1].__name__, len(calls)))
        return real(calls, *args, **kw)

    monkeypatch.setattr(chunk_stats, "iter_batches", counting)
    got = spot_chunks._auto_minmass(x, prep, sample, dict(kwargs))
    assert got == expected and got > 0
    # one pass over the sampled frames' blocks (3 x 9), not order statistics
    assert passes == [("_block_noise_counts", 27)]
