"""Overhead of ``cellpose.segment`` over calling cellpose directly.

Runs, on the same synthetic images in the same process, (a) cellpose's own
``CellposeModel.eval`` with the arguments our operation passes, and (b) our
operation with its network-output cache cleared before every call (so both
run the network), alternating the two to share any drift in machine load.
Prints the median times and the overhead ratio (target: <= 5 %), plus the time
of a re-threshold served from the cache.

Usage::

    python bench/bench_cellpose.py                      # the test model (trains once)
    python bench/bench_cellpose.py --model cyto3 --size 1024 --repeats 5 --gpu
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _default_model() -> str:
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.cellpose_model import build_test_model

    return str(build_test_model(Path.home() / ".cache/napari-fbias/test-models"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="model name or file (default: test model)")
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--images", type=int, default=2, help="number of different images")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per image and side")
    parser.add_argument("--gpu", action="store_true", help="run on the GPU when available")
    args = parser.parse_args(argv)

    from napari_fbias.io.synth import make_nuclei_2d
    from napari_fbias.ops import cellpose_op as cpo
    from napari_fbias.ops.cellpose_models import load_model

    model = args.model or _default_model()
    loaded = load_model(model, gpu=args.gpu)
    cp = loaded.model
    print(f"cellpose api {loaded.api}, model {model!r}, device {loaded.device}")
    n_nuclei = max(1, (args.size // 24) ** 2 // 4)
    images = [
        make_nuclei_2d((args.size, args.size), n_nuclei, seed=s)[0] for s in range(args.images)
    ]
    diameter = 0.0 if loaded.api >= 4 or loaded.size_model() is None else 25.0

    def ours(img: np.ndarray) -> np.ndarray:
        cpo.clear_cache()
        return cpo.segment(img, model=model, gpu=args.gpu, diameter=diameter)

    def direct(img: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(img[..., np.newaxis], dtype=np.float32)
        kw = cpo.eval_kwargs(
            loaded.api, mode="2d", n_channels=1, diameter=diameter, normalize=True,
            invert=False, anisotropy=None, tile_overlap=0.1, batch_size=8,
            niter=cpo.auto_niter(loaded, diameter or None, 0), flow_threshold=0.4,
            cellprob_threshold=0.0, min_size=15, max_size_fraction=0.4, stitch_threshold=0.0,
        )  # fmt: skip
        return cp.eval(x, **cpo._supported(cp.eval, kw))[0]

    for img in images:  # warm-up (JIT compilation, first allocations)
        assert np.array_equal(ours(img), direct(img).astype(np.int32)), "results differ"
    # Time spent inside cellpose's eval during our call: our own overhead is the
    # rest, which does not depend on the load of a shared machine between calls.
    inner: list[float] = []
    real_eval = cp.eval

    def timed_eval(*a, **kw):
        t0 = time.perf_counter()
        try:
            return real_eval(*a, **kw)
        finally:
            inner.append(time.perf_counter() - t0)

    t_ours: list[float] = []
    t_direct: list[float] = []
    own: list[float] = []
    for _ in range(args.repeats):
        for img in images:
            t0 = time.perf_counter()
            direct(img)
            t_direct.append(time.perf_counter() - t0)
            cp.eval = timed_eval
            try:
                t0 = time.perf_counter()
                ours(img)
                t_ours.append(time.perf_counter() - t0)
            finally:
                cp.eval = real_eval
            own.append(t_ours[-1] - inner[-1])
    m_ours, m_direct = statistics.median(t_ours), statistics.median(t_direct)
    m_own = statistics.median(own)
    print(f"image {args.size}x{args.size}, {len(t_ours)} runs each")
    print(f"cellpose eval        : {m_direct * 1000:9.1f} ms (median)")
    print(f"cellpose.segment     : {m_ours * 1000:9.1f} ms (median)")
    print(f"  of which our code  : {m_own * 1000:9.1f} ms (median)")
    print(f"overhead, end to end : {100 * (m_ours / m_direct - 1):+.1f} %")
    print(f"overhead, own code   : {100 * m_own / m_direct:+.1f} % (target <= 5 %)")
    cpo.segment(images[0], model=model, gpu=args.gpu, diameter=diameter)
    t0 = time.perf_counter()
    cpo.segment(images[0], model=model, gpu=args.gpu, diameter=diameter, cellprob_threshold=-1)
    print(f"re-threshold (cache) : {(time.perf_counter() - t0) * 1000:9.1f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
