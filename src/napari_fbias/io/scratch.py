"""Scratch arrays: intermediate results kept on local disk while a run reads them.

A chunk-wise run computes its results lazily; a result that is read more
than once (by a later step, or by the second pass of a stitching step)
would be computed again for every read, halo included. A scratch array
stores it once, losslessly (a zarr array, zstd-compressed), in a temporary
folder under ``FBIAS_SCRATCH`` (else ``TMPDIR``, else the system's temp
folder). The folder lives as long as the :class:`ScratchArray` object that
created it: a dask array reading it holds that object in its graph, so the
folder is removed when the last such array is gone (or when the process
exits). Pickled to a cluster worker, the object travels as its path.

On a cluster whose workers are not all on this machine, a local folder is
not readable by them: :func:`scratch_readable` says so, and callers then
compute again instead, unless ``FBIAS_SCRATCH`` names a folder every worker
shares.

A process killed outright cannot remove its folders; the next process that
creates a scratch array under the same root removes them
(:mod:`napari_fbias.io.stale_scratch`).
"""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from napari_fbias.io.stale_scratch import PREFIX, clean_once, write_owner

__all__ = [
    "SCRATCH_ENV",
    "ScratchArray",
    "regular_chunks",
    "scratch_folder",
    "scratch_readable",
    "scratch_root",
    "scratch_write_error",
    "store_lazy",
]

#: Environment variable naming the folder for scratch arrays (shared by a cluster's workers).
SCRATCH_ENV = "FBIAS_SCRATCH"


def scratch_root() -> Path:
    """Return the folder under which scratch arrays go (``FBIAS_SCRATCH``, else the temp dir)."""
    return Path(os.environ.get(SCRATCH_ENV) or tempfile.gettempdir())


def scratch_readable() -> bool:
    """Tell whether the processes that compute can read a scratch array written here.

    True for dask's local schedulers, for a distributed client whose workers
    all run on this machine (a ``LocalCluster``), and whenever
    ``FBIAS_SCRATCH`` is set (taken to be a folder every worker shares).
    """
    from napari_fbias.io.dask_parallel import distributed_client

    if os.environ.get(SCRATCH_ENV):
        return True
    client = distributed_client()
    if client is None:
        return True
    try:
        workers = client.scheduler_info().get("workers", {})
    except Exception:  # a client that cannot answer: do not guess
        return False
    return all(is_local_address(address) for address in workers)


def is_local_address(address: str) -> bool:
    """Tell whether a dask worker address (``tcp://host:port``) is on this machine."""
    if address.startswith("inproc://"):
        return True
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    if host in ("127.0.0.1", "localhost", "::1"):
        return True
    try:
        return host in {socket.gethostname(), socket.gethostbyname(socket.gethostname())}
    except OSError:
        return False


def regular_chunks(chunks: Sequence[Sequence[int]]) -> tuple[int, ...] | None:
    """Return the one chunk shape of dask ``chunks`` (a smaller last block allowed), or None."""
    out = tuple(max(c, default=1) for c in chunks)
    for dim, c in zip(chunks, out, strict=True):
        if any(n != c for n in dim[:-1]) or (dim and dim[-1] > c):
            return None
    return out


def scratch_folder(name: str) -> tempfile.TemporaryDirectory:
    """Create a run's temporary folder under :func:`scratch_root`, with its owner file.

    ``name`` (a step id) labels the folder. The folder is removed when the
    returned object is, or by the next process when this one is killed
    (:mod:`napari_fbias.io.stale_scratch`).
    """
    root = scratch_root()
    root.mkdir(parents=True, exist_ok=True)
    clean_once(root)
    label = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in name)[:40]
    folder = tempfile.TemporaryDirectory(prefix=f"{PREFIX}{label}-", dir=root)
    write_owner(Path(folder.name))
    return folder


def scratch_write_error(path: str | Path, exc: OSError) -> OSError:
    """Return the error for scratch data not written: where, and how to move it."""
    return OSError(
        exc.errno,
        f"could not write scratch data under {path} ({exc.strerror or exc}); "
        f"set {SCRATCH_ENV} (fbias run --scratch DIR, or TMPDIR) "
        "to a folder with room for it",
    )


class ScratchArray:
    """A zarr array in its own temporary folder; array-like for ``dask.array.from_array``.

    Parameters
    ----------
    shape, dtype, chunks
        The array's shape, dtype and (regular) chunk shape.
    name : str
        A label for the folder's name (a step id).

    Raises
    ------
    OSError
        The folder cannot be created or written.
    """

    def __init__(self, shape: Sequence[int], dtype: Any, chunks: Sequence[int], name: str) -> None:
        import zarr

        self._folder: tempfile.TemporaryDirectory | None = scratch_folder(name)
        self.path = self._folder.name
        self.array = zarr.create_array(
            zarr.storage.LocalStore(self.path),
            shape=tuple(int(n) for n in shape),
            dtype=np.dtype(dtype),
            chunks=tuple(int(c) for c in chunks),
            fill_value=0,
        )
        self._init_view()

    def _init_view(self) -> None:
        self.shape = tuple(self.array.shape)
        self.dtype = np.dtype(self.array.dtype)
        self.ndim = len(self.shape)

    @classmethod
    def _reopen(cls, path: str) -> ScratchArray:
        import zarr

        self = cls.__new__(cls)
        self._folder = None  # the folder stays with the creating process's object
        self.path = path
        self.array = zarr.open_array(zarr.storage.LocalStore(path), mode="r+")
        self._init_view()
        return self

    def __reduce__(self) -> tuple:
        return (ScratchArray._reopen, (self.path,))

    def __dask_tokenize__(self) -> str:
        return self.path

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.array[key]

    def __setitem__(self, key: Any, value: np.ndarray) -> None:
        try:
            self.array[key] = value
        except OSError as exc:  # a full disk, mid-pass: say where, and how to move it
            raise scratch_write_error(self.path, exc) from exc

    def as_dask(self, chunks: Any) -> Any:
        """Return a dask array reading this array in ``chunks`` (which hold this object)."""
        import dask.array as da

        from napari_fbias.io.region_read import register_stored

        out = da.from_array(
            self,
            chunks=chunks,
            name=f"fbias-scratch-{uuid.uuid4().hex}",
            lock=False,
            asarray=True,
            meta=np.empty((0,) * self.ndim, dtype=self.dtype),
        )
        return register_stored(out, self)


def store_lazy(data: Any, axes: Sequence[str], name: str) -> Any:
    """Compute ``data`` (a dask array) once into a scratch array; return a dask array of it.

    Written region by region (:func:`~napari_fbias.io.ome_zarr_write.store_in_regions`);
    the result has ``data``'s chunks, dtype and values.

    Raises
    ------
    OSError
        The scratch folder cannot be created or written (e.g. the disk is full).
    """
    from napari_fbias.io.ome_zarr_write import store_in_regions
    from napari_fbias.io.region_read import restride

    chunks = regular_chunks(data.chunks)
    source = data
    if chunks is None:  # zarr needs one chunk shape
        chunks = tuple(max(c, default=1) for c in data.chunks)
        source = restride(data, chunks)
    scratch = ScratchArray(data.shape, data.dtype, chunks, name)
    store_in_regions(source, scratch.array, chunks, axes)
    return scratch.as_dask(data.chunks)
