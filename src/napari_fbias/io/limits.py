"""What image metadata may claim: sizes checked before anything is read.

An OME-Zarr's ``.zarray`` / ``zarr.json`` or a TIFF's tags say how large an
image is; no pixel is read at open. A 20 KB store may claim 10^12 x 10^12
pixels, or a single chunk of 10^24 bytes. The readers pass every resolution
level through :func:`dask_chunks`, which checks the claims against the limits
below (raising :class:`~napari_fbias.io.errors.TooLargeError`, naming the
array and the limit) and only then chooses the dask blocks, so that opening
and reading a corner of any accepted image takes bounded time and memory.

Why these numbers (measured with dask 2026.8 on one core): every
``compute()`` walks *all* blocks of the arrays it reads when it culls the
graph, about 0.6 µs and 150 bytes per block; reading an 8x8 corner of a level
of 4,883 x 2,442 blocks took 7 s and 1.8 GB. :data:`MAX_DASK_BLOCKS` keeps
that under a second and 200 MB; dask blocks grow (up to
:data:`MAX_DASK_BLOCK_BYTES`) rather than exceed it. A stored chunk is read
and decoded whole, hence :data:`MAX_CHUNK_BYTES`.

A pixel size (or time step) is a claim too: :func:`checked_pixel_size` is the
rule the TIFF and OMERO readers apply (a positive finite number, else ignored
and noted), :func:`log_ignored_pixel_sizes` how they say so.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from napari_fbias.io.errors import TooLargeError

__all__ = [
    "DASK_CHUNK_TARGET_BYTES",
    "MAX_CHUNK_BYTES",
    "MAX_DASK_BLOCKS",
    "MAX_DASK_BLOCK_BYTES",
    "MAX_LABEL_IMAGES",
    "MAX_LEVELS",
    "MAX_LEVEL_BYTES",
    "check_count",
    "checked_pixel_size",
    "dask_chunks",
    "format_bytes",
    "log_ignored_pixel_sizes",
]

#: Dask blocks are whole multiples of the stored chunks, grown along the
#: spatial axes up to about this size, so that stores with small chunks do not
#: make millions of tasks and zarr fetches the chunks of one block concurrently.
DASK_CHUNK_TARGET_BYTES = 8 * 2**20
#: Most dask blocks per resolution level (graph work is linear in the count).
MAX_DASK_BLOCKS = 2**20
#: Largest dask block made to stay under :data:`MAX_DASK_BLOCKS`.
MAX_DASK_BLOCK_BYTES = 2**28
#: Largest resolution level (uncompressed bytes) a reader accepts: 256 TiB.
MAX_LEVEL_BYTES = MAX_DASK_BLOCKS * MAX_DASK_BLOCK_BYTES
#: Largest stored chunk (uncompressed bytes): it is decoded whole to read one pixel.
#: An uncompressed TIFF page written in one strip is one chunk, hence not less.
MAX_CHUNK_BYTES = 2**32
#: Most resolution levels an image may list (2^32 times smaller is far below a pixel).
MAX_LEVELS = 32
#: Most label images an OME-Zarr ``labels/`` group may list.
MAX_LABEL_IMAGES = 256


def format_bytes(n: float) -> str:
    """Return a byte count for people: ``"8 MiB"``, ``"256 TiB"``, ``"1e+24 bytes"``."""
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            value = n / size
            if value >= 2**20:
                return f"{float(n):.3g} bytes"
            return f"{value:.4g} {unit}"
    return f"{int(n)} bytes"


def _shape_text(shape: Sequence[int]) -> str:
    return " x ".join(str(int(n)) for n in shape)


def check_count(n: int, limit: int, what: str, where: str) -> None:
    """Refuse metadata that list more than ``limit`` things (levels, label images).

    Raises
    ------
    TooLargeError
        Naming ``where``, ``what`` and the limit.
    """
    if n > limit:
        raise TooLargeError(
            f"{where} lists {n} {what}; napari-fbias reads at most {limit} "
            "(a limit in napari_fbias.io.limits); the metadata are probably wrong"
        )


def checked_pixel_size(
    raw: object, axis: str, ignored: dict[str, str], shown: str | None = None
) -> float | None:
    """Return ``raw`` as a pixel size, or None (noted in ``ignored``) when it is not one.

    A pixel size (or time step) must be a positive, finite number; NaN, zero,
    negative, infinite or unreadable values are ignored, so the axis gets a
    size of 1 and no unit (the OME-Zarr reader refuses such a scale outright).

    Parameters
    ----------
    raw : object
        The value the metadata give.
    axis : str
        Its axis (``x``, ``y``, ``z``, ``t``): the key in ``ignored``.
    ignored : dict of str to str
        Gets ``axis -> the value as written`` when the value is ignored.
    shown : str, optional
        How to write the value in ``ignored`` (default ``str(raw)``).
    """
    try:
        value = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if math.isfinite(value) and value > 0:
        return value
    ignored[axis] = str(raw) if shown is None else shown
    return None


def log_ignored_pixel_sizes(log: logging.Logger, where: str, ignored: dict[str, str]) -> None:
    """Warn (through the reader's ``log``) that the pixel sizes in ``ignored`` were ignored."""
    if ignored:
        log.warning(
            "%s: ignoring pixel size(s) %s (not a positive finite number); those axes get "
            "a size of 1 and no unit",
            where,
            ", ".join(f"{a}={v}" for a, v in ignored.items()),
        )


def _n_blocks(shape: Sequence[int], chunks: Sequence[int]) -> int:
    return math.prod(-(-int(n) // int(c)) if n else 1 for n, c in zip(shape, chunks, strict=True))


def _grow(
    chunks: list[int],
    shape: Sequence[int],
    itemsize: int,
    order: Sequence[int],
    max_bytes: int,
    *,
    until_blocks: int | None = None,
) -> None:
    """Double ``chunks`` along the axes in ``order`` (round robin) up to ``max_bytes`` a block.

    With ``until_blocks``, stop as soon as there are at most that many blocks.
    """
    while until_blocks is None or _n_blocks(shape, chunks) > until_blocks:
        grown = False
        for i in order:
            nbytes = math.prod(chunks) * itemsize
            if chunks[i] < shape[i] and nbytes * 2 <= max_bytes:
                chunks[i] = min(chunks[i] * 2, int(shape[i]))
                grown = True
                if until_blocks is not None and _n_blocks(shape, chunks) <= until_blocks:
                    return
        if not grown:
            return


def dask_chunks(
    shape: Sequence[int],
    dtype: np.dtype,
    stored_chunks: Sequence[int],
    spatial: Sequence[bool],
    *,
    where: str,
    block_chunks: Sequence[int] | None = None,
    target_bytes: int = DASK_CHUNK_TARGET_BYTES,
) -> tuple[int, ...]:
    """Check what one resolution level claims, then choose its dask blocks.

    Parameters
    ----------
    shape : sequence of int
        The level's shape, as the metadata say.
    dtype : numpy.dtype
        Its pixel type.
    stored_chunks : sequence of int
        The unit the store reads and decodes at once (zarr chunk, TIFF strip or tile).
    spatial : sequence of bool
        Which axes are z/y/x (blocks grow along these first, x first).
    where : str
        The array's path or URL, for messages.
    block_chunks : sequence of int, optional
        The smallest block to start from when it is not ``stored_chunks``
        (a zarr shard).
    target_bytes : int
        Grow blocks along the spatial axes up to about this size (0: do not).

    Returns
    -------
    tuple of int
        Dask chunks: multiples of the start block, at most :data:`MAX_DASK_BLOCKS` blocks.

    Raises
    ------
    TooLargeError
        The level is larger than :data:`MAX_LEVEL_BYTES`, a stored chunk larger
        than :data:`MAX_CHUNK_BYTES`, or no blocking stays under
        :data:`MAX_DASK_BLOCKS`.
    """
    dtype = np.dtype(dtype)
    itemsize = max(int(dtype.itemsize), 1)
    shape = [int(n) for n in shape]
    if any(n < 0 for n in shape):
        raise TooLargeError(f"{where}: negative size in shape {tuple(shape)}")
    level_bytes = math.prod(shape) * itemsize
    if level_bytes > MAX_LEVEL_BYTES:
        raise TooLargeError(
            f"{where} claims {_shape_text(shape)} pixels of {dtype} ({format_bytes(level_bytes)}), "
            f"more than the {format_bytes(MAX_LEVEL_BYTES)} per resolution level that "
            "napari-fbias reads (MAX_LEVEL_BYTES); the metadata are probably wrong"
        )
    chunk_bytes = math.prod(int(c) for c in stored_chunks) * itemsize
    if chunk_bytes > MAX_CHUNK_BYTES:
        raise TooLargeError(
            f"{where} stores chunks of {_shape_text(stored_chunks)} pixels of {dtype} "
            f"({format_bytes(chunk_bytes)}); a chunk is decoded whole to read any of its "
            f"pixels, and napari-fbias reads chunks of at most {format_bytes(MAX_CHUNK_BYTES)} "
            "(MAX_CHUNK_BYTES)"
        )
    start = block_chunks if block_chunks is not None else stored_chunks
    if block_chunks is not None and math.prod(int(c) for c in start) * itemsize > (
        MAX_DASK_BLOCK_BYTES
    ):
        start = stored_chunks  # a huge shard: read it chunk by chunk
    chunks = [max(1, min(int(c), n)) if n else 1 for c, n in zip(start, shape, strict=True)]
    space = [i for i in reversed(range(len(shape))) if spatial[i]]
    if target_bytes:
        _grow(chunks, shape, itemsize, space, target_bytes)
    if _n_blocks(shape, chunks) > MAX_DASK_BLOCKS:
        others = [i for i in reversed(range(len(shape))) if not spatial[i]]
        _grow(
            chunks,
            shape,
            itemsize,
            space + others,
            MAX_DASK_BLOCK_BYTES,
            until_blocks=MAX_DASK_BLOCKS,
        )
    n = _n_blocks(shape, chunks)
    if n > MAX_DASK_BLOCKS:
        raise TooLargeError(
            f"{where}: {_shape_text(shape)} pixels in chunks of {_shape_text(stored_chunks)} "
            f"make {n} blocks even when grouped into blocks of "
            f"{format_bytes(MAX_DASK_BLOCK_BYTES)}; napari-fbias handles at most "
            f"{MAX_DASK_BLOCKS} per resolution level (MAX_DASK_BLOCKS)"
        )
    return tuple(chunks)
