"""Peak RSS added by the tracks writers of ``fbias run`` for 2 000 000 rows on disk.

A synthetic tracks table like the one spot tracking of a 3 x 32768^2 movie
finds (2 000 000 detections in 700 000 tracks of 1-3 detections, 15 columns,
sorted by ``track_id, t``) is written to a ColumnTable, then the CSV, GEFF and
CTC writers are run on it one after the other; a thread samples the RSS
(psutil) every 5 ms and each writer's peak above the RSS before it is printed.

The CTC masks cannot hold 700 000 labels (16 bits): that writer refuses the
table, as ``write_results`` then records. It is also run on the largest table
that fits (65 000 tracks of 3 detections in 3 frames of 32768^2), which paints
discs tile by tile.

    python bench/tracks_write_memory.py [--rows 2000000] [--tracks 700000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

from napari_fbias.io.column_table import ColumnTable, ColumnWriter
from napari_fbias.io.tracks_geff import write_geff
from napari_fbias.io.tracks_write import write_ctc, write_tracks_csv

MiB = 2**20
SIDE = 32768
FRAMES = 3


def make_table(n_rows: int, n_tracks: int, seed: int = 0) -> ColumnTable:
    """Tracks of 1-3 detections (sorted by track_id, t), written piece by piece."""
    rng = np.random.default_rng(seed)
    lengths = np.ones(n_tracks, np.int64)  # grow tracks to 2, 3 detections until n_rows
    extra = n_rows - n_tracks
    if not 0 <= extra <= 2 * n_tracks:
        raise SystemExit("rows must be between tracks and 3 x tracks")
    twos = min(extra, n_tracks)
    lengths[:twos] += 1
    lengths[: extra - twos] += 1
    rng.shuffle(lengths)
    f64, i32 = np.float64, np.int32
    columns = {
        "track_id": i32, "t": i32, "y": f64, "x": f64, "mass": f64, "size": f64,
        "ecc": f64, "signal": f64, "raw_mass": f64, "ep": f64, "frame": i32, "speed": f64,
        "track_length": i32, "displacement": f64, "mean_speed": f64, "straightness": f64,
    }  # fmt: skip
    writer = ColumnWriter(columns, name="bench-tracks", attrs={"spacing": None})
    step = 100_000  # tracks at a time
    for a in range(0, n_tracks, step):
        ln = lengths[a : a + step]
        tid = np.repeat(np.arange(a + 1, a + 1 + len(ln)), ln)
        first = np.repeat(np.cumsum(ln) - ln, ln)
        k = np.arange(len(tid)) - first  # detection number within its track
        start = np.repeat(rng.integers(0, FRAMES - ln + 1), ln)
        m = len(tid)
        piece = {c: rng.random(m) for c in columns}
        piece.update(
            track_id=tid,
            t=start + k,
            frame=start + k,
            y=rng.uniform(0, SIDE, m),
            x=rng.uniform(0, SIDE, m),
            track_length=np.repeat(ln, ln),
            speed=np.where(k == 0, np.nan, rng.random(m)),
        )
        writer.append(piece)
    return writer.finish()


class Peak:
    """Sample this process's RSS in a thread; the peak above the RSS at the start."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak = 0
        self._stop = threading.Event()

    def __enter__(self) -> Peak:
        gc.collect()
        self.base = self.proc.memory_info().rss
        self.peak = self.base
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def added(self) -> float:
        return (self.peak - self.base) / MiB


def run(name: str, func) -> None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    with Peak() as p:
        try:
            func()
            note = ""
        except ValueError as exc:
            note = f"  (refused: {exc})"
    print(f"{name:32s} peak RSS added {p.added:7.1f} MiB  {time.perf_counter() - t0:6.1f} s{note}")


def warm_up() -> None:
    """Import what the writers import (zarr, the GEFF spec, tifffile): not the writers' memory.

    ``fbias run`` has imported them before its tracks are written (the OME-Zarr
    store of the input is written first).
    """
    import geff_spec  # noqa: F401
    import tifffile  # noqa: F401
    import zarr  # noqa: F401


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--tracks", type=int, default=700_000)
    args = ap.parse_args()
    warm_up()
    table = make_table(args.rows, args.tracks)
    small = make_table(3 * 65_000, 65_000, seed=1)
    print(f"table: {len(table)} rows, {len(table.columns)} columns, "
          f"{table.nbytes / MiB:.1f} MiB in memory; RSS now "
          f"{psutil.Process().memory_info().rss / MiB:.1f} MiB")  # fmt: skip
    shape = (FRAMES, SIDE, SIDE)
    with tempfile.TemporaryDirectory(prefix="fbias-bench-") as tmp:
        out = Path(tmp)
        run("CSV", lambda: write_tracks_csv(out / "tracks.csv", table))
        run("GEFF", lambda: write_geff(out / "tracks.geff", table))
        run("CTC", lambda: write_ctc(out / "tracks_ctc", None, table, shape=shape))
        print(f"CTC table that fits: {len(small)} rows, {small.nbytes / MiB:.1f} MiB in memory")
        run(
            "CTC (65 000 tracks, 32768^2)",
            lambda: write_ctc(out / "ctc2", None, small, shape=shape),
        )


if __name__ == "__main__":
    main()
