"""Timing helpers shared by the benchmarks in this folder.

Every benchmark is one command that measures *ours* and a *reference*
(the library called directly, or a peer plugin) in the same run, alternating
rounds so that a busy machine slows both alike, and prints:

* a readable line per measurement, and
* markdown table rows (``| bench | case | ours | reference | ratio | goal | met |``)
  that ``docs/benchmarks.md`` holds, so a rerun on a quiet machine is a paste.

Benchmarks import this module as ``common`` (the scripts run as
``python bench/bench_x.py``, which puts ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]

#: Markdown table header matching :meth:`Row.markdown`.
TABLE_HEADER = (
    "| bench | case | ours | reference | ours / reference | goal | met |\n"
    "|---|---|---|---|---|---|---|"
)


# --- arguments -------------------------------------------------------------------------


def add_common_args(parser: argparse.ArgumentParser, *, repeat: int = 3) -> None:
    """Add ``--quick`` and ``--repeat`` to a benchmark's argument parser."""
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and one round: a smoke run for CI, not a measurement",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=repeat,
        help=f"rounds per measurement, median reported (default {repeat})",
    )


# --- timing ----------------------------------------------------------------------------


def timed(func: Callable[[], Any]) -> tuple[float, Any]:
    """Call ``func()`` once; return (seconds, result)."""
    gc.collect()
    t0 = time.perf_counter()
    out = func()
    return time.perf_counter() - t0, out


def alternate(
    funcs: dict[str, Callable[[], Any]], repeat: int, *, warmup: bool = True
) -> dict[str, list[float]]:
    """Time several functions in alternation, ``repeat`` rounds; return seconds per name.

    A warm-up call of each (imports, numba/JIT, OS caches) is not timed unless
    ``warmup`` is False.
    """
    if warmup:
        for f in funcs.values():
            f()
    times: dict[str, list[float]] = {k: [] for k in funcs}
    for _ in range(max(1, repeat)):
        for name, f in funcs.items():
            times[name].append(timed(f)[0])
    return times


def median(values: Sequence[float]) -> float:
    """Median of ``values`` (nan when empty)."""
    return statistics.median(values) if values else float("nan")


def ratio(ours: float, reference: float) -> float:
    """``ours / reference`` (inf when the reference took no time)."""
    return ours / reference if reference > 0 else float("inf")


def fmt_seconds(s: float) -> str:
    """Human-readable duration: ``850 us``, ``12.3 ms``, ``4.56 s``."""
    if s != s:  # nan
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} us"
    if s < 1.0:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def fmt_bytes(n: float) -> str:
    """Human-readable size (binary units)."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# --- memory ----------------------------------------------------------------------------


@dataclass
class MemoryReport:
    """Resident memory seen while a block ran (this process and its children).

    Attributes
    ----------
    baseline : int
        Bytes resident in every process seen, summed, when sampling started
        (a process first seen later counts its first sample as its baseline).
    peak_total : int
        Highest sum of resident bytes over the processes at one sample.
    peak_increase : int
        Highest sum over processes of (resident now - that process's baseline):
        the memory the measured work itself needed.
    samples : int
        Number of samples taken.
    """

    baseline: int = 0
    peak_total: int = 0
    peak_increase: int = 0
    samples: int = 0
    per_process: dict[int, tuple[int, int]] = field(default_factory=dict)


class PeakMemory:
    """Sample resident memory (RSS) of this process and its children in a thread.

    ``psutil`` sampling catches memory used by C libraries and worker
    processes, which ``tracemalloc`` does not see. Use as a context manager::

        with PeakMemory(interval=0.02) as mem:
            work()
        print(fmt_bytes(mem.report.peak_increase))
    """

    def __init__(self, interval: float = 0.02, *, children: bool = True) -> None:
        import psutil

        self._psutil = psutil
        self._me = psutil.Process()
        self.interval = interval
        self.children = children
        self.report = MemoryReport()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _procs(self) -> list[Any]:
        procs = [self._me]
        if self.children:
            try:
                procs += self._me.children(recursive=True)
            except self._psutil.Error:
                pass
        return procs

    def sample(self) -> None:
        """Take one sample now."""
        r = self.report
        total = 0
        increase = 0
        for p in self._procs():
            try:
                rss = p.memory_info().rss
            except self._psutil.Error:
                continue
            base, peak = r.per_process.get(p.pid, (rss, rss))
            if p.pid not in r.per_process:
                r.baseline += rss
            r.per_process[p.pid] = (base, max(peak, rss))
            total += rss
            increase += max(0, rss - base)
        r.peak_total = max(r.peak_total, total)
        r.peak_increase = max(r.peak_increase, increase)
        r.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakMemory:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def max_rss_bytes() -> int:
    """Peak resident memory of this process so far (``getrusage``), in bytes."""
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(kb) * (1 if sys.platform == "darwin" else 1024)


@contextmanager
def traced_peak() -> Iterator[dict[str, int]]:
    """Peak bytes allocated by Python objects (``tracemalloc``) inside the block."""
    import tracemalloc

    out: dict[str, int] = {}
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    try:
        yield out
    finally:
        out["peak"] = tracemalloc.get_traced_memory()[1] - base
        if started:
            tracemalloc.stop()


# --- results ---------------------------------------------------------------------------


@dataclass
class Row:
    """One measurement: ours against a reference, with the goal it is held to.

    ``ours`` and ``reference`` are seconds unless ``unit`` says otherwise
    (``"B"`` for bytes, ``"/s"`` for a rate, ``""`` for a plain number).
    ``met`` is None when there is no pass/fail goal.
    """

    bench: str
    case: str
    ours: float
    reference: float | None = None
    goal: str = ""
    met: bool | None = None
    unit: str = "s"
    note: str = ""

    def _fmt(self, v: float | None) -> str:
        if v is None:
            return "-"
        if self.unit == "s":
            return fmt_seconds(v)
        if self.unit == "B":
            return fmt_bytes(v)
        if self.unit == "/s":
            return f"{v:,.0f}/s"
        return f"{v:.3g}{self.unit}"

    @property
    def ratio(self) -> float | None:
        """``ours / reference`` or None without a reference."""
        if self.reference is None:
            return None
        return ratio(self.ours, self.reference)

    def markdown(self) -> str:
        """The row as a markdown table line."""
        r = self.ratio
        met = "-" if self.met is None else ("yes" if self.met else "**no**")
        case = self.case + (f" ({self.note})" if self.note else "")
        return (
            f"| {self.bench} | {case} | {self._fmt(self.ours)} | {self._fmt(self.reference)} "
            f"| {'-' if r is None else f'{r:.2f}'} | {self.goal or '-'} | {met} |"
        )


def print_rows(rows: Sequence[Row], *, title: str = "") -> None:
    """Print the rows as a markdown table (header included), after a blank line."""
    print()
    if title:
        print(f"<!-- {title} -->")
    print(TABLE_HEADER)
    for row in rows:
        print(row.markdown())
    sys.stdout.flush()


def machine_info() -> dict[str, str]:
    """Where the numbers come from: CPUs, memory, CPU model, OS, Python, date, load."""
    info = {
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "cpu": platform.processor() or platform.machine(),
        "ram": "unknown",
        "os": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        info["ram"] = fmt_bytes(psutil.virtual_memory().total)
    except ImportError:
        pass
    try:
        info["load"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        pass
    return info


def print_machine() -> None:
    """Print :func:`machine_info` as one comment line (kept with the table)."""
    info = machine_info()
    print("<!-- machine: " + "; ".join(f"{k}={v}" for k, v in info.items()) + " -->")


def tests_on_path() -> None:
    """Make ``tests/helpers`` importable as ``helpers`` (the real HTTP test server)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
