"""Benchmark: a classical pipeline through ``Pipeline.run`` versus the same calls written directly.

Four steps (Gaussian smoothing, Otsu threshold + connected components, removal
of small objects, Gaussian of the input kept as an extra output) on a
synthetic nuclei-like image, run both ways in alternation in the same process;
prints the best time of each and the overhead of the pipeline runner
(validation, input checksum, selection, run record). Target: <= 5 %.

    python bench/bench_runner_overhead.py [--size 2048] [--repeat 5]
    python bench/bench_runner_overhead.py --size 4096
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi
from skimage.filters import threshold_otsu

from napari_fbias.pipeline import Pipeline

PIPELINE = {
    "fbias_pipeline": 1,
    "name": "bench-classical",
    "inputs": {"image": {"kind": "image"}},
    "steps": [
        {
            "id": "smooth",
            "op": "preprocess.gaussian",
            "inputs": {"image": "image"},
            "params": {"sigma": 2.0},
        },
        {
            "id": "mask",
            "op": "segment.threshold",
            "inputs": {"image": "smooth"},
            "params": {"method": "otsu"},
        },
        {
            "id": "nuclei",
            "op": "segment.remove_small_objects",
            "inputs": {"labels": "mask"},
            "params": {"min_size": 30},
        },
    ],
    "outputs": {"nuclei": {"from": "nuclei"}, "smooth": {"from": "smooth"}},
}


def make_image(size: int, seed: int = 0) -> np.ndarray:
    """Bright blobs (about one per 40 x 40 pixels) on a noisy background, uint16."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size), dtype=np.float32)
    n = (size // 40) ** 2
    img[rng.integers(0, size, n), rng.integers(0, size, n)] = 1.0
    img = ndi.gaussian_filter(img, 5.0)
    img = img / img.max() * 3000 + rng.normal(200, 40, img.shape).astype(np.float32)
    return np.clip(img, 0, 65535).astype(np.uint16)


def direct(img: np.ndarray) -> np.ndarray:
    """The same scikit-image / scipy calls the ops make, written by hand."""
    smooth = ndi.gaussian_filter(img, 2.0, output=np.float32, mode="nearest")
    labels, _ = ndi.label(smooth > threshold_otsu(smooth))
    counts = np.bincount(labels.ravel())
    keep = counts >= 30
    keep[0] = False
    lut = np.zeros(counts.size, dtype=np.int32)
    lut[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return lut[labels]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048, help="image side in pixels")
    parser.add_argument("--repeat", type=int, default=5, help="rounds (best time is kept)")
    args = parser.parse_args()

    img = make_image(args.size)
    pipeline = Pipeline.from_dict(PIPELINE)
    expected = direct(img)
    got = pipeline.run(img)["nuclei"]
    if not np.array_equal(got, expected):
        raise SystemExit("the pipeline and the direct calls disagree")

    t_direct, t_pipe = [], []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        direct(img)
        t_direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        pipeline.run(img)
        t_pipe.append(time.perf_counter() - t0)
    best_direct, best_pipe = min(t_direct), min(t_pipe)
    overhead = best_pipe / best_direct - 1.0
    print(
        f"image {args.size} x {args.size} uint16, {expected.max()} objects, best of {args.repeat}"
    )
    print(f"direct scikit-image/scipy calls: {best_direct * 1000:8.1f} ms")
    print(f"Pipeline.run:                    {best_pipe * 1000:8.1f} ms")
    print(f"overhead: {overhead * 100:+.1f} % (target <= 5 %)")


if __name__ == "__main__":
    main()
