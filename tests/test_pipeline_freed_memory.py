"""Chunk-wise runs give freed block-sized buffers back to the system (glibc settings)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHILD = """
import sys, psutil
import numpy as np
import os
if sys.argv[1] == "late-env":  # what dask.distributed does for the workers it spawns
    os.environ["MALLOC_TRIM_THRESHOLD_"] = "65536"
if sys.argv[1] != "off":
    from napari_fbias.pipeline.freed_memory import return_freed_memory
    assert return_freed_memory()
proc = psutil.Process()
base = proc.memory_info().rss
big, small = [], []
for i in range(2000):
    big.append(np.ones(100_000 // 8))  # 100 kB, as a block's per-object results
    small.append(np.ones(4))  # kept: pins the heap between the big ones
del big
print((proc.memory_info().rss - base) / 2**20)
"""


def _held_after_free(mode: str, **env: str) -> float:
    # without the MALLOC_ variables dask.distributed puts in os.environ for its workers
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**clean, **env},
    )
    return float(out.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc settings")
def test_freed_100kb_buffers_between_live_objects_go_back_to_the_system():
    # 2000 freed 100 kB arrays (190 MiB) interleaved with small live ones: glibc's default
    # keeps them in its heap; with the settings, each had its own pages, given back
    assert _held_after_free("off") > 100
    assert _held_after_free("on") < 20


def test_what_distributed_puts_in_os_environ_is_not_taken_for_the_users_choice():
    # the variable set at run time did not reach glibc: the settings still apply
    assert _held_after_free("late-env") < 20
    # set when the process started, it is the user's: left alone (and glibc has it)
    assert _held_after_free("off", MALLOC_TRIM_THRESHOLD_="65536") > 100
