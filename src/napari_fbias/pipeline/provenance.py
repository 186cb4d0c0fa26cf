"""Provenance: package versions, UTC times, authors, pixel checksums.

Nothing here imports the heavy packages it reports on: versions come from the
installed distributions' metadata.
"""

from __future__ import annotations

import functools
import hashlib
import math
from collections.abc import Iterator
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

#: Distributions whose versions go into pipelines and run records.
TRACKED_PACKAGES: tuple[str, ...] = (
    "napari-fbias",
    "numpy",
    "scipy",
    "scikit-image",
    "pandas",
    "dask",
    "distributed",
    "zarr",
    "ome-zarr",
    "tifffile",
    "trackpy",
    "cellpose",
    "torch",
)

#: Bytes read at a time when hashing pixels.
HASH_BLOCK_BYTES = 128 * 2**20


def utc_now_iso() -> str:
    """Return the current time in UTC, ISO 8601 with a ``Z`` suffix, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def package_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Return the installed version of each package (None when it is not installed).

    Looked up once per process (reading package metadata takes milliseconds).
    """
    return dict(_package_versions(tuple(packages)))


@functools.lru_cache(maxsize=8)
def _package_versions(packages: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    import platform

    out["python"] = platform.python_version()
    return out


def make_provenance(
    *,
    author: str | None = None,
    source: dict[str, Any] | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """Provenance block of a pipeline file.

    Parameters
    ----------
    author : str, optional
        Who made the pipeline: a name only (no e-mail or login).
    source : dict, optional
        Where it came from (e.g. ``{"session": "...", "approach": "..."}``).
    created : str, optional
        ISO time; now (UTC) by default.

    Returns
    -------
    dict
        ``created``, ``author``, ``napari_fbias``, ``packages`` and ``source``.
    """
    from napari_fbias import __version__

    prov: dict[str, Any] = {"created": created or utc_now_iso()}
    if author:
        prov["author"] = str(author).split("<")[0].strip()
    prov["napari_fbias"] = __version__
    prov["packages"] = package_versions()
    if source:
        prov["source"] = dict(source)
    return prov


def _slabs(shape: tuple[int, ...], itemsize: int, limit: int, step0: int) -> Iterator[tuple]:
    """Index tuples covering an array in C order, each at most ``limit`` bytes if possible."""
    if not shape:
        yield ()
        return
    inner = math.prod(shape[1:]) * itemsize
    if inner <= limit or len(shape) == 1:
        rows = max(1, limit // max(inner, 1))
        if step0 > 1 and rows >= step0:
            rows -= rows % step0
        for start in range(0, shape[0], rows):
            yield (slice(start, min(start + rows, shape[0])),)
        return
    for i in range(shape[0]):
        for rest in _slabs(shape[1:], itemsize, limit, 1):
            yield (slice(i, i + 1), *rest)


def hash_block_bytes(memory_limit: int | None) -> int:
    """Bytes :func:`array_sha256` may read at once under a memory budget (a quarter of it).

    Reading a slab takes about twice its size (the chunks, then the slab), so a
    quarter keeps the checksum of an image larger than the budget within it.
    None (no budget given) gives :data:`HASH_BLOCK_BYTES`.
    """
    if memory_limit is None:
        return HASH_BLOCK_BYTES
    return max(2**20, min(HASH_BLOCK_BYTES, int(memory_limit) // 4))


def array_sha256(data: Any, *, block_bytes: int = HASH_BLOCK_BYTES) -> str:
    """SHA-256 of an array's pixel bytes in C order, little-endian, read slab by slab.

    The result does not depend on how a dask array is chunked, so it
    identifies the pixels of an image wherever it is stored. A dask array
    that reads a stored array (an OME-Zarr level) is read one stored chunk at
    a time (:func:`~napari_fbias.io.region_read.region_reader`): a slab of
    rows cuts through every chunk of its rows, and reading it at once decoded
    them all (64 MiB for a 16 MiB slab of a 32768-wide image in 1024^2 chunks).
    """
    from napari_fbias.io.region_read import region_reader

    dtype = np.dtype(data.dtype)
    le = dtype.newbyteorder("<") if dtype.byteorder == ">" else dtype
    h = hashlib.sha256()
    chunks = getattr(data, "chunks", None)
    step0 = int(chunks[0][0]) if chunks and data.ndim else 1
    shape = tuple(int(n) for n in data.shape)
    reader = region_reader(data)
    for index in _slabs(shape, dtype.itemsize, block_bytes, step0):
        if reader is not None:
            full = index + tuple(slice(0, n) for n in shape[len(index) :])
            block = reader.read(tuple(slice(s.start or 0, s.stop) for s in full))
        else:
            block = data[index]
            if hasattr(block, "compute"):
                block = block.compute()
        h.update(np.ascontiguousarray(block, dtype=le).data)
    return h.hexdigest()
