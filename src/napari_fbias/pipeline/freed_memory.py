"""Give freed memory back to the system during chunk-wise runs (glibc's ``malloc``).

A chunk-wise run allocates and frees block-sized arrays (a few MiB each) from
several dask threads. glibc's allocator raises its ``mmap`` threshold each
time such a block is freed (up to 32 MiB), so later blocks come from the
threads' heaps, and freed heap memory is kept by the process instead of
being returned: the run's resident memory grew to about twice what its
blocks needed (measured at 16384 x 16384 uint16, gaussian + otsu, 64 MiB
budget: 176 MiB added, 0.34x the image; 78 MiB, 0.15x, with the fix; see
``docs/benchmarks.md``).

:func:`return_freed_memory` sets ``M_TRIM_THRESHOLD`` to 64 KiB, which is what
dask.distributed's nanny sets for its worker processes
(``MALLOC_TRIM_THRESHOLD_``, ``distributed.nanny.pre-spawn-environ``) and
also turns off the dynamic ``mmap`` threshold, and ``M_MMAP_THRESHOLD`` to
64 KiB (from 128 KiB): the per-block results of a measuring pass (a few
thousand objects a block, arrays of 10 to 100 KiB, made in dask's threads and
merged in the main one) otherwise stayed in the threads' heaps, fragmented:
``measure.regionprops`` chunk-wise on 4096^2 with 116 623 objects added
96.5 MiB, 83.1 MiB with it, in the same time. It is process-wide, done once,
and does nothing where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "return_freed_memory"]

#: Bytes of free memory at the top of a heap above which glibc returns it (as dask's workers).
TRIM_THRESHOLD = 65536
#: Allocations from this size up get their own pages, given back when freed.
MMAP_THRESHOLD = 65536
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_done: list[bool] = []


def _start_environment() -> set[str]:
    """Names of the variables the process started with (what glibc read).

    ``os.environ`` may have changed since: dask.distributed sets
    ``MALLOC_TRIM_THRESHOLD_`` in it for the worker processes it spawns.
    """
    try:
        with open("/proc/self/environ", "rb") as fh:
            return {
                e.split(b"=", 1)[0].decode(errors="replace") for e in fh.read().split(b"\0") if e
            }
    except OSError:
        return set(os.environ)


def return_freed_memory() -> bool:
    """Make glibc return freed memory to the system promptly; True when it applied.

    Returns False (and changes nothing) on other systems, or when the
    process started with ``MALLOC_TRIM_THRESHOLD_`` set (the user's choice
    wins; ``MALLOC_MMAP_THRESHOLD_`` likewise keeps the mmap threshold).
    """
    if _done:
        return _done[0]
    applied = False
    started_with = _start_environment()
    if sys.platform.startswith("linux") and "MALLOC_TRIM_THRESHOLD_" not in started_with:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # musl and others: no mallopt
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            mallopt.restype = ctypes.c_int
            applied = mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
            if applied and "MALLOC_MMAP_THRESHOLD_" not in started_with:
                mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _done.append(applied)
    return applied
