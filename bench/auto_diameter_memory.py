"""Peak memory of the automatic spot diameter of a chunk-wise spot tracking run, alone.

``spot_chunks._auto_diameter`` measures the typical spot size on three
sampled frames of the movie (the whole frame up to 4096^2 pixels, else a
sample of tiles over it: ``chunk_stitch.frame_view``). This prints the
diameter chosen, the time and the peak RSS added during that phase (sampled
every 10 ms by a thread), after the NaN/maximum passes that make its input
(``spot_chunks._prepare_for``), which are not counted.

    python bench/auto_diameter_memory.py /tmp/fbias_bench/movie_3x32768x32768.ome.zarr

The movies are those ``bench_chunked_memory.py --data DIR`` keeps (OME-Zarr,
``t, y, x``).
"""

from __future__ import annotations

import argparse
import gc
import sys
import threading
import time


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import psutil

    from napari_fbias.io.open import open_image
    from napari_fbias.ops import spot_chunks

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("movies", nargs="+", help="OME-Zarr movies (t, y, x)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per movie")
    args = parser.parse_args(argv)
    proc = psutil.Process()
    for path in args.movies:
        image = open_image(path)
        x = image.levels[0]
        x = x.reshape(x.shape[:1] + x.shape[-2:]) if x.ndim > 3 else x
        prep = spot_chunks._prepare_for(x, False)
        n_t = int(x.shape[0])
        sample = sorted({0, n_t // 2, n_t - 1})
        for _ in range(args.repeat):
            gc.collect()
            base = proc.memory_info().rss
            peak = [base]
            stop = threading.Event()

            def watch(peak: list[int] = peak, stop: threading.Event = stop) -> None:
                while not stop.is_set():
                    peak[0] = max(peak[0], proc.memory_info().rss)
                    time.sleep(0.01)

            thread = threading.Thread(target=watch, daemon=True)
            thread.start()
            t0 = time.perf_counter()
            try:
                d = spot_chunks._auto_diameter(x, prep, sample, None)
            finally:
                seconds = time.perf_counter() - t0
                stop.set()
                thread.join()
            added = (max(peak[0], proc.memory_info().rss) - base) / 2**20
            print(
                f"{path.rstrip('/').split('/')[-1]} {tuple(int(n) for n in x.shape)} "
                f"{np.dtype(x.dtype)}: diameter {d}, {seconds:.1f} s, {added:.1f} MiB added",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
