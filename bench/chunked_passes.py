"""Peak memory per pass of a chunk-wise pipeline run: where the memory of a run goes.

Runs one of ``bench_chunked_memory``'s pipelines on an OME-Zarr image with a
memory budget, as that bench's child does (a warm-up run on a small image
first, then the measured run and ``write_results``), and prints the peak RSS
added during each pass over the blocks (each ``chunk_stats.iter_batches`` call,
named by the function that made it) and each region-by-region write
(checkpoints and the results).

    python bench/chunked_passes.py nuclei+measure /data/slide_16384.ome.zarr \\
        /data/warm_2048x2048.ome.zarr --budget 64MiB

The images are those ``bench_chunked_memory.py --data DIR`` keeps.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _bytes(text: str) -> int:
    units = {"kib": 2**10, "mib": 2**20, "gib": 2**30}
    low = text.strip().lower()
    for u, f in units.items():
        if low.endswith(u):
            return int(float(low[: -len(u)]) * f)
    return int(low)


#: Steps after the passes that are phases of their own: (module, function).
MARKED = [
    ("napari_fbias.ops.link_tiles", "link_sorted_in_tiles"),
    ("napari_fbias.ops.spot_tables", "tracks_on_disk"),
    ("napari_fbias.pipeline.outputs", "write_results"),
]


def _mark(module: str, name: str, phase: list[str], count: list[int]) -> Callable[[], None]:
    """Make ``module.name`` start a phase of its own when called; return the undo."""
    mod = importlib.import_module(module)
    real = getattr(mod, name)

    def marked(*a, **k):  # type: ignore[no-untyped-def]
        phase[0] = f"{name} after pass {count[0]}"
        return real(*a, **k)

    setattr(mod, name, marked)
    return lambda: setattr(mod, name, real)


def main(argv: list[str] | None = None) -> int:
    import psutil
    from bench_chunked_memory import PIPELINES, _run

    import napari_fbias.io.ome_zarr_write as writer
    import napari_fbias.ops.chunk_stats as stats

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", choices=sorted(PIPELINES))
    parser.add_argument("image", help="the OME-Zarr image to measure")
    parser.add_argument("warm", help="a small OME-Zarr image for the warm-up run")
    parser.add_argument("--budget", type=_bytes, default=64 * 2**20, help="e.g. 64MiB")
    args = parser.parse_args(argv)
    pipeline = PIPELINES[args.pipeline]
    with tempfile.TemporaryDirectory() as out:
        _run(pipeline, args.warm, args.budget, out)

    proc = psutil.Process()
    phase = ["before the first pass"]
    peaks: dict[str, int] = {}
    stop = threading.Event()
    count = [0]

    def sample() -> None:
        while not stop.is_set():
            rss = proc.memory_info().rss
            peaks[phase[0]] = max(peaks.get(phase[0], 0), rss)
            time.sleep(0.01)

    real_batches, real_store = stats.iter_batches, writer.store_in_regions
    plumbing = {"iter_batches", "batches", "compute_in_batches", "fold_blocks", "per_block"}

    def batches(calls, *a, **k):  # type: ignore[no-untyped-def]
        count[0] += 1
        names = [f.name for f in traceback.extract_stack()]
        caller = next((n for n in reversed(names) if n not in plumbing), "?")
        phase[0] = f"pass {count[0]}: {caller} ({len(calls)} blocks)"
        yield from real_batches(calls, *a, **k)

    def store(*a, **k):  # type: ignore[no-untyped-def]
        phase[0] = f"write after pass {count[0]}"
        return real_store(*a, **k)

    stats.iter_batches, writer.store_in_regions = batches, store
    undo = [_mark(module, name, phase, count) for module, name in MARKED]
    base = proc.memory_info().rss
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    t0 = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory() as out:
            info = _run(pipeline, args.image, args.budget, out)
    finally:
        stop.set()
        thread.join()
        stats.iter_batches, writer.store_in_regions = real_batches, real_store
        for restore in undo:
            restore()
    seconds = time.perf_counter() - t0
    print(f"{args.pipeline} on {Path(args.image).name}, budget {args.budget / 2**20:.0f} MiB:")
    print(f"  {seconds:.0f} s, chunk-wise: {', '.join(info['chunked'])}")
    for name, rss in peaks.items():
        print(f"  {name:55s} {(rss - base) / 2**20:7.1f} MiB added")
    print(f"  {'peak':55s} {(max(peaks.values()) - base) / 2**20:7.1f} MiB added")
    return 0


if __name__ == "__main__":
    sys.exit(main())
