"""Peak RSS added by a chunk-wise run (gaussian + otsu threshold, budget 64 MiB), per phase.

The base is the RSS after the same run on a 2048 x 2048 image (libraries, thread
pool and allocator arenas warmed up), so the peak is what the image adds.

    python bench/bench_chunked_memory.py SIDE SCHEDULER   # e.g. 8192 threads

The image (uint16 OME-Zarr, 1024 chunks) is written once to /tmp/fbias_prof.
"""

import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import dask
import psutil
from bench_segment import CHUNKED_PIPELINE, _warm_worker, make_big_image

from napari_fbias.pipeline import Pipeline
from napari_fbias.pipeline.outputs import write_results
from napari_fbias.pipeline.runner import run_pipeline

side = int(sys.argv[1])
sched = sys.argv[2]
root = Path("/tmp/fbias_prof")
root.mkdir(exist_ok=True)
path = make_big_image(root / f"big_{side}_1024.ome.zarr", side, 1024)
_warm_worker()
# the same run on a small image first, with the same scheduler: the memory the libraries,
# the thread pool and its allocator arenas take is then in the base, not in the image's peak
small = make_big_image(root / "big_2048_1024.ome.zarr", 2048, 1024)
with dask.config.set(scheduler=sched), tempfile.TemporaryDirectory(dir="/tmp") as out:
    write_results(
        run_pipeline(
            Pipeline.from_dict(CHUNKED_PIPELINE), str(small), memory_limit=64 * 2**20, chunks=1024
        ),
        out,
    )
proc = psutil.Process()
peak = [0]
stop = False
phase = ["init"]
peaks = {}


def sample():
    while not stop:
        r = proc.memory_info().rss
        peaks[phase[0]] = max(peaks.get(phase[0], 0), r)
        time.sleep(0.01)


base = proc.memory_info().rss
th = threading.Thread(target=sample)
th.start()
with dask.config.set(scheduler=sched), tempfile.TemporaryDirectory(dir="/tmp") as out:
    t0 = time.time()
    phase[0] = "run"
    res = run_pipeline(
        Pipeline.from_dict(CHUNKED_PIPELINE), str(path), memory_limit=64 * 2**20, chunks=1024
    )
    phase[0] = "write"
    write_results(res, out)
    t1 = time.time()
stop = True
th.join()
img = side * side * 2
print(
    side,
    sched,
    f"{t1 - t0:.1f}s",
    {k: f"{(v - base) / 2**20:.0f}MiB ({(v - base) / img:.2f}x)" for k, v in peaks.items()},
)
