"""Benchmark: accuracy of the default ``segment.nuclei`` recipe against plain Otsu.

Prints the average precision at IoU 0.5 (StarDist / Cell Segmentation
Benchmark style, ``TP / (TP + FP + FN)``) and the mean IoU of matched nuclei
of two methods:

* ``otsu+cc``: Otsu threshold of the raw image, then connected components;
* ``nuclei``: :func:`napari_fbias.ops.segment.nuclei` with its defaults
  (size-dependent settings on "auto", issue 15);
* ``old``: the same with the numbers it had before "auto" (smoothing 1.5,
  min size 30, min distance 5), for the before/after table;

on the bundled 2D sample (``nuclei_2d``), the four ``nuclei_batch`` images and
freshly generated images (:func:`napari_fbias.io.synth.make_nuclei_2d`) with
seeds that the defaults were not tuned on. With ``--timing`` it also times the
op against the same scikit-image / scipy calls written out directly (the
wrapper's overhead should stay <= 5 %) and checks both give the same labels.

    python bench/bench_nuclei_accuracy.py [--seeds 100 101 102] [--timing] [--quick]

``--quick`` scores the bundled samples and one generated image, times once.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

import numpy as np
from common import Row, add_common_args, print_machine, print_rows
from scipy import ndimage as ndi
from skimage import filters
from skimage.feature import peak_local_max
from skimage.segmentation import expand_labels, watershed

from napari_fbias.io.samples import load_nuclei_2d, load_nuclei_batch
from napari_fbias.io.synth import make_nuclei_2d
from napari_fbias.ops.metrics import match_stats
from napari_fbias.ops.segment import nuclei


def otsu_cc(img: np.ndarray) -> np.ndarray:
    return ndi.label(img > filters.threshold_otsu(img))[0]


def images(
    seeds: list[int], shape: tuple[int, int], n: int
) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    image, gt = load_nuclei_2d()
    yield "sample nuclei_2d", np.asarray(image.data), gt
    for im, lab in load_nuclei_batch():
        yield f"batch {im.name}", np.asarray(im.data), lab
    for seed in seeds:
        img, lab = make_nuclei_2d(shape, n, seed)
        yield f"seed {seed}", img, lab


# --- the recipe written out directly, for the overhead measurement ------------------------


def _drop_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    counts = np.bincount(labels.ravel())
    keep = counts >= min_size
    keep[0] = False
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, keep.sum() + 1)
    return lut[labels]


def _pass(mask: np.ndarray) -> np.ndarray:
    mask = ndi.binary_fill_holes(mask)
    labels = _drop_small(ndi.label(mask)[0], 30)
    distance = ndi.distance_transform_edt(labels > 0)
    peaks = peak_local_max(distance, min_distance=5, labels=labels, exclude_border=False)
    peaks = peaks[np.lexsort(peaks.T[::-1])]
    markers = np.zeros(labels.shape, np.int32)
    markers[tuple(peaks.T)] = np.arange(1, len(peaks) + 1)
    return _drop_small(watershed(-distance, markers, mask=labels > 0), 30)


def direct_recipe(img: np.ndarray) -> np.ndarray:
    smooth = ndi.gaussian_filter(img, 1.5, output=np.float32, mode="nearest")
    t = filters.threshold_otsu(smooth)
    background = float(np.median(smooth[smooth <= t]))
    labels = _pass(smooth > background + 0.5 * (t - background))
    peak = np.asarray(ndi.maximum(smooth, labels, np.arange(labels.max() + 1)), np.float64)
    level = background + 0.4 * (peak - background)
    level[0] = np.inf
    return _pass(smooth > level[expand_labels(labels, 3)])


def best_time(func, img: np.ndarray, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func(img)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[100, 101, 102, 103])
    parser.add_argument("--shape", type=int, nargs=2, default=[512, 512])
    parser.add_argument("--nuclei", type=int, default=60)
    parser.add_argument("--timing", action="store_true", help="also time op vs direct calls")
    add_common_args(parser, repeat=5)
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.repeat = args.seeds[:1], 1

    print(
        f"{'image':<22} {'n':>4}  {'otsu+cc AP50':>12} {'nuclei AP50':>12} {'old AP50':>9}  "
        f"{'otsu+cc mIoU':>12} {'nuclei mIoU':>12}"
    )
    base_ap, ours_ap, old_ap = [], [], []
    for name, img, gt in images(args.seeds, tuple(args.shape), args.nuclei):
        b = match_stats(gt, otsu_cc(img))[0]
        o = match_stats(gt, nuclei(img))[0]
        old = match_stats(gt, nuclei(img, smoothing_sigma=1.5, min_size=30, min_distance=5))[0]
        base_ap.append(b.average_precision)
        ours_ap.append(o.average_precision)
        old_ap.append(old.average_precision)
        print(
            f"{name:<22} {int(gt.max()):>4}  {b.average_precision:>12.3f} "
            f"{o.average_precision:>12.3f} {old.average_precision:>9.3f}  "
            f"{b.mean_matched_iou:>12.3f} "
            f"{o.mean_matched_iou:>12.3f}"
        )
    print(
        f"{'mean':<22} {'':>4}  {np.mean(base_ap):>12.3f} {np.mean(ours_ap):>12.3f} "
        f"{np.mean(old_ap):>9.3f}"
    )
    rows = [
        Row(
            "nuclei accuracy",
            f"mean AP@0.5 over {len(ours_ap)} images, nuclei vs otsu+cc",
            float(np.mean(ours_ap)),
            float(np.mean(base_ap)),
            goal="higher than otsu+cc",
            met=float(np.mean(ours_ap)) > float(np.mean(base_ap)),
            unit="",
        )
    ]

    if args.timing:
        image, _ = load_nuclei_2d()
        img = np.asarray(image.data)
        same = np.array_equal(nuclei(img), direct_recipe(img))
        t_op = best_time(nuclei, img, args.repeat)
        t_direct = best_time(direct_recipe, img, args.repeat)
        print(
            f"\ntiming on nuclei_2d {img.shape}: op {t_op * 1e3:.1f} ms, direct calls "
            f"{t_direct * 1e3:.1f} ms, overhead {100 * (t_op / t_direct - 1):+.1f} % "
            f"(same labels: {same})"
        )
        rows.append(
            Row(
                "nuclei accuracy",
                f"nuclei_2d {img.shape}: segment.nuclei vs direct calls (best of {args.repeat})",
                t_op,
                t_direct,
                goal="overhead <= 5 %, same labels",
                met=same and t_op <= 1.05 * t_direct,
            )
        )
    print_machine()
    print_rows(rows, title=f"bench_nuclei_accuracy quick={args.quick}")


if __name__ == "__main__":
    main()
