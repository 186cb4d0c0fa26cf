"""The memory a pipeline run plans with: each step's peak, and what stays live.

Before each step the runner adds up

* the bytes of the arrays held in memory that this or a later step, or an
  output, still needs (:func:`live_bytes`; the others are freed), and
* what the step itself will add at its peak (:func:`step_bytes`): the lazy
  inputs it must load, its working memory and its output.

When the sum exceeds the memory budget the step runs chunk-wise if its
operation can (:mod:`napari_fbias.pipeline.chunked`), in blocks sized by
:func:`block_pixels`; otherwise it is refused with
:class:`~napari_fbias.pipeline.errors.MemoryLimitError` before it starts.

The working memory of an operation is declared beside its registration,
``register_op(..., memory=(a, b))``: about ``a + b * itemsize`` bytes per
pixel of the block it gets, output included (``a`` holds the conversions to
float64 and the int32 labels, ``b`` the copies of the input). The built-in
values were measured with :mod:`tracemalloc` (which counts numpy's buffers)
on 512 x 512 and 48 x 128 x 128 images of uint8, uint16, float32 and float64,
and rounded up; ``tests/test_pipeline_memory.py`` checks that they still
cover the measured peaks. Operations that declare nothing get
:data:`DEFAULT_OP_MEMORY`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from napari_fbias.io.limits import MAX_DASK_BLOCKS
from napari_fbias.pipeline.values import Value

#: Working memory assumed for an operation that declares none, ``(a, b)`` as
#: in ``register_op(memory=...)``: two float64 arrays and two copies of the input.
DEFAULT_OP_MEMORY = (16.0, 2.0)
#: Working buffers of fixed size a step may use whatever the image size (numpy's
#: histogram, behind thresholds of float images, works in blocks of 65,536 values).
FIXED_STEP_BYTES = 4 * 2**20
#: Bytes per pixel assumed for the stacked output of a spatial op looped over t/c.
OUTPUT_BYTES_PER_PIXEL = {"labels": 4, "image": 8}
#: Working memory a chunk-wise run adds per pixel of a block, besides the op's
#: own: merging labels across blocks holds int32 labels, int64 global ids, the
#: looked-up result and lists of object pixels (measured about 30, tracemalloc).
CHUNK_WISE_BYTES_PER_PIXEL = 32.0
#: Smallest block (pixels) a step is cut into when it runs chunk-wise for memory.
MIN_BLOCK_PIXELS = 64 * 64


def op_bytes_per_pixel(spec: Any, dtype: Any) -> float:
    """Return the working memory of operation ``spec`` per pixel of a ``dtype`` input."""
    a, b = spec.memory if getattr(spec, "memory", None) is not None else DEFAULT_OP_MEMORY
    return float(a) + float(b) * np.dtype(dtype).itemsize


def _owner(arr: np.ndarray) -> np.ndarray:
    """Return the array owning the memory that ``arr`` views (``arr`` if it owns it)."""
    while isinstance(arr.base, np.ndarray):
        arr = arr.base
    return arr


def live_bytes(values: Iterable[Value]) -> int:
    """Return the bytes of the in-memory (numpy) arrays among ``values``, each buffer once."""
    owners: dict[int, int] = {}
    for v in values:
        if v.is_array and isinstance(v.data, np.ndarray):
            owner = _owner(v.data)
            owners[id(owner)] = int(owner.nbytes)
    return sum(owners.values())


def _primary(args: list[Value | None]) -> Value | None:
    return next((v for v in args if v is not None and v.is_array), None)


def step_bytes(spec: Any, args: list[Value | None]) -> int:
    """Estimate what running a step in memory adds to the memory in use, at its peak.

    Parameters
    ----------
    spec : OpSpec
        The step's operation.
    args : list of Value or None
        Its inputs, in the order of ``spec.inputs``.

    Returns
    -------
    int
        Bytes: the lazy (dask) array inputs computed into memory, plus the
        op's working memory on the block it gets at once (one ``t``/``c``
        plane set for spatial ops, which then also hold the stacked output;
        the whole array otherwise), plus :data:`FIXED_STEP_BYTES`.
        Table-only steps count 0.
    """
    primary = _primary(args)
    if primary is None:
        return 0
    lazy = sum(int(v.data.nbytes) for v in args if v is not None and v.is_array and v.is_lazy)
    shape = [int(n) for n in primary.data.shape]
    pixels = math.prod(shape)
    per_pixel = op_bytes_per_pixel(spec, primary.data.dtype)
    if not spec.spatial:
        return int(lazy + per_pixel * pixels + FIXED_STEP_BYTES)
    loops = math.prod(n for a, n in zip(primary.axes, shape, strict=True) if a not in "zyx")
    work = per_pixel * (pixels // max(loops, 1))
    if loops > 1:
        work += OUTPUT_BYTES_PER_PIXEL.get(spec.output, 8) * pixels
    return int(lazy + work + FIXED_STEP_BYTES)


def block_pixels(spec: Any, args: list[Value | None], budget: int) -> int:
    """Return how many pixels a block may have for the step to run chunk-wise within ``budget``.

    Each of dask's worker threads holds one block, the op's working memory and
    that of the chunk-wise machinery (:data:`CHUNK_WISE_BYTES_PER_PIXEL`) at a
    time. At least :data:`MIN_BLOCK_PIXELS`, and large enough for the image
    to make at most :data:`~napari_fbias.io.limits.MAX_DASK_BLOCKS` blocks.

    A halo is not counted here: a strategy whose blocks carry one (decided
    by a first pass, ``segment.nuclei``) reads this number while it runs
    (:func:`napari_fbias.ops.chunks.budget_block_pixels`) and sizes its blocks so that each block
    *with* its halo holds at most this many pixels.
    """
    import dask
    from dask.system import CPU_COUNT

    primary = _primary(args)
    if primary is None:
        return MIN_BLOCK_PIXELS
    threads = int(dask.config.get("num_workers", None) or CPU_COUNT or 1)
    itemsize = sum(np.dtype(v.data.dtype).itemsize for v in args if v is not None and v.is_array)
    per_pixel = op_bytes_per_pixel(spec, primary.data.dtype) + itemsize
    per_pixel += CHUNK_WISE_BYTES_PER_PIXEL
    fewest = -(-math.prod(int(n) for n in primary.data.shape) // MAX_DASK_BLOCKS)
    return max(MIN_BLOCK_PIXELS, fewest, int(max(budget, 0) // (threads * per_pixel)))


def format_gb(nbytes: float) -> str:
    """Return a byte count in GB for messages (``"0.82 GB"``)."""
    return f"{nbytes / 1e9:.2f} GB"
