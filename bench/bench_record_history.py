"""Recording overhead against the single-writer recorder it replaced, both run as they are.

The shared recorder (one journal per napari, merged by Lamport clock; issue 10)
is timed against the recorder of commit ``f8293ee^``, the last single-writer
one (one journal, one lock), checked out from this repository's history into a
temporary folder. Each runs in its own worker process (a package cannot be
imported twice in one), and the two are driven in alternating rounds of the
same calls, so that disk and machine noise fall on both alike:

* ``record_step``: a gaussian step recorded onto a new layer (what a napari
  widget records after each run), and the same step re-run onto the same layer
  (which replaces it);
* ``set_notes``: a note typed into the active approach.

Each call is journaled with fsync (the default, what an analyst gets); a second
pass without fsync shows the CPU alone. Goal of issue 10: the shared recorder
within 10 % of the single writer, per step, with fsync.

    python bench/bench_record_history.py [--rounds 20] [--calls 50] [--dir /path/on/disk]

Needs a git checkout (the old recorder comes from ``git archive``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from common import Row, print_machine, print_rows

#: The last single-writer recorder: the parent of the commit that introduced sharing.
SINGLE_WRITER = "f8293ee^"
REPO = Path(__file__).resolve().parents[1]

WORKER = textwrap.dedent(
    """
    import json, sys, tempfile, time
    from pathlib import Path
    from napari_fbias.session.model import ImageRef
    from napari_fbias.session.recorder import SessionRecorder

    rec = SessionRecorder.start(
        "bench", user_name="bench", folder=Path(sys.argv[1]) / "s", fsync=sys.argv[2] == "1"
    )
    rec.add_image(
        ImageRef(name="cells", source="/data/cells.ome.zarr", axes="yx", shape=(64, 64)),
        layers={"cells": {}},
    )
    rec.add_approach("A", "bench")
    n = 0
    def new_step():
        global n
        n += 1
        rec.record_step("preprocess.gaussian", {"sigma": 2}, {"image": "cells"}, f"out {n}")
    def rerun():
        rec.record_step("preprocess.gaussian", {"sigma": 1}, {"image": "cells"}, "out 1")
    def note():
        global n
        n += 1
        rec.set_notes(f"note {n}")
    CALLS = {"new step": new_step, "rerun step": rerun, "note": note}
    for line in sys.stdin:
        what, count = line.rsplit(" ", 1)
        fn = CALLS[what]
        times = []
        for _ in range(int(count)):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        print(json.dumps(times), flush=True)
    rec.close()
    """
)


def have_history() -> bool:
    """True when this checkout holds the single-writer commit (not a shallow or exported copy)."""
    probe = ["git", "-C", str(REPO), "cat-file", "-e", f"{SINGLE_WRITER}^{{commit}}"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def old_tree(dest: Path) -> Path:
    """Write the single-writer recorder's source tree under ``dest``; return its ``src``."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", SINGLE_WRITER, "src/napari_fbias"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "src"


def worker(src: Path, folder: Path, fsync: bool) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(src), FBIAS_OUTBOX=str(folder / "outbox"))
    folder.mkdir(parents=True)
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(folder), "1" if fsync else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )


def ask(proc: subprocess.Popen, what: str, count: int) -> list[float]:
    proc.stdin.write(f"{what} {count}\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="alternating rounds per call")
    parser.add_argument("--calls", type=int, default=50, help="calls per round")
    parser.add_argument("--dir", help="folder on the disk to record on (default: a temp folder)")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 10 calls")
    args = parser.parse_args()
    rounds, calls = (3, 10) if args.quick else (args.rounds, args.calls)
    print_machine()
    if not have_history():
        print(f"skipped: this checkout lacks commit {SINGLE_WRITER} (needs the git history)")
        return
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp_path = Path(tmp)
        old_src = old_tree(tmp_path)
        for fsync in (True, False):
            rows += compare(old_src, tmp_path / ("fsync" if fsync else "cpu"), fsync, rounds, calls)
    print_rows(rows)


def compare(old_src: Path, folder: Path, fsync: bool, rounds: int, calls: int) -> list[Row]:
    """Alternate rounds of each call between the two recorders; one row per call."""
    rows = []
    how = "fsync" if fsync else "no fsync, CPU only"
    procs = {
        "shared": worker(REPO / "src", folder / "shared", fsync),
        "single": worker(old_src, folder / "single", fsync),
    }
    try:
        for what in ("new step", "rerun step", "note"):
            times: dict[str, list[float]] = {"shared": [], "single": []}
            for r in range(rounds):
                order = ("shared", "single") if r % 2 == 0 else ("single", "shared")
                for who in order:
                    times[who] += ask(procs[who], what, calls)
            ours, ref = (statistics.median(times[k]) for k in ("shared", "single"))
            print(f"{what} ({how}): {ours * 1e6:.0f} us shared, {ref * 1e6:.0f} us single writer")
            rows.append(
                Row(
                    "record_history",
                    f"record one {what} ({how}): shared recorder vs {SINGLE_WRITER} single writer",
                    ours,
                    ref,
                    goal="within 10 %" if fsync else "",
                    met=ours <= 1.10 * ref if fsync else None,
                    note=f"median of {len(times['shared'])} calls",
                )
            )
    finally:
        for p in procs.values():
            p.stdin.close()
            p.wait(timeout=60)
    return rows


if __name__ == "__main__":
    main()
