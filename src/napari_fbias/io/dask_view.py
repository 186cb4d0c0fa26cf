"""Dask arrays over numpy arrays in memory, without the copy ``dask.array.from_array`` makes.

``dask.array.from_array`` copies every numpy array it is given (a defence
against later writes to it). The runner and the writers wrap arrays that are
already in memory and never written to afterwards; a copy there doubles the
memory a step or a write needs (measured: 64 MB more for a 64 MB image, per
wrap). :func:`dask_view` reads blocks as views of the array instead.
"""

from __future__ import annotations

import uuid
from typing import Any

import dask.array as da
import numpy as np

__all__ = ["dask_view"]


class _Blocks:
    """A read-only array-like over a numpy array; its slices are views (no ``copy``)."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.shape = array.shape
        self.dtype = array.dtype
        self.ndim = array.ndim

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.array[key]


def dask_view(array: Any, chunks: Any = "auto") -> da.Array:
    """Return a dask array reading ``array`` (in memory) block by block, without copying it.

    Parameters
    ----------
    array : array-like
        Turned into a numpy array (no copy when it is one); it must not be
        written to while the dask array is in use.
    chunks : optional
        As for :func:`dask.array.from_array`.

    Returns
    -------
    dask.array.Array
        With a unique name (not a hash of the pixels: hashing reads them all).
    """
    arr = np.asarray(array)
    return da.from_array(
        _Blocks(arr),
        chunks=chunks,
        name=f"fbias-view-{uuid.uuid4().hex}",
        meta=np.empty((0,) * arr.ndim, dtype=arr.dtype),
    )
