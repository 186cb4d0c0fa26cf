"""Benchmark: tracking accuracy, scored by the Cell Tracking Challenge's metrics (py-ctcmetrics).

On the bundled spots time-lapse (ground-truth tracks), tracks found by
``track.track_spots`` (napari-fbias, automatic minmass) and by trackpy called
directly (``trackpy.batch`` + ``trackpy.link`` with the same diameter,
percentile, search range and memory, with the minmass napari-fbias chose and
with trackpy's default) are written in the CTC result format (spots as
3-pixel discs, the ground truth too) and scored with DET and TRA. On a
synthetic dividing population, ``track.track_labels`` with and without
``divisions`` is scored the same way (its ground truth has the divisions).

laptrack (``LapTrack.predict_dataframe``, the linear-assignment tracker of
Jaqaman et al. 2008) links the same detections in both cases: trackpy's spots
found with napari-fbias' minmass (so only the linking differs), and the label
centroids of the dividing cells, with splitting on. Its cutoffs are the squared
search ranges (its metric is the squared distance) and its gap closing spans as
many frames as trackpy's ``memory``.

    python bench/bench_track_ctc.py
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from common import Row, add_common_args, print_machine, print_rows

RADIUS = 3


def ground_truth(res: Path, gt: Path) -> Path:
    """Copy a CTC result folder into the scorer's ground-truth layout (``TRA/man_track*``)."""
    tra = gt / "TRA"
    tra.mkdir(parents=True)
    for mask in sorted(res.glob("mask*.tif")):
        shutil.copy(mask, tra / mask.name.replace("mask", "man_track"))
    shutil.copy(res / "res_track.txt", tra / "man_track.txt")
    return gt


def score(tmp: Path, name: str, gt: Path, write: object) -> dict[str, float]:
    from ctc_metrics import evaluate_sequence

    res = write(tmp / name)  # type: ignore[operator]
    out = evaluate_sequence(str(res), str(gt), ["DET", "TRA"], 1)
    return {k: float(out[k]) for k in ("DET", "TRA")}


def trackpy_spots(movie: np.ndarray, minmass: float | None) -> pd.DataFrame:
    import trackpy

    trackpy.quiet()
    return trackpy.batch(movie, 7, minmass=minmass, percentile=64.0, processes=1)


def direct_trackpy(movie: np.ndarray, minmass: float | None) -> pd.DataFrame:
    import trackpy

    linked = trackpy.link(trackpy_spots(movie, minmass), 6.0, memory=2, t_column="frame")
    return pd.DataFrame(
        {
            "track_id": linked["particle"].to_numpy() + 1,
            "t": linked["frame"].to_numpy(),
            "y": linked["y"].to_numpy(),
            "x": linked["x"].to_numpy(),
        }
    )


def direct_laptrack(
    points: pd.DataFrame, search_range: float, memory: int, *, splitting: bool = False
) -> pd.DataFrame:
    """Link ``points`` (``frame, y, x`` and any other columns) with laptrack."""
    from laptrack import LapTrack

    cutoff = float(search_range) ** 2
    lt = LapTrack(
        cutoff=cutoff,
        gap_closing_cutoff=cutoff,
        gap_closing_max_frame_count=memory,
        splitting_cutoff=cutoff if splitting else False,
    )
    found, splits, _ = lt.predict_dataframe(
        points.reset_index(drop=True), ["y", "x"], frame_col="frame", only_coordinate_cols=False
    )
    out = pd.DataFrame(
        {
            "track_id": found["track_id"].to_numpy() + 1,
            "t": found["frame"].to_numpy(),
            "y": found["y"].to_numpy(),
            "x": found["x"].to_numpy(),
        }
    )
    if "label" in found:
        out["label"] = found["label"].to_numpy()
    parent = {int(c) + 1: int(p) + 1 for p, c in splits.to_numpy()} if len(splits) else {}
    out["parent_track_id"] = out["track_id"].map(parent).fillna(0).astype(int)
    return out


def label_centroids(cells: np.ndarray) -> pd.DataFrame:
    """One row per label per frame: ``frame, y, x, label``."""
    from skimage.measure import regionprops_table

    parts = []
    for t, frame in enumerate(cells):
        props = pd.DataFrame(regionprops_table(frame, properties=("label", "centroid")))
        props = props.rename(columns={"centroid-0": "y", "centroid-1": "x"})
        props["frame"] = t
        parts.append(props)
    return pd.concat(parts, ignore_index=True)


def dividing_population(n_cells: int = 12, seed: int = 0) -> tuple[np.ndarray, pd.DataFrame]:
    """Cells that each divide once (at a random frame), and their true lineage."""
    from skimage.draw import disk

    rng = np.random.default_rng(seed)
    cols = int(np.ceil(np.sqrt(n_cells)))
    n_t, side = 12, 64 * cols
    movie = np.zeros((n_t, side, side), np.uint16)
    rows = []
    next_id = 1
    for k in range(n_cells):
        cy, cx = 32 + 64 * (k // cols), 32 + 64 * (k % cols)
        at = int(rng.integers(3, n_t - 3))
        mother, a, b = next_id, next_id + 1, next_id + 2
        next_id += 3
        for t in range(n_t):
            if t < at:
                rr, cc = disk((cy, cx), 10, shape=movie.shape[1:])
                movie[t][rr, cc] = mother
                rows.append((mother, t, cy, cx, 0))
            else:
                d = t - at
                for tid, dy in ((a, -6 - d), (b, 6 + d)):
                    rr, cc = disk((cy + dy, cx), 6, shape=movie.shape[1:])
                    movie[t][rr, cc] = tid
                    rows.append((tid, t, cy + dy, cx, mother))
    truth = pd.DataFrame(rows, columns=["track_id", "t", "y", "x", "parent_track_id"])
    truth["label"] = truth["track_id"]
    return movie, truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeat=1)
    parser.parse_args()

    from napari_fbias.io.samples import load_spots_timelapse
    from napari_fbias.io.tracks_write import write_ctc
    from napari_fbias.ops.track import _auto_minmass, track_labels, track_spots

    image, truth = load_spots_timelapse()
    movie = np.asarray(image.levels[0])
    shape = movie.shape
    rows = []
    with tempfile.TemporaryDirectory(prefix="fbias-ctc-") as name:
        tmp = Path(name)
        gt = ground_truth(
            write_ctc(tmp / "truth", None, truth, shape=shape, radius=RADIUS), tmp / "gt"
        )
        ours = track_spots(movie, axes="tyx")
        n_t = shape[0]
        frames = [movie[t].astype(np.float64) for t in sorted({0, n_t // 2, n_t - 1})]
        kwargs = {"diameter": 7, "percentile": 64.0, "noise_size": 1.0, "separation": None}
        minmass = _auto_minmass(frames, kwargs)
        runs = {
            "track.track_spots": ours,
            f"trackpy direct, minmass {minmass:.0f} (ours)": direct_trackpy(movie, minmass),
            "trackpy direct, default minmass": direct_trackpy(movie, None),
            f"laptrack direct on trackpy's spots, minmass {minmass:.0f}": direct_laptrack(
                trackpy_spots(movie, minmass), 6.0, 2
            ),
        }
        for i, (label, tracks) in enumerate(runs.items()):
            s = score(
                tmp,
                f"{i:02d}_RES",
                gt,
                lambda p, t=tracks: write_ctc(p, None, t, shape=shape, radius=RADIUS),
            )
            print(f"{label:45s} DET {s['DET']:.3f}  TRA {s['TRA']:.3f}")
            rows.append(Row("track_ctc", f"spots sample, {label}: DET", s["DET"], None, unit=""))
            rows.append(Row("track_ctc", f"spots sample, {label}: TRA", s["TRA"], None, unit=""))

        cells, lineage = dividing_population()
        gt_div = ground_truth(write_ctc(tmp / "truth_div", cells, lineage), tmp / "gt_div")
        for divisions in (True, False):
            tracks = track_labels(cells, axes="tyx", divisions=divisions)
            s = score(tmp, f"div_{divisions}", gt_div, lambda p, t=tracks: write_ctc(p, cells, t))
            label = f"12 dividing cells, track_labels divisions={divisions}"
            print(f"{label:45s} DET {s['DET']:.3f}  TRA {s['TRA']:.3f}")
            rows.append(Row("track_ctc", f"{label}: TRA", s["TRA"], None, unit=""))
        for splitting in (True, False):
            tracks = direct_laptrack(label_centroids(cells), 10.0, 2, splitting=splitting)
            s = score(tmp, f"lap_{splitting}", gt_div, lambda p, t=tracks: write_ctc(p, cells, t))
            label = f"12 dividing cells, laptrack direct splitting={splitting}"
            print(f"{label:45s} DET {s['DET']:.3f}  TRA {s['TRA']:.3f}")
            rows.append(Row("track_ctc", f"{label}: TRA", s["TRA"], None, unit=""))
    print_machine()
    print_rows(rows, title="bench_track_ctc")


if __name__ == "__main__":
    main()
