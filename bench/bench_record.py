"""How long does recording one step take (check + journal line + fsync)?

Target: the whole ``record_step`` (validation, journal append with flush and
fsync, session update, signal) under 1 ms. Prints per-call times for new
steps and for re-runs (replacements), with and without fsync, so that the
disk's share is visible.

    python bench/bench_record.py            # 50 rounds (100 steps, 50 re-runs)
    python bench/bench_record.py --n 500 --dir /path/on/the/real/disk
    python bench/bench_record.py --quick    # 5 rounds: a CI smoke run
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import Row, add_common_args, print_machine, print_rows

from napari_fbias.session import ImageRef, SessionRecorder


def run(folder: Path, n: int, fsync: bool) -> dict[str, list[float]]:
    rec = SessionRecorder.start("bench", user_name="bench", folder=folder, fsync=fsync)
    rec.add_image(ImageRef(name="img", source="/d/img.zarr", axes="cyx", shape=(2, 512, 512)))
    rec.add_approach("bench", "bench")
    rec.changed.connect(lambda event: None)  # a listening widget
    rec.record_step("preprocess.gaussian", {}, {"image": "img"}, "warm-up")  # loads the ops
    times: dict[str, list[float]] = {"new step": [], "re-run (replace)": [], "note": []}
    for i in range(n):
        t0 = time.perf_counter()
        rec.record_step(
            "preprocess.gaussian",
            {"sigma": 1.0},
            {"image": "img"},
            f"g{i}",
            select={"image": {"c": 0}},
        )
        t1 = time.perf_counter()
        rec.record_step("segment.threshold", {"method": "li"}, {"image": f"g{i}"}, f"labels{i}")
        t2 = time.perf_counter()
        rec.record_step("segment.threshold", {"method": "otsu"}, {"image": f"g{i}"}, f"labels{i}")
        t3 = time.perf_counter()
        rec.set_notes(f"note {i}")
        t4 = time.perf_counter()
        times["new step"] += [t1 - t0, t2 - t1]
        times["re-run (replace)"].append(t3 - t2)
        times["note"].append(t4 - t3)
    rec.close()
    return times


def report(label: str, times: dict[str, list[float]]) -> None:
    print(f"\n{label}")
    for what, ts in times.items():
        us = sorted(t * 1e6 for t in ts)
        p95 = us[int(0.95 * (len(us) - 1))]
        print(
            f"  {what:18s} median {statistics.median(us):8.1f} us   "
            f"mean {statistics.fmean(us):8.1f} us   p95 {p95:8.1f} us"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument(
        "--n", type=int, default=50, help="rounds of 2 steps + 1 re-run + 1 note (default 50)"
    )
    ap.add_argument("--dir", type=Path, default=None, help="folder for the sessions")
    add_common_args(ap, repeat=1)
    args = ap.parse_args()
    if args.quick:
        args.n = 5
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        synced = run(Path(tmp) / "fsync", args.n, fsync=True)
        report("with fsync (the default)", synced)
        unsynced = run(Path(tmp) / "nofsync", args.n, fsync=False)
        report("without fsync (recorder alone)", unsynced)
        (journal,) = (Path(tmp) / "fsync" / "journals").glob("*.jsonl")  # one recorder: one file
        size = journal.stat().st_size
        print(f"\njournal: {size / 1024:.0f} KiB for {4 * args.n + 5} events")
    rows = []
    for what in ("new step", "re-run (replace)"):
        with_fsync = statistics.median(synced[what])
        without = statistics.median(unsynced[what])
        rows.append(
            Row(
                "record",
                f"{what}, median, with fsync (reference: without)",
                with_fsync,
                without,
                goal="< 1 ms",
                met=with_fsync < 1e-3,
            )
        )
        rows.append(
            Row(
                "record",
                f"{what}, median, without fsync",
                without,
                goal="< 1 ms",
                met=without < 1e-3,
            )
        )
    print_machine()
    print_rows(rows, title=f"bench_record quick={args.quick} n={args.n}")


if __name__ == "__main__":
    main()
