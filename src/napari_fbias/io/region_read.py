"""Lazy arrays that read their blocks region by region: graphs that do not grow with the image.

A dask array made by rechunking and overlapping (``rechunk``,
``dask.array.overlap``) holds a task per piece of every block: at 16384^2
the graph of ``segment.nuclei``'s keys pass held 42 MiB (118 MiB at
32768^2), more than the blocks in flight. A *region reader* is an object
that returns any region of an array (``read(region)``); an array over one
is a single layer of one task per block, each reading its own region
(:func:`region_array`), and blocks with a halo are regions too
(:func:`halo_regions`): a few hundred bytes whatever the image.

Stored arrays are region readers: the dask arrays this package reads from
OME-Zarr, TIFF and scratch arrays are registered (:func:`register_stored`)
with the array-like they read, and :func:`region_reader` finds it again,
through any rechunking. A chunk-wise strategy that builds an array from
a reader registers it too (:func:`region_array`), so the next one reads
*its* regions. Arrays of other origins (a numpy array in memory, a lazy
chain of other operations) have no reader: callers then use dask's
``rechunk`` and ``overlap``, with the same values.
"""

from __future__ import annotations

import itertools
import threading
import uuid
import weakref
from collections.abc import Sequence
from functools import partial
from typing import Any, Protocol

import numpy as np

__all__ = [
    "RegionReader",
    "SelectedRegions",
    "StoredRegions",
    "restride",
    "halo_regions",
    "region_array",
    "region_reader",
    "register_stored",
]

Region = tuple[slice, ...]


class RegionReader(Protocol):
    """Anything that returns a region of an array (``shape``, ``dtype``, ``read``)."""

    shape: tuple[int, ...]
    dtype: np.dtype

    def read(self, region: Region) -> np.ndarray:
        """Return the pixels of ``region`` (one slice per axis, within the shape)."""
        ...


class StoredRegions:
    """A region reader over an array-like with numpy slicing (zarr, scratch array, TIFF level)."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = tuple(int(n) for n in array.shape)
        self.dtype = np.dtype(array.dtype)

    def read(self, region: Region) -> np.ndarray:
        """Return the pixels of ``region``, one stored chunk at a time.

        A compressed chunk is decoded whole whatever part of it is read, and
        zarr decodes every chunk a read touches at once: a 64^3 block with its
        halo read from 64 x 256 x 256 chunks decoded 8 of them (111 MiB
        added for 1.7 MiB of pixels). Reading the region chunk by chunk holds
        one decoded chunk at a time; a region inside one chunk is read as is.
        """
        grid = _stored_chunks(self.array, len(self.shape))
        pieces = None if grid is None else _pieces(region, grid, self.shape)
        if pieces is None or len(pieces) <= 1:
            return np.asarray(self.array[region])
        out = np.empty(tuple(s.stop - s.start for s in region), dtype=self.dtype)
        for piece in pieces:
            local = tuple(
                slice(p.start - r.start, p.stop - r.start)
                for p, r in zip(piece, region, strict=True)
            )
            out[local] = np.asarray(self.array[piece])
        return out


def _stored_chunks(array: Any, ndim: int) -> tuple[int, ...] | None:
    """Return the array's stored chunk shape (zarr), or None when it has none."""
    chunks = getattr(array, "chunks", None)
    if not isinstance(chunks, tuple) or len(chunks) != ndim:
        return None
    if not all(isinstance(c, (int, np.integer)) and c > 0 for c in chunks):
        return None
    return tuple(int(c) for c in chunks)


def _pieces(region: Region, grid: Sequence[int], shape: Sequence[int]) -> list[Region] | None:
    """Return ``region`` cut at the stored chunks' borders (None: not a plain region within)."""
    if len(region) != len(grid):
        return None
    per_axis = []
    for s, c, n in zip(region, grid, shape, strict=True):
        if not isinstance(s, slice) or s.start is None or s.stop is None:
            return None
        if s.step not in (None, 1) or not 0 <= s.start < s.stop <= n:
            return None
        cuts = list(range((s.start // c + 1) * c, s.stop, c))
        edges = [s.start, *cuts, s.stop]
        per_axis.append([slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)])
    return [tuple(p) for p in itertools.product(*per_axis)]


class SelectedRegions:
    """A region reader over an array-like whose axes are partly fixed at index 0, then reordered.

    What a reader that drops axes and transposes shows (a TIFF's series read
    as ``tczyx``): ``keep[i]`` is False for a source axis read at index 0 and
    dropped; output axis ``j`` is kept axis ``order[j]``.
    """

    def __init__(self, array: Any, keep: Sequence[bool], order: Sequence[int]) -> None:
        self.array = array
        self.keep = tuple(bool(k) for k in keep)
        self.order = tuple(int(i) for i in order)
        kept = [int(n) for n, k in zip(array.shape, self.keep, strict=True) if k]
        self.shape = tuple(kept[i] for i in self.order)
        self.dtype = np.dtype(array.dtype)

    def read(self, region: Region) -> np.ndarray:
        """Return the pixels of ``region`` (in the output's axes)."""
        by_kept: list[slice] = [slice(None)] * len(self.order)
        for j, i in enumerate(self.order):
            by_kept[i] = region[j]
        it = iter(by_kept)
        key = tuple(next(it) if k else slice(0, 1) for k in self.keep)
        block = np.asarray(self.array[key])
        block = block.reshape([n for n, k in zip(block.shape, self.keep, strict=True) if k])
        return block.transpose(self.order)


#: dask array name -> (weak reference to) the array-like or region reader it reads.
_SOURCES: dict[str, weakref.ref] = {}
_lock = threading.Lock()


def register_stored(x: Any, source: Any) -> Any:
    """Record that dask array ``x`` reads ``source`` as it is (same shape, dtype, values).

    Returns ``x``.

    ``source`` is an array-like with numpy slicing or a region reader; it is
    held weakly (``x``'s graph holds it).
    """
    with _lock:
        for name in [k for k, ref in _SOURCES.items() if ref() is None]:
            del _SOURCES[name]
        try:
            _SOURCES[x.name] = weakref.ref(source)
        except TypeError:  # an object that cannot be referenced weakly: no reader
            pass
    return x


def region_reader(x: Any) -> RegionReader | None:
    """Return the region reader dask array ``x`` reads, through rechunks; None if it has none."""
    try:
        graph = x.__dask_graph__()
        name = x.name
    except AttributeError:
        return None
    for _ in range(64):
        ref = _SOURCES.get(name)
        if ref is not None:
            obj = ref()
            if obj is None:
                return None
            reader = obj if callable(getattr(obj, "read", None)) else StoredRegions(obj)
            if tuple(reader.shape) != tuple(x.shape) or np.dtype(reader.dtype) != x.dtype:
                return None
            return reader
        deps = graph.dependencies.get(name, set()) if name.startswith("rechunk-") else ()
        if len(deps) != 1:
            return None
        name = next(iter(deps))
    return None


def _starts(chunks: Sequence[Sequence[int]]) -> list[np.ndarray]:
    return [np.cumsum((0, *c[:-1])).astype(int) for c in chunks]


def _read_block(
    reader: RegionReader,
    chunks: Sequence[Sequence[int]],
    starts: Sequence[np.ndarray],
    block_info: Any = None,
) -> np.ndarray:
    """One block of :func:`region_array` (module level: the graph pickles)."""
    loc = block_info[None]["chunk-location"]
    return reader.read(
        tuple(
            slice(int(s[i]), int(s[i]) + c[i]) for s, c, i in zip(starts, chunks, loc, strict=True)
        )
    )


def _widened(
    chunks: Sequence[Sequence[int]],
    starts: Sequence[np.ndarray],
    depths: Sequence[int],
    axis: int,
    j: int,
) -> tuple[int, int]:
    """Start and stop of block ``j`` along ``axis`` with its halo (none past the border)."""
    d, c = depths[axis], chunks[axis]
    lo = int(starts[axis][j]) - (d if j > 0 else 0)
    hi = int(starts[axis][j]) + c[j] + (d if j < len(c) - 1 else 0)
    return lo, hi


def _read_halo_block(
    reader: RegionReader,
    chunks: Sequence[Sequence[int]],
    starts: Sequence[np.ndarray],
    depths: Sequence[int],
    block_info: Any = None,
) -> np.ndarray:
    """One block of :func:`halo_regions`."""
    loc = block_info[None]["chunk-location"]
    return reader.read(
        tuple(slice(*_widened(chunks, starts, depths, a, j)) for a, j in enumerate(loc))
    )


def region_array(
    reader: RegionReader,
    chunks: Sequence[Sequence[int]],
    name: str = "fbias-regions",
    token: str | None = None,
) -> Any:
    """Return a dask array of ``reader``'s values in ``chunks``, each block reading its region.

    The array is registered (:func:`register_stored`): strategies that read
    it find ``reader`` again. Its name is ``name-token`` (a deterministic
    name for stored data), or ``name`` and a unique suffix.
    """
    import dask.array as da

    chunks = tuple(tuple(int(n) for n in c) for c in chunks)
    out = da.map_blocks(
        partial(_read_block, reader, chunks, _starts(chunks)),
        chunks=chunks,
        dtype=reader.dtype,
        meta=np.empty((0,) * len(chunks), dtype=reader.dtype),
        name=f"{name}-{token or uuid.uuid4().hex}",
    )
    return register_stored(out, reader)


def halo_regions(
    reader: RegionReader, chunks: Sequence[Sequence[int]], depths: Sequence[int]
) -> Any:
    """Blocks of ``chunks`` widened by ``depths`` pixels per axis, as ``dask.array.overlap`` makes.

    As ``overlap(..., boundary="none")``: no halo past the image's border,
    none along an axis in one chunk, and each chunk at least its axis' depth
    (the caller's chunks, as :func:`~napari_fbias.ops.chunk_stitch.with_halo` makes them).
    """
    import dask.array as da

    chunks = tuple(tuple(int(n) for n in c) for c in chunks)
    depths = tuple(int(d) if len(c) > 1 else 0 for d, c in zip(depths, chunks, strict=True))
    starts = _starts(chunks)

    ext_chunks = tuple(
        tuple(
            hi - lo
            for lo, hi in (_widened(chunks, starts, depths, a, j) for j in range(len(chunks[a])))
        )
        for a in range(len(chunks))
    )
    return da.map_blocks(
        partial(_read_halo_block, reader, chunks, starts, depths),
        chunks=ext_chunks,
        dtype=reader.dtype,
        meta=np.empty((0,) * len(chunks), dtype=reader.dtype),
        name=f"fbias-halo-regions-{uuid.uuid4().hex}",
    )


def restride(x: Any, chunks: Any) -> Any:
    """Return dask array ``x`` in other ``chunks``: read by regions where it can be, else rechunked.

    A rechunk's graph grows with the image; arrays with a region reader
    (:func:`region_reader`) are read region by region instead, same values.
    """
    import dask.array as da

    reader = region_reader(x)
    if reader is None:
        return x.rechunk(chunks)
    if isinstance(chunks, dict):  # as rechunk: the axes not named keep their chunks
        chunks = tuple(chunks.get(i, x.chunks[i]) for i in range(x.ndim))
    return region_array(reader, da.core.normalize_chunks(chunks, x.shape, dtype=x.dtype))
