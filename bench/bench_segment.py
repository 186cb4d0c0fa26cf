"""Benchmark: classical segmentation, in memory and chunk-wise on an image over the budget.

1. **In memory** (4096 x 4096 uint16 nuclei image, tiled from
   :func:`napari_fbias.io.synth.make_nuclei_2d`): ``segment.nuclei`` called
   as a function, and the same recipe as a one-step pipeline
   (``Pipeline.run``: validation, input checksum, run record included),
   against the same scikit-image / scipy calls written out directly
   (``direct_recipe`` of ``bench_nuclei_accuracy.py``). Both must give the
   same labels; the goal is an overhead of at most 5 %.
2. **Larger than the memory budget** (16 384 x 16 384 uint16 = 512 MiB, an
   OME-Zarr on disk with 1024 x 1024 chunks): the pipeline
   ``preprocess.gaussian`` -> ``segment.threshold`` (otsu, min_size 30) run
   chunk-wise (``run_pipeline(..., memory_limit=64 MiB)``, 1024 x 1024
   chunks) and its results written (``write_results``: the image and its
   labels as OME-Zarr), on a dask ``LocalCluster`` with 1 and then 2 worker
   processes (one thread each). ``segment.nuclei`` itself cannot run
   chunk-wise (it has no halo or merge strategy), so this is the chunk-wise
   classical recipe. Reported: wall time, the speed-up from 1 to 2 workers,
   and the peak of resident memory *added* during the run over this process
   and its worker processes (psutil sampling every 20 ms), against the image
   size (goal: at most a quarter of it). The workers first run the pipeline
   on a tiny image, so that loading code does not count.

``--quick`` uses 1024 x 1024 in memory and 2048 x 2048 on disk (chunks 512,
budget 1 MiB) and checks the chunk-wise labels against the in-memory run.

    python bench/bench_segment.py [--quick] [--repeat 3] [--data DIR] [--threads]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import (
    PeakMemory,
    Row,
    add_common_args,
    alternate,
    fmt_bytes,
    fmt_seconds,
    median,
    print_machine,
    print_rows,
)

CHUNKED_PIPELINE = {
    "fbias_pipeline": 1,
    "name": "classical-chunked",
    "inputs": {"image": {"kind": "image"}},
    "steps": [
        {
            "id": "smooth",
            "op": "preprocess.gaussian",
            "inputs": {"image": "image"},
            "params": {"sigma": 2.0},
        },
        {
            "id": "nuclei",
            "op": "segment.threshold",
            "inputs": {"image": "smooth"},
            "params": {"method": "otsu", "min_size": 30},
        },
    ],
    "outputs": {"nuclei": {"from": "nuclei"}},
}
NUCLEI_PIPELINE = {
    "fbias_pipeline": 1,
    "name": "nuclei",
    "inputs": {"image": {"kind": "image"}},
    "steps": [{"id": "nuclei", "op": "segment.nuclei", "inputs": {"image": "image"}}],
    "outputs": {"nuclei": {"from": "nuclei"}},
}


def nuclei_tile(side: int = 1024, seed: int = 11) -> np.ndarray:
    from napari_fbias.io.synth import make_nuclei_2d

    img, _ = make_nuclei_2d((side, side), int(150 * (side / 1024) ** 2), seed)
    return img


def tiled_image(side: int) -> np.ndarray:
    """A ``side`` x ``side`` nuclei image: a 1024 px synthetic tile, repeated."""
    tile = nuclei_tile(min(side, 1024))
    reps = -(-side // tile.shape[0])
    return np.tile(tile, (reps, reps))[:side, :side].copy()


# --- 1. in memory -------------------------------------------------------------------------


def in_memory(side: int, repeat: int) -> list[Row]:
    from bench_nuclei_accuracy import direct_recipe

    from napari_fbias.ops.segment import nuclei
    from napari_fbias.pipeline import Pipeline

    img = tiled_image(side)
    pipeline = Pipeline.from_dict(NUCLEI_PIPELINE)
    labels = nuclei(img)
    if not np.array_equal(labels, direct_recipe(img)):
        raise AssertionError("segment.nuclei and the direct calls give different labels")
    if not np.array_equal(pipeline.run(img)["nuclei"], labels):
        raise AssertionError("the pipeline run and segment.nuclei give different labels")
    times = alternate(
        {
            "direct": lambda: direct_recipe(img),
            "op": lambda: nuclei(img),
            "pipeline": lambda: pipeline.run(img),
        },
        repeat,
        warmup=False,  # warmed up by the checks above
    )
    direct = median(times["direct"])
    rows = []
    for name, what in (("op", "segment.nuclei()"), ("pipeline", "Pipeline.run")):
        t = median(times[name])
        rows.append(
            Row(
                "segment",
                f"{side}x{side} {what} vs direct skimage/scipy",
                t,
                direct,
                goal="overhead <= 5 %",
                met=t <= 1.05 * direct,
                note=f"{int(labels.max())} nuclei",
            )
        )
    return rows


# --- 2. chunk-wise, larger than the budget ----------------------------------------------------


def make_big_image(path: Path, side: int, chunk: int) -> Path:
    """Write a ``side`` x ``side`` uint16 OME-Zarr chunk by chunk (kept for reruns)."""
    import dask.array as da

    from napari_fbias.io.ome_zarr_write import write_image

    done = path / ".bench_complete"
    if done.exists():
        return path
    tile = nuclei_tile(min(chunk, 1024))

    def block(block_info: dict | None = None) -> np.ndarray:
        info = block_info[None]  # type: ignore[index]
        (y0, y1), (x0, x1) = info["array-location"]
        rng = np.random.default_rng(abs(hash((y0, x0))) % 2**32)
        out = np.tile(tile, (-(-(y1 - y0) // tile.shape[0]), -(-(x1 - x0) // tile.shape[1])))
        noise = rng.integers(0, 8, (y1 - y0, x1 - x0), dtype=np.uint16)
        return out[: y1 - y0, : x1 - x0] + noise

    data = da.map_blocks(
        block, chunks=((chunk,) * (side // chunk),) * 2, dtype=np.uint16, meta=np.empty((0, 0))
    )
    if path.exists():
        import shutil

        shutil.rmtree(path)
    write_image(path, data, "yx", chunks=(chunk, chunk), name="big")
    done.write_text("ok")
    return path


def _warm_worker() -> None:
    """Load the code the tasks will run, so that it does not count as memory they used.

    Runs the chunk-wise pipeline once on a tiny image (every op and strategy
    imports its libraries on first use).
    """
    import dask

    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.runner import run_pipeline

    tiny = np.random.default_rng(0).integers(0, 999, (64, 64))
    with dask.config.set(scheduler="synchronous"):
        run_pipeline(
            Pipeline.from_dict(CHUNKED_PIPELINE), tiny.astype(np.uint16), chunked=True, chunks=32
        )


def chunked_run(path: Path, workers: int, processes: bool, budget: int, chunks: int) -> dict:
    """Run the chunk-wise pipeline on a fresh LocalCluster and write the results."""
    from distributed import Client, LocalCluster

    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.outputs import write_results
    from napari_fbias.pipeline.runner import run_pipeline

    pipeline = Pipeline.from_dict(CHUNKED_PIPELINE)
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
        tempfile.TemporaryDirectory(dir=path.parent) as out,
    ):
        client.run(_warm_worker)  # imports done before the memory baseline is taken
        _warm_worker()
        with PeakMemory(interval=0.02) as mem:
            t0 = time.perf_counter()
            results = run_pipeline(pipeline, str(path), memory_limit=budget, chunks=chunks)
            write_results(results, out)
            seconds = time.perf_counter() - t0
        mode = results.record["mode"]
        n = None
        if mode != "chunked":
            raise AssertionError(f"the run was {mode}, not chunked: raise the image size")
        from napari_fbias.io.ome_zarr_read import read_ome_zarr

        n = int(read_ome_zarr(Path(out) / "result.ome.zarr").labels["nuclei"].data.max().compute())
    return {"seconds": seconds, "mem": mem.report, "objects": n}


def check_chunked_equals_in_memory(path: Path, budget: int, chunks: int) -> None:
    from napari_fbias.io.open import open_image
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.runner import run_pipeline

    pipeline = Pipeline.from_dict(CHUNKED_PIPELINE)
    image = open_image(str(path))
    chunked = run_pipeline(pipeline, image, memory_limit=budget, chunks=chunks, checksum=False)
    memory = run_pipeline(pipeline, np.asarray(image.data), chunked=False, checksum=False)
    if not np.array_equal(np.asarray(chunked["nuclei"]), memory["nuclei"]):
        raise AssertionError("chunk-wise labels differ from the in-memory labels")


def larger_than_budget(
    root: Path, side: int, chunk: int, budget: int, chunks: int, repeat: int, processes: bool
) -> list[Row]:
    path = make_big_image(root / f"big_{side}_{chunk}.ome.zarr", side, chunk)
    image_bytes = side * side * 2
    runs: dict[int, list[dict]] = {1: [], 2: []}
    for _ in range(max(1, repeat)):
        for workers in (1, 2):
            runs[workers].append(chunked_run(path, workers, processes, budget, chunks))
    if runs[1][0]["objects"] != runs[2][0]["objects"]:
        raise AssertionError("1 and 2 workers found different numbers of objects")
    t1 = median([r["seconds"] for r in runs[1]])
    t2 = median([r["seconds"] for r in runs[2]])
    kind = "processes" if processes else "threads"
    rows = [
        Row(
            "segment",
            f"{side}x{side} chunk-wise, 2 vs 1 dask workers ({kind})",
            t2,
            t1,
            goal="speed-up > 1 (ratio < 1)",
            met=t2 < t1,
            note=f"speed-up {t1 / t2:.2f}x, {runs[1][0]['objects']} objects",
        )
    ]
    for workers in (1, 2):
        peak = max(r["mem"].peak_increase for r in runs[workers])
        rows.append(
            Row(
                "segment",
                f"{side}x{side} chunk-wise, peak memory added, {workers} worker(s)",
                peak,
                image_bytes,
                goal="<= 0.25x image size",
                met=peak <= 0.25 * image_bytes,
                unit="B",
                note=f"budget {fmt_bytes(budget)}, chunks {chunks}",
            )
        )
    print(
        f"chunk-wise: image {fmt_bytes(image_bytes)}, 1 worker {fmt_seconds(t1)}, "
        f"2 workers {fmt_seconds(t2)}"
    )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--data", type=Path, default=None, help="folder for the big image (kept)")
    parser.add_argument("--threads", action="store_true", help="workers as threads, not processes")
    parser.add_argument("--skip-chunked", action="store_true", help="only the in-memory part")
    args = parser.parse_args(argv)
    if args.quick:
        side_mem, side_big, chunk, budget, chunks, repeat = 1024, 2048, 512, 2**20, 512, 1
    else:
        side_mem, side_big, chunk, budget, chunks = 4096, 16384, 1024, 64 * 2**20, 1024
        repeat = args.repeat
    rows = in_memory(side_mem, repeat)
    if not args.skip_chunked:
        with contextlib.ExitStack() as stack:
            root = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            root.mkdir(parents=True, exist_ok=True)
            if args.quick:
                path = make_big_image(root / f"big_{side_big}_{chunk}.ome.zarr", side_big, chunk)
                check_chunked_equals_in_memory(path, budget, chunks)
            rows += larger_than_budget(
                root, side_big, chunk, budget, chunks, repeat, processes=not args.threads
            )
    print_machine()
    print_rows(rows, title=f"bench_segment quick={args.quick} repeat={repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
