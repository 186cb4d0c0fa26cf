"""Arrays read region by region (``io/region_read.py``): the same values as rechunk and overlap,
and graphs that do not grow with the image."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest
import zarr

from helpers.delivered import PIPELINES
from helpers.labels import same_up_to_renumbering
from napari_fbias.io.region_read import region_reader, register_stored, restride
from napari_fbias.io.synth import make_nuclei_2d
from napari_fbias.ops.chunk_stitch import halo_keys, with_halo
from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.runner import run_pipeline


@pytest.fixture(autouse=True)
def _synchronous():
    with dask.config.set(scheduler="synchronous"):
        yield


def stored(tmp_path, arr, chunks):
    """A dask array over a zarr array on disk, registered as our readers register theirs."""
    z = zarr.create_array(
        zarr.storage.LocalStore(tmp_path / "a.zarr"),
        shape=arr.shape,
        dtype=arr.dtype,
        chunks=chunks,
    )
    z[...] = arr
    return register_stored(da.from_array(z, chunks=chunks), z)


def in_memory(arr, chunks):
    return da.from_array(arr, chunks=chunks)


@pytest.mark.parametrize(
    ("shape", "chunks", "n_loop", "depth"),
    [
        ((97, 83), (20, 30), 0, 7),
        ((97, 83), (20, 30), 0, (25, 3)),  # a halo wider than a chunk: chunks widened
        ((2, 40, 50), (1, 16, 16), 1, 5),
        ((9, 31, 33), (4, 10, 12), 0, (1, 4, 4)),
        ((30, 200), (30, 64), 0, 40),  # one chunk along an axis: no halo there
    ],
)
def test_halo_blocks_equal_dask_overlap(tmp_path, shape, chunks, n_loop, depth):
    arr = np.random.default_rng(0).integers(0, 1000, shape).astype(np.uint16)
    x = stored(tmp_path, arr, chunks)
    assert region_reader(x) is not None
    cores, ext = with_halo([x], n_loop, depth)
    ref_cores, ref_ext = with_halo([in_memory(arr, chunks)], n_loop, depth)
    assert region_reader(in_memory(arr, chunks)) is None
    assert cores[0].chunks == ref_cores[0].chunks and ext[0].chunks == ref_ext[0].chunks
    for loc in np.ndindex(*ext[0].numblocks):
        got, want = ext[0].blocks[loc].compute(), ref_ext[0].blocks[loc].compute()
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(cores[0].compute(), arr)


def test_reader_found_through_rechunks_only(tmp_path):
    arr = np.arange(60 * 70, dtype=np.uint16).reshape(60, 70)
    x = stored(tmp_path, arr, (16, 16))
    assert region_reader(x.rechunk(25).rechunk((7, 60))) is not None
    assert region_reader(x + 1) is None  # another value
    assert region_reader(x[5:]) is None  # another shape
    assert region_reader(x.astype(np.float32)) is None
    y = restride(x, (13, 21))
    assert y.chunks == x.rechunk((13, 21)).chunks
    np.testing.assert_array_equal(y.compute(), arr)
    assert region_reader(y) is not None  # an array read by regions is a reader's too
    z = restride(x, {1: 9})  # as rechunk: the axes not named keep their chunks
    assert z.chunks == x.rechunk({1: 9}).chunks
    np.testing.assert_array_equal(z.compute(), arr)


def test_a_tiff_with_axes_to_drop_and_reorder_is_read_by_regions(tmp_path):
    # an OME-TIFF stored as t, z, c, y, x in 32^2 tiles; one t, read as czyx
    import pickle

    import tifffile

    from napari_fbias.io.tiff import read_tiff

    rng = np.random.default_rng(1)
    arr = rng.integers(0, 4000, (1, 5, 2, 70, 90)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "h.tif", arr, ome=True, tile=(32, 32), metadata={"axes": "TZCYX"})
    x = read_tiff(tmp_path / "h.tif").levels[0]
    assert x.numblocks[2:] == (3, 3)
    want = arr[0].transpose(1, 0, 2, 3)  # c, z, y, x
    assert x.shape == want.shape
    reader = region_reader(x)
    assert reader is not None
    np.testing.assert_array_equal(
        reader.read((slice(1, 2), slice(1, 4), slice(9, 40), slice(0, 90))), want[1:2, 1:4, 9:40]
    )
    np.testing.assert_array_equal(x.compute(), want)
    cores, ext = with_halo([x], 1, (1, 6, 6))
    ref_cores, ref_ext = with_halo([in_memory(want, x.chunks)], 1, (1, 6, 6))
    for loc in np.ndindex(*ext[0].numblocks):
        np.testing.assert_array_equal(
            ext[0].blocks[loc].compute(), ref_ext[0].blocks[loc].compute()
        )
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(x)).compute(), want)
    assert x.name == read_tiff(tmp_path / "h.tif").levels[0].name, "names are deterministic"


def _graph_tasks(x):
    graph = x.__dask_graph__()
    return sum(len(layer) for layer in graph.layers.values() if layer.is_materialized())


@pytest.mark.parametrize("side", [120, 480])
def test_keys_graph_does_not_grow_with_the_image(tmp_path, side):
    arr = np.zeros((side, side), np.uint16)
    x = stored(tmp_path, arr, (40, 40))
    keys = halo_keys([x.rechunk(30)], 0, 6, lambda f, b: (b > 0).astype(np.int32))
    dask.compute(keys.blocks[0, 0])  # a compute materializes what it culls from
    assert _graph_tasks(keys) <= 4  # the stored array's own layers, not one per block
    ref = halo_keys([in_memory(arr, 40).rechunk(30)], 0, 6, lambda f, b: b.astype(np.int32))
    dask.compute(ref.blocks[0, 0])
    assert _graph_tasks(ref) > (side // 30) ** 2  # dask's overlap: several tasks per block


@pytest.mark.parametrize("key", ["nuclei+measure", "smooth+threshold+split"])
def test_delivered_pipelines_from_a_stored_image_equal_dask_overlap(tmp_path, key):
    """The demo's pipelines read by regions give what dask's overlap gives, and in-memory labels."""
    from napari_fbias.io.ome_zarr_read import read_ome_zarr
    from napari_fbias.io.ome_zarr_write import write_image

    img, _ = make_nuclei_2d((300, 280), 70, 5)
    write_image(tmp_path / "img.ome.zarr", img, "yx", chunks=(64, 64))
    data = read_ome_zarr(tmp_path / "img.ome.zarr").levels[0]
    assert region_reader(data) is not None
    p = Pipeline.from_dict(PIPELINES[key])
    expected = p.run(img)
    got = run_pipeline(p, data, chunked=True, chunks=80, checksum=False)
    assert all(s["mode"] == "chunked" for s in got.record["steps"])
    ref = run_pipeline(p, img, chunked=True, chunks=80, checksum=False)  # dask's overlap
    labels = next(k for k in expected if k != "table")
    np.testing.assert_array_equal(np.asarray(got[labels]), np.asarray(ref[labels]))
    assert same_up_to_renumbering(expected[labels], np.asarray(got[labels]))
    if "table" in expected:
        table, ref_table = got["table"], ref["table"]
        assert list(table) == list(ref_table) and len(table["label"]) > 50
        for col in table:
            np.testing.assert_array_equal(np.asarray(table[col]), np.asarray(ref_table[col]))


def test_a_region_over_several_stored_chunks_is_read_one_chunk_at_a_time(tmp_path):
    """Each read stays inside one stored chunk (zarr decodes a chunk whole); same pixels."""
    from napari_fbias.io.region_read import StoredRegions

    data = np.random.default_rng(1).integers(0, 60000, (20, 50, 45), dtype=np.uint16)
    z = zarr.open_array(tmp_path / "a.zarr", mode="w", shape=data.shape, chunks=(8, 16, 16),
                        dtype=data.dtype)  # fmt: skip
    z[:] = data
    reads = []

    class Spy:
        shape, dtype, chunks = z.shape, z.dtype, z.chunks

        def __getitem__(self, key):
            reads.append(key)
            return z[key]

    reader = StoredRegions(Spy())
    region = (slice(3, 19), slice(10, 49), slice(0, 45))
    np.testing.assert_array_equal(reader.read(region), data[region])
    assert len(reads) == 3 * 4 * 3  # z: 3-8, 8-16, 16-19; y: 10-16, 16-32, 32-48, 48-49; x: 3
    for key in reads:
        assert all(s.start // c == (s.stop - 1) // c for s, c in zip(key, z.chunks, strict=True))
    reads.clear()
    inside = (slice(8, 16), slice(16, 30), slice(0, 10))
    np.testing.assert_array_equal(reader.read(inside), data[inside])
    assert reads == [inside]
    # a region past the end is read as given (as numpy slicing clips it)
    past = (slice(10, 30), slice(0, 50), slice(0, 45))
    np.testing.assert_array_equal(reader.read(past), data[past])


@pytest.mark.parametrize(
    ("shape", "chunks", "blocks"),
    [((2, 256, 4096), (1, 256, 512), (1, 256, 2048)), ((1100, 4100), (512, 512), (512, 2048))],
)
def test_checksum_reads_stored_slabs_chunk_by_chunk(tmp_path, shape, chunks, blocks):
    """The input checksum's slabs of rows cut every chunk of their rows, and a dask block of
    several stored chunks read them all at once: the same bytes read one stored chunk at a
    time hold the slab and one decoded chunk."""
    import hashlib
    import tracemalloc

    from napari_fbias.pipeline.provenance import array_sha256

    arr = np.random.default_rng(1).integers(0, 60000, shape).astype(np.uint16)
    z = zarr.create_array(
        zarr.storage.LocalStore(tmp_path / "a.zarr"), shape=shape, dtype=arr.dtype, chunks=chunks
    )
    z[...] = arr
    x = register_stored(da.from_array(z, chunks=blocks), z)  # blocks of several chunks
    expected = hashlib.sha256(arr.tobytes()).hexdigest()
    slab = 2 * arr.shape[-1] * arr.itemsize  # two rows at a time
    assert array_sha256(x, block_bytes=slab) == expected
    assert array_sha256(in_memory(arr, blocks), block_bytes=slab) == expected
    tracemalloc.start()
    try:
        array_sha256(x, block_bytes=slab)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_chunk = int(np.prod(chunks)) * arr.itemsize
    # a decoded chunk is held about four times over (compressed, decoded, copied): all of the
    # row's chunks at once held 2.2 times as much here
    assert peak < slab + 5 * one_chunk, (peak, one_chunk)
