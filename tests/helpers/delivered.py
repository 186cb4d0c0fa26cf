"""The pipelines the demo delivers, as the memory bench runs them (``bench_chunked_memory``)."""

from __future__ import annotations

import sys
from pathlib import Path

_BENCH = str(Path(__file__).resolve().parents[2] / "bench")
sys.path.insert(0, _BENCH)
try:
    from bench_chunked_memory import PIPELINES
finally:
    while _BENCH in sys.path:
        sys.path.remove(_BENCH)

__all__ = ["PIPELINES"]
