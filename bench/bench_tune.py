"""Benchmark: tuning ``segment.nuclei`` from 10 annotated objects, against the defaults.

For each image: AP@0.5 (``TP / (TP + FP + FN)``, on the whole ground truth)
of

* ``defaults``: :func:`napari_fbias.ops.segment.nuclei` at its defaults;
* ``otsu+watershed``: a direct scikit-image baseline (Gaussian sigma 1, Otsu
  threshold, holes filled, distance transform, ``peak_local_max`` seeds at
  least 5 pixels apart, watershed);
* ``tuned``: the settings :func:`napari_fbias.pipeline.tune.tune_step` finds
  from the 10 ground-truth objects nearest the image centre (as an analyst
  paints them: a cluster), ``--trials`` trials with a ``--timeout`` budget,
  then applied to the whole image; and the time tuning took;

on images the recipe was not tuned on: generated 1024 x 1024 nuclei of other
sizes, crowded, on an uneven background, an anisotropic 3D stack, and the
real annotated nuclei images that ship inside the ``stardist`` wheel on PyPI
(``stardist/data/images/img2d.tif`` + ``mask2d.tif``, a fluorescence image
of the Data Science Bowl 2018 kind, and ``img3d.tif`` + ``mask3d.tif``): read
from an installed stardist, else from the wheel fetched with ``pip download
stardist --no-deps`` (nothing installed; ``--no-real`` skips them).

    python bench/bench_tune.py [--trials 60] [--timeout 60] [--quick] [--data DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from common import Row, print_machine, print_rows
from scipy import ndimage as ndi
from skimage import filters
from skimage.feature import peak_local_max
from skimage.segmentation import watershed

from napari_fbias.io.synth import CELLS_3D_VOXEL_SIZE_UM, make_cells_3d, make_nuclei_2d
from napari_fbias.ops.metrics import average_precision
from napari_fbias.ops.segment import nuclei
from napari_fbias.pipeline.tune import Annotations, tune_step
from napari_fbias.pipeline.values import Value

STARDIST = "stardist==0.9.2"
REAL = ("img2d", "mask2d", "img3d", "mask3d")


def otsu_watershed(img: np.ndarray, spacing=None, min_distance: int = 5) -> np.ndarray:
    """Smoothing, Otsu, filled holes, distance-transform watershed: scikit-image, directly."""
    smooth = ndi.gaussian_filter(img.astype(np.float32), 1.0)
    mask = ndi.binary_fill_holes(smooth > filters.threshold_otsu(smooth))
    dist = ndi.distance_transform_edt(mask, sampling=spacing)
    peaks = peak_local_max(
        dist, min_distance=min_distance, labels=ndi.label(mask)[0], exclude_border=False
    )
    markers = np.zeros(img.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return watershed(-dist, markers, mask=mask)


def annotate(gt: np.ndarray, n: int = 10) -> np.ndarray:
    """The ``n`` ground-truth objects nearest the image centre (a painted cluster)."""
    ids = np.unique(gt)[1:]
    com = np.array(ndi.center_of_mass(gt > 0, gt, ids))
    centre = np.asarray(gt.shape) / 2
    keep = ids[np.argsort(np.linalg.norm(com - centre, axis=1))[:n]]
    return np.where(np.isin(gt, keep), gt, 0)


def real_images(cache: Path) -> dict[str, np.ndarray]:
    """The annotated images of the stardist wheel (installed, or downloaded, not installed)."""
    import tifffile

    spec = importlib.util.find_spec("stardist")
    if spec is not None and spec.submodule_search_locations:
        folder = Path(next(iter(spec.submodule_search_locations))) / "data" / "images"
        return {n: tifffile.imread(folder / f"{n}.tif") for n in REAL}
    cache.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache.glob("stardist-*.whl"))
    if not wheels:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                STARDIST,
                "--no-deps",
                "-q",
                "-d",
                str(cache),
            ],
            check=True,
        )
        wheels = sorted(cache.glob("stardist-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as z:
        return {
            n: tifffile.imread(io.BytesIO(z.read(f"stardist/data/images/{n}.tif"))) for n in REAL
        }


def cases(
    quick: bool, real: bool, cache: Path
) -> Iterator[tuple[str, np.ndarray, np.ndarray, tuple | None]]:
    side = 256 if quick else 1024
    k = (side / 1024) ** 2
    for name, radius, n, touching, seed in (
        ("small nuclei r 3-5 px", (3.0, 5.0), 1200, 0.3, 201),
        ("large nuclei r 18-28 px", (18.0, 28.0), 220, 0.3, 202),
        ("crowded r 7-13 px", (7.0, 13.0), 1000, 0.8, 203),
    ):
        img, gt = make_nuclei_2d((side, side), max(12, int(n * k)), seed, radius_range=radius,
                                 touching_fraction=touching)  # fmt: skip
        yield f"{name}, {side}x{side}", img, gt, None
    img, gt = make_nuclei_2d((side, side), max(12, int(400 * k)), 204)
    yy, xx = np.mgrid[0:side, 0:side] / side
    ramp = (3.0 * np.median(img) * (0.2 + yy + 0.5 * np.sin(3 * xx))).astype(np.float32)
    yield f"uneven background, {side}x{side}", img.astype(np.float32) + ramp, gt, None
    shape = (16, 96, 96) if quick else (24, 256, 256)
    vol, lab = make_cells_3d(shape, 12 if quick else 60, 205)
    yield f"anisotropic 3D {shape} (z 3.3x)", vol[0], lab, CELLS_3D_VOXEL_SIZE_UM
    if real:
        r = real_images(cache)
        yield "real: stardist img2d (DSB-like fluorescence)", r["img2d"], r["mask2d"], None
        yield "real: stardist img3d", r["img3d"], r["mask3d"], None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=60)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="small images, 8 trials: smoke run")
    parser.add_argument("--no-real", dest="real", action="store_false")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "fbias-bench")
    args = parser.parse_args()
    trials = 8 if args.quick else args.trials
    print_machine()
    print(f"<!-- command: python bench/{Path(__file__).name} {' '.join(sys.argv[1:])} -->")
    table = [
        "| image | objects | defaults | otsu+watershed | tuned (10 objects) | tuning time "
        "| trials |",
        "|---|---|---|---|---|---|---|",
    ]
    rows = []
    for name, img, gt, spacing in cases(args.quick, args.real, args.data):
        if img.shape != gt.shape:
            raise SystemExit(f"{name}: image {img.shape} and labels {gt.shape} differ")
        ap_default = average_precision(gt, nuclei(img, spacing=spacing))[0.5]
        ap_base = average_precision(gt, otsu_watershed(img, spacing))[0.5]
        value = Value(np.asarray(img), "image", "yx" if img.ndim == 2 else "zyx", spacing, None)
        t0 = time.perf_counter()
        result = tune_step("segment.nuclei", {}, value, Annotations(labels=annotate(gt)),
                           n_trials=trials, timeout=args.timeout)  # fmt: skip
        seconds = time.perf_counter() - t0
        ap_tuned = average_precision(gt, nuclei(img, spacing=spacing, **result.params))[0.5]
        n = len(np.unique(gt)) - 1
        table.append(
            f"| {name} | {n} | {ap_default:.3f} | {ap_base:.3f} | {ap_tuned:.3f} | "
            f"{seconds:.1f} s | {len(result.trials)} ({result.stopped}) |"
        )
        print(table[-1], flush=True)
        if img.ndim == 2 and img.shape[0] >= 1024:
            rows.append(Row("tune", f"tuning from 10 objects, {name}", seconds, goal="< 60 s",
                            met=seconds < 60))  # fmt: skip
    print()
    print("\n".join(table))
    if rows:
        print_rows(rows, title="tuning time")


if __name__ == "__main__":
    main()
