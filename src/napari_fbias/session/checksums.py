"""Pixel checksums of the images a session reads, as the record keeps them (``sha256:...``).

A checksum identifies the full-resolution pixels of an image wherever it is
stored (:func:`napari_fbias.pipeline.provenance.array_sha256` reads a lazy
array slab by slab and does not depend on its chunks). It is what
:func:`napari_fbias.session.recompute.recompute_approach` checks before it
shows another analyst's result, and what a delivery bundle lists for each
input; an image recorded without one is "not recorded" there.

The napari workspace computes it in a worker thread when an image enters the
session; the headless demo passes it to ``SessionRecorder.add_image``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["CHECKSUM_PREFIX", "image_checksum", "pixels_checksum"]

#: Prefix of every recorded pixel checksum.
CHECKSUM_PREFIX = "sha256:"


class _InThisThread:
    """A dask array whose blocks are read in the calling thread (dask's synchronous scheduler).

    Measured reason: the napari workspace computes checksums in a worker
    thread while a run computes in another; with dask's threaded scheduler
    each such thread gets a thread pool of its own, and a test run hung with
    both computations waiting on their pools. One reader thread is all a
    checksum needs (it reads slab by slab anyway).
    """

    def __init__(self, array: Any) -> None:
        self._array = array
        self.dtype = array.dtype
        self.shape = array.shape
        self.ndim = array.ndim
        self.chunks = array.chunks

    def __getitem__(self, index: Any) -> Any:
        return self._array[index].compute(scheduler="synchronous")


def pixels_checksum(data: Any) -> str:
    """Return ``"sha256:<hex>"`` of an array's pixels (numpy or dask; read slab by slab).

    A dask array is read in the calling thread, without a thread pool.
    """
    from napari_fbias.pipeline.provenance import array_sha256

    if hasattr(data, "compute") and hasattr(data, "chunks"):
        data = _InThisThread(data)
    return CHECKSUM_PREFIX + array_sha256(data)


def image_checksum(source: str, *, opener: Callable[[str], Any] | None = None) -> str:
    """Open an image from its recorded source and return the checksum of its pixels.

    Parameters
    ----------
    source : str
        Path, URL or ``omero://`` URI, as the session records it.
    opener : callable, optional
        Opens a source (default :func:`napari_fbias.io.open.open_image`).

    Returns
    -------
    str
        ``"sha256:<hex>"`` of the full-resolution level, the pixels that
        ``recompute_approach`` checks.

    Raises
    ------
    Exception
        Whatever the reader raises when the source cannot be read.
    """
    if opener is None:
        from napari_fbias.io.open import open_image as opener
    return pixels_checksum(opener(source).data)
