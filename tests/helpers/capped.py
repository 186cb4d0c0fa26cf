"""Run Python code or ``fbias`` in a child process whose memory is capped (``RLIMIT_AS``).

Tests of memory bounds must not take the test machine down when the bound
they test is broken: the child gets an address-space limit, so a runaway
allocation ends in a ``MemoryError`` inside it. The child can also report
its peak of traced allocations (:mod:`tracemalloc` counts numpy's buffers),
a measure that does not depend on what else runs on the machine::

    proc = run_capped("from napari_fbias.io.ome_zarr_read import read_ome_zarr; ...")
    proc = fbias_capped("run", "p.fbias.yaml", "img.tif", "-o", "out", trace=True)
    peak = traced_peak(proc)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["CAP_BYTES", "fbias_capped", "run_capped", "traced_peak"]

#: Address space a capped child may use (imports alone take a few hundred MB).
CAP_BYTES = 2 * 2**30
_TESTS = str(Path(__file__).resolve().parents[1])

_PRELUDE = """\
import os, resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
if {umask} is not None:
    os.umask({umask})
"""
_TRACE_START = """\
import tracemalloc
import napari_fbias.cli, napari_fbias.pipeline.batch, napari_fbias.pipeline.chunked
import napari_fbias.ops.segment, napari_fbias.ops.preprocess, napari_fbias.io.ome_zarr_write
import skimage.filters, scipy.ndimage
tracemalloc.start()
"""
_TRACE_END = """\
print("TRACED_PEAK", tracemalloc.get_traced_memory()[1], flush=True)
"""


def run_capped(
    code: str,
    *args: str,
    cap: int = CAP_BYTES,
    umask: int | None = None,
    trace: bool = False,
    timeout: float = 300,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (with ``sys.argv[1:] == args``) in a capped child; return its result.

    With ``trace``, allocations are traced from just before ``code`` runs
    (after the heavy imports) and the peak is printed for :func:`traced_peak`.
    """
    body = _PRELUDE.format(cap=int(cap), umask=umask)
    if trace:
        body += _TRACE_START + "try:\n" + _indent(code) + "finally:\n" + _indent(_TRACE_END)
    else:
        body += code
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), _TESTS) if p)
    return subprocess.run(
        [sys.executable, "-c", body, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
    )


def fbias_capped(*args: str, **options: object) -> subprocess.CompletedProcess[str]:
    """Run ``fbias ARGS`` in a capped child (options as for :func:`run_capped`)."""
    code = "from napari_fbias.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return run_capped(code, *args, **options)  # type: ignore[arg-type]


def traced_peak(proc: subprocess.CompletedProcess[str]) -> int:
    """Return the traced peak (bytes) a child run with ``trace=True`` printed."""
    found = re.findall(r"^TRACED_PEAK (\d+)$", proc.stdout, re.M)
    assert found, f"no traced peak in the output:\n{proc.stdout}\n{proc.stderr}"
    return int(found[0])


def _indent(code: str) -> str:
    return "".join(f"    {line}\n" for line in code.splitlines()) or "    pass\n"
