"""Benchmark: linking through ``track.link_spots`` versus ``trackpy.link`` called directly.

Links >= 100 000 detections (synthetic random walks: 1000 particles x 100 frames
by default) both ways in the same process, several rounds in alternation, and
prints the best time of each, the overhead of our op and detections per second.
The op should stay a thin wrapper: target overhead <= 5 %.

    python bench/bench_track.py [--quick] [--particles 1000] [--frames 100] [--repeat 3]

``--quick`` links 200 particles x 20 frames once (a CI smoke run, not a measurement).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd
from common import Row, add_common_args, print_machine, print_rows


def random_walks(n_particles: int, n_frames: int, seed: int = 0) -> pd.DataFrame:
    """Spots table of Brownian particles (step 1 px per axis) in a 1000 x 1000 px field."""
    rng = np.random.default_rng(seed)
    side = 1000.0 * max(1.0, (n_particles / 1000.0) ** 0.5)
    start = rng.uniform(0, side, (1, n_particles, 2))
    pos = start + np.cumsum(rng.normal(0.0, 1.0, (n_frames, n_particles, 2)), axis=0)
    return pd.DataFrame(
        {
            "t": np.repeat(np.arange(n_frames, dtype=np.int64), n_particles),
            "y": pos[..., 0].ravel(),
            "x": pos[..., 1].ravel(),
            "mass": rng.uniform(100, 200, n_frames * n_particles),
        }
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--particles", type=int, default=1000)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--search-range", type=float, default=5.0)
    add_common_args(parser)
    args = parser.parse_args()
    if args.quick:
        args.particles, args.frames, args.repeat = 200, 20, 1

    import trackpy

    from napari_fbias.ops.track import link_spots

    trackpy.quiet()
    spots = random_walks(args.particles, args.frames)
    n = len(spots)
    sr = args.search_range
    # warm up (numba compilation, imports) outside the timings
    small = spots[spots["t"] < 3]
    trackpy.link(small, sr, t_column="t")
    link_spots(small, search_range=sr)

    direct: list[float] = []
    ours: list[float] = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        ref = trackpy.link(spots, sr, t_column="t")
        direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        tracks = link_spots(spots, search_range=sr)
        ours.append(time.perf_counter() - t0)

    assert len(tracks) == n and tracks["track_id"].nunique() == ref["particle"].nunique()
    best_direct, best_ours = min(direct), min(ours)
    print(f"detections              : {n}")
    print(f"tracks                  : {tracks['track_id'].nunique()}")
    print(f"trackpy.link (best of {args.repeat}) : {best_direct:.3f} s")
    print(f"track.link_spots (best) : {best_ours:.3f} s")
    print(f"overhead                : {100 * (best_ours / best_direct - 1):+.1f} %")
    print(f"detections/s (ours)     : {n / best_ours:,.0f}")
    print(f"detections/s (trackpy)  : {n / best_direct:,.0f}")
    case = f"{n} detections ({args.particles} x {args.frames})"
    print_machine()
    print_rows(
        [
            Row(
                "track",
                f"{case}: link_spots vs trackpy.link",
                best_ours,
                best_direct,
                goal="overhead <= 5 %, >= 100 000 detections",
                met=best_ours <= 1.05 * best_direct and n >= 100_000,
            ),
            Row(
                "track",
                f"{case}: detections/s, ours vs trackpy",
                n / best_ours,
                n / best_direct,
                unit="/s",
            ),
        ],
        title=f"bench_track quick={args.quick} repeat={args.repeat}",
    )


if __name__ == "__main__":
    main()
