"""Checkpoints: a chunk-wise step's lazy result written once to scratch disk.

A chunk-wise step returns its result lazily (a dask graph). A later step
that reads it block by block, with its own halo and in several passes,
would compute that graph again for every block it reads, halo included:
the time of the first step again per pass, and memory outside the budget
the first step's blocks were sized for (a chunk-wise ``segment.nuclei``
read by ``measure.regionprops`` took its peak there, ``docs/benchmarks.md``).
So the runner stores such a result in a scratch array
(:mod:`napari_fbias.io.scratch`: lossless, region by region, removed when
nothing reads it any more) and later steps read it there, in the same blocks.
"""

from __future__ import annotations

from dataclasses import replace

from napari_fbias.io.scratch import SCRATCH_ENV, scratch_readable, scratch_root, store_lazy
from napari_fbias.pipeline.errors import StepError
from napari_fbias.pipeline.values import Value

__all__ = ["checkpoint", "checkpoint_possible"]

#: Whether the processes that compute can read a checkpoint written here.
checkpoint_possible = scratch_readable


def checkpoint(value: Value, step_id: str, op: str) -> Value:
    """Store ``value``'s lazy array once on scratch disk; return it reading from there.

    The result has the same chunks, dtype, axes and spacing; its graph reads
    the stored blocks instead of computing the step again.

    Raises
    ------
    StepError
        Writing failed (the disk is full, the folder cannot be written); the
        message names the folder and ``FBIAS_SCRATCH``.
    """
    try:
        stored = store_lazy(value.data, value.axes, step_id)
    except OSError as exc:
        raise StepError(
            step_id,
            op,
            f"could not keep the step's result on scratch disk under {scratch_root()} ({exc}); "
            f"set {SCRATCH_ENV} (fbias run --scratch DIR, or TMPDIR) "
            "to a folder with room for it",
        ) from exc
    return replace(value, data=stored)
