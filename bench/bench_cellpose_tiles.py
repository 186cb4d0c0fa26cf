"""Benchmark: chunk-wise ``cellpose.segment`` against cellpose's own distributed segmentation.

On the same synthetic nuclei image and the same block size, runs

* ``ours``: the pipeline runner with ``chunked=True`` (blocks with a halo of
  two diameters, global normalisation, objects stitched by keys:
  :mod:`napari_fbias.ops.cellpose_chunks`), dask on one thread;
* ``reference``: ``cellpose.contrib.distributed_segmentation.distributed_eval``
  (blocks with an overlap of two diameters, each normalised on its own,
  faces merged) on a one-worker ``distributed.LocalCluster``, from a zarr
  array on disk;

and prints the time, the peak resident memory added (this process and its
workers, sampled) and AP@0.5 of each against the in-memory ``cellpose.segment``
labels. Both use the same model and diameter. cellpose's distributed module
needs ``dask_image`` (and zarr, distributed, dask_jobqueue, yaml,
imagecodecs); without it, or when it fails, the reference cells are left
empty and the rows say why. As of cellpose 3.1.1.3 it does not run here:
it calls ``zarr.open(path, "w")`` (zarr 3 takes the mode by keyword: shimmed
below), slices with ``2 * diameter`` (a whole diameter is used), and its face
merging is 3D only (a 2D image, or a ``(1, y, x)`` volume whose masks come
back 2D, fails).

    python bench/bench_cellpose_tiles.py [--size 512] [--block 128] [--quick]

``--quick``: a 128^2 image in 64^2 blocks, one round (a smoke run).
The model is the test model of ``tests/helpers/cellpose_model.py`` unless
``--model`` names another.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import REPO, PeakMemory, Row, add_common_args, print_machine, print_rows, tests_on_path


def _model(name: str) -> str:
    if name:
        return name
    tests_on_path()
    from helpers.cellpose_model import build_test_model

    cache = os.environ.get("FBIAS_TEST_CACHE") or Path.home() / ".cache/napari-fbias/test-models"
    return str(build_test_model(cache))


def _pipeline(model: str, diameter: float) -> Any:
    from napari_fbias.pipeline import Pipeline

    return Pipeline.from_dict(
        {
            "fbias_pipeline": 1,
            "name": "cellpose tiles",
            "inputs": {"image": {"kind": "image"}},
            "steps": [
                {
                    "id": "cp",
                    "op": "cellpose.segment",
                    "inputs": {"image": "image"},
                    "params": {"model": model, "diameter": diameter},
                }
            ],
            "outputs": {"out": {"from": "cp"}},
        }
    )


def run_ours(img: np.ndarray, model: str, diameter: float, block: int) -> np.ndarray:
    """Chunk-wise through the pipeline runner, dask on one thread."""
    import dask

    from napari_fbias.ops.cellpose_op import clear_cache
    from napari_fbias.pipeline.runner import run_pipeline

    clear_cache()
    with dask.config.set(scheduler="threads", num_workers=1):
        res = run_pipeline(
            _pipeline(model, diameter), img, chunked=True, chunks=block, checksum=False
        )
        assert res.record["steps"][0]["mode"] == "chunked"
        return np.asarray(res["out"])


def distributed_available() -> str:
    """Empty when cellpose's distributed segmentation imports, else what is missing."""
    try:
        import cellpose.contrib.distributed_segmentation  # noqa: F401
    except ImportError as exc:
        return f"{exc.name or exc} not installed"
    return ""


def run_distributed(img: np.ndarray, model: str, diameter: float, block: int) -> np.ndarray:
    """cellpose's ``distributed_eval`` on a one-worker local cluster (in a scratch folder).

    Its face merging is written for 3D (a rank-3 structure), so the image goes
    in as one plane of a ``(1, y, x)`` volume, segmented in 2D (``do_3D=False``).
    """
    import distributed
    import zarr
    from cellpose.contrib import distributed_segmentation as ds

    from napari_fbias.ops.cellpose_op import normalize_params

    if not hasattr(ds, "_zarr3_shim") and int(zarr.__version__.split(".")[0]) >= 3:
        # cellpose 3.1's module calls zarr.open(path, "w", ...): zarr 3 takes mode by keyword
        real_open = zarr.open

        def open_compat(store: Any = None, mode: Any = None, **kw: Any) -> Any:
            return real_open(store, mode=mode or "a", **kw)

        ds.zarr = type("zarr_compat", (), {"open": staticmethod(open_compat)})
        ds._zarr3_shim = True
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="bench_cp_tiles_") as tmp:
        os.chdir(tmp)  # it writes worker logs and temporary zarrs into the working folder
        try:
            src = zarr.open(
                f"{tmp}/in.zarr",
                mode="w",
                shape=(1, *img.shape),
                chunks=(1, block, block),
                dtype=img.dtype,
            )
            src[...] = img[np.newaxis]
            with distributed.LocalCluster(
                n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
            ) as cluster:
                cluster.client = distributed.Client(cluster)
                try:
                    out, _ = ds.distributed_eval(
                        input_zarr=src,
                        blocksize=(1, block, block),
                        write_path=f"{tmp}/out.zarr",
                        model_kwargs={"gpu": False, "pretrained_model": model},
                        eval_kwargs={
                            "diameter": int(diameter),
                            "channels": [0, 0],
                            "z_axis": 0,
                            "do_3D": False,
                            "normalize": normalize_params(True, False, "2d"),
                        },
                        cluster=cluster,
                    )
                    return np.asarray(out[0]).astype(np.int32)
                finally:
                    cluster.client.close()
        finally:
            os.chdir(here)


def measured(func: Any) -> tuple[float, int, Any]:
    """Seconds, peak resident memory added (with child processes) and the result."""
    with PeakMemory(interval=0.02) as mem:
        t0 = time.perf_counter()
        out = func()
        seconds = time.perf_counter() - t0
    return seconds, mem.report.peak_increase, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side (pixels)")
    parser.add_argument("--block", type=int, default=128, help="block side (pixels)")
    parser.add_argument("--model", default="", help="model name or file (default: test model)")
    add_common_args(parser, repeat=1)
    args = parser.parse_args(argv)
    if args.quick:
        args.size, args.block = 128, 64
    import torch

    torch.set_num_threads(1)
    from napari_fbias.io.synth import make_nuclei_2d
    from napari_fbias.ops.cellpose_models import load_model
    from napari_fbias.ops.cellpose_op import segment
    from napari_fbias.ops.metrics import match_stats

    model = _model(args.model)
    n_nuclei = max(4, int(360 * (args.size / 512) ** 2))
    img, _ = make_nuclei_2d((args.size, args.size), n_nuclei, 3)
    loaded = load_model(model)
    # a whole number: cellpose's distributed module slices with 2 * diameter
    diameter = float(round(float(getattr(loaded.model, "diam_labels", 30.0))))
    ref = np.asarray(segment(img, model=model, diameter=diameter, axes="yx"))
    case = f"{args.size}^2 px, {args.block}^2 blocks, {int(ref.max())} objects"
    print_machine()
    print(f"in memory: {int(ref.max())} objects; diameter {diameter} px")

    results: dict[str, tuple[float, int, float]] = {}
    missing = distributed_available()
    runs = {"ours": lambda: run_ours(img, model, diameter, args.block)}
    if not missing:
        runs["distributed"] = lambda: run_distributed(img, model, diameter, args.block)
    for name, func in runs.items():
        times, peaks, ap = [], [], 0.0
        for _ in range(max(1, args.repeat)):
            try:
                s, peak, labels = measured(func)
            except Exception as exc:  # cellpose's module, not ours: say why, keep our rows
                if name == "ours":
                    raise
                missing = f"failed here ({type(exc).__name__}: {str(exc)[:80]})"
                break
            times.append(s)
            peaks.append(peak)
            ap = match_stats(ref, labels, [0.5])[0].average_precision
        if not times:
            continue
        results[name] = (float(np.median(times)), int(max(peaks)), float(ap))
        print(
            f"{name:12s}: {np.median(times):7.2f} s, peak added {max(peaks) / 2**20:7.1f} MiB, "
            f"AP@0.5 vs in memory {ap:.4f}"
        )
    if missing:
        print(f"distributed : not run, {missing} (cellpose/contrib/distributed_segmentation.py)")
    ours = results["ours"]
    ref_row = results.get("distributed")
    note = "" if ref_row else f"reference: {missing}"
    rows = [
        Row("cellpose_tiles", f"time, {case}", ours[0], ref_row and ref_row[0], note=note),
        Row(
            "cellpose_tiles",
            f"peak memory added, {case}",
            ours[1],
            ref_row and ref_row[1],
            unit="B",
            note=note,
        ),
        Row(
            "cellpose_tiles",
            f"AP@0.5 vs in memory, {case}",
            ours[2],
            ref_row and ref_row[2],
            unit="",
            goal=">= reference" if ref_row else "",
            met=(ours[2] >= ref_row[2]) if ref_row else None,
            note=note,
        ),
    ]
    print_rows(rows, title=f"bench_cellpose_tiles ({REPO.name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
