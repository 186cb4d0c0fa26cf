"""Peak memory of the delivered pipelines run chunk-wise on whole slides and a large volume.

For each pipeline the demo delivers (nuclei + measurements; smoothing +
threshold + watershed split) and each image (16 384^2 and 32 768^2 uint16
slides, a 256 x 1024 x 1024 uint16 volume: generated lazily on disk, written
chunk by chunk), one child process runs ``fbias``'s runner with a memory
budget (``--budget``, 64 MiB) and writes the results, as ``fbias run`` does.
The child first runs the same pipeline on a small image, so the libraries,
dask's thread pool and its allocator arenas are in the base; the row is the
peak resident memory (RSS, sampled every 20 ms) the big image adds, against
the image size.

Goals (issue 14): at most a quarter of the image at 16 384^2 (128 MiB), and
the same absolute bound at 32 768^2 and for the volume. A second set of rows
times the chunk-wise run against the in-memory run of the same pipeline on an
image that fits (4096^2), after checking that the results are equal (labels
up to nothing: identical; tables equal).

    python bench/bench_chunked_memory.py                 # full sizes (about an hour on 2 cores)
    python bench/bench_chunked_memory.py --quick         # smoke sizes (CI, under a minute)
    python bench/bench_chunked_memory.py --data /big/disk --sizes 16384 --no-volume
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

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

#: The pipelines the demo delivers (its approaches A and B), as their bundles hold them.
PIPELINES = {
    "nuclei+measure": {
        "fbias_pipeline": 1,
        "name": "nuclei-measure",
        "inputs": {"image": {"kind": "image"}},
        "steps": [
            {"id": "nuclei", "op": "segment.nuclei", "inputs": {"image": "image"}},
            {
                "id": "table",
                "op": "measure.regionprops",
                "inputs": {"labels": "nuclei", "image": "image"},
            },
        ],
        "outputs": {"nuclei": {"from": "nuclei"}, "table": {"from": "table"}},
    },
    "smooth+threshold+split": {
        "fbias_pipeline": 1,
        "name": "watershed",
        "inputs": {"image": {"kind": "image"}},
        "steps": [
            {
                "id": "smooth",
                "op": "preprocess.gaussian",
                "inputs": {"image": "image"},
                "params": {"sigma": 1.0},
            },
            {
                "id": "mask",
                "op": "segment.threshold",
                "inputs": {"image": "smooth"},
                "params": {"min_size": 20},
            },
            {"id": "split", "op": "segment.watershed_split", "inputs": {"labels": "mask"}},
        ],
        "outputs": {"split": {"from": "split"}},
    },
    "spots": {
        "fbias_pipeline": 1,
        "name": "spots",
        "inputs": {"image": {"kind": "image"}},
        "steps": [{"id": "tracks", "op": "track.track_spots", "inputs": {"image": "image"}}],
        "outputs": {"tracks": {"from": "tracks"}},
    },
}
#: Which pipelines run on which kind of image (the spots one needs a movie).
ON = {"yx": ("nuclei+measure", "smooth+threshold+split"), "zyx": ("nuclei+measure",)}
ON["tyx"] = ("spots",)

QUARTER_16K = 16384 * 16384 * 2 // 4  # 128 MiB: the goal at 16384^2, and the absolute bound


# --- images -----------------------------------------------------------------------------------


def _tile_2d(side: int) -> np.ndarray:
    from napari_fbias.io.synth import make_nuclei_2d

    img, _ = make_nuclei_2d((side, side), int(150 * (side / 1024) ** 2), 11)
    return img


def _tile_3d() -> np.ndarray:
    from napari_fbias.io.synth import make_cells_3d

    img, _ = make_cells_3d((32, 256, 256), n_cells=40, seed=5)
    return img[0]


def _tile_movie() -> np.ndarray:
    from napari_fbias.io.synth import make_spots_timelapse

    return make_spots_timelapse((3, 256, 256), n_spots=40, seed=1)[0]


def make_image(
    path: Path, shape: tuple[int, ...], chunk: tuple[int, ...], axes: str | None = None
) -> Path:
    """Write a uint16 OME-Zarr of ``shape`` block by block from a repeated tile (kept)."""
    import dask.array as da

    from napari_fbias.io.ome_zarr_write import write_image

    done = path / ".bench_complete"
    if done.exists():
        return path
    axes = axes or ("yx" if len(shape) == 2 else "zyx")
    tile = {"yx": lambda: _tile_2d(min(1024, shape[-1])), "zyx": _tile_3d, "tyx": _tile_movie}[
        axes
    ]()

    def block(block_info: dict | None = None) -> np.ndarray:
        loc = block_info[None]["array-location"]  # type: ignore[index]
        rng = np.random.default_rng(abs(hash(tuple(a for a, _ in loc))) % 2**32)
        reps = [-(-(b - a) // t) for (a, b), t in zip(loc, tile.shape, strict=True)]
        out = np.tile(tile, reps)[tuple(slice(0, b - a) for a, b in loc)]
        return out + rng.integers(0, 8, out.shape, dtype=np.uint16)

    chunks = tuple(
        (c,) * (n // c) + ((n % c,) if n % c else ()) for n, c in zip(shape, chunk, strict=True)
    )
    data = da.map_blocks(block, chunks=chunks, dtype=np.uint16, meta=np.empty((0,) * len(shape)))
    if path.exists():
        import shutil

        shutil.rmtree(path)
    scale = (0.5, 0.25, 0.25) if axes == "zyx" else None  # the volume tile's anisotropy, 2x
    write_image(path, data, axes, chunks=chunk, scale=scale, name="big")
    done.write_text("ok")
    return path


# --- one measured run, in a child process -------------------------------------------------------


def _run(pipeline: dict, source: str, budget: int, out: str) -> dict:
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.chunked import chunked_steps
    from napari_fbias.pipeline.outputs import write_results
    from napari_fbias.pipeline.runner import run_pipeline

    results = run_pipeline(Pipeline.from_dict(pipeline), source, memory_limit=budget)
    write_results(results, out)
    return {"mode": results.record["mode"], "chunked": chunked_steps(results.record)}


def child(args: argparse.Namespace) -> int:
    """Warm up on ``args.warm``, then measure the run on ``args.image``; print one JSON line."""
    pipeline = PIPELINES[args.pipeline]
    with tempfile.TemporaryDirectory(dir=args.tmp) as out:
        _run(pipeline, args.warm, args.budget, out)
    with tempfile.TemporaryDirectory(dir=args.tmp) as out, PeakMemory(children=False) as mem:
        t0 = time.perf_counter()
        info = _run(pipeline, args.image, args.budget, out)
        seconds = time.perf_counter() - t0
    print(json.dumps({**info, "seconds": seconds, "peak": mem.report.peak_increase}))
    return 0


def measured(pipeline: str, image: Path, warm: Path, budget: int, tmp: Path) -> dict:
    cmd = [sys.executable, __file__, "--child", pipeline, str(image), str(warm), str(budget)]
    proc = subprocess.run(
        [*cmd, "--tmp", str(tmp)], capture_output=True, text=True, env=os.environ.copy()
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{pipeline} on {image.name} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# --- the rows ---------------------------------------------------------------------------------


def memory_rows(root: Path, images: list[tuple[str, tuple, tuple, str]], budget: int) -> list[Row]:
    rows = []
    for name, shape, chunk, axes in images:
        path = make_image(root / f"{name}.ome.zarr", shape, chunk, axes)
        small = tuple(min(n, 2 * c) for n, c in zip(shape, chunk, strict=True))
        warm_name = f"warm_{axes}_{'x'.join(map(str, small))}.ome.zarr"
        warm = make_image(root / warm_name, small, chunk, axes)
        nbytes = int(np.prod(shape)) * 2
        bound = min(nbytes // 4, QUARTER_16K)  # a quarter, and 128 MiB beyond 16384^2
        for key in ON[axes]:
            r = measured(key, path, warm, budget, root)
            if r["mode"] != "chunked":
                raise AssertionError(f"{key} on {name} ran {r['mode']}, not chunk-wise")
            rows.append(
                Row(
                    "chunked",
                    f"{key} on {name}: peak memory added",
                    r["peak"],
                    nbytes,
                    goal=f"<= {fmt_bytes(bound)}",
                    met=r["peak"] <= bound,
                    unit="B",
                    note=f"{fmt_seconds(r['seconds'])}, chunk-wise: {', '.join(r['chunked'])}",
                )
            )
            print(f"{key} on {name}: {fmt_bytes(r['peak'])} in {fmt_seconds(r['seconds'])}")
    return rows


def _relabel_map(x: np.ndarray, y: np.ndarray) -> dict[int, int] | None:
    """Return the chunk-wise id -> in-memory id map when ``x`` and ``y`` are the same objects."""
    x, y = np.asarray(x).ravel(), np.asarray(y).ravel()
    if not np.array_equal(x == 0, y == 0):
        return None
    pairs = np.unique(np.stack([x[x > 0], y[y > 0]]), axis=1)
    if len(np.unique(pairs[0])) != pairs.shape[1] or len(np.unique(pairs[1])) != pairs.shape[1]:
        return None
    return dict(zip(pairs[0].tolist(), pairs[1].tolist(), strict=True))


def _same(key: str, name: str, x: object, y: object, a: object, b: object) -> bool:
    """Labels: the same objects (chunk-wise ids may differ); tables: equal once ids are mapped."""
    import pandas as pd

    if not isinstance(y, pd.DataFrame):
        return _relabel_map(x, y) is not None
    labels = next(n for n in b if not isinstance(b[n], pd.DataFrame))
    ids = _relabel_map(a[labels], b[labels])
    if ids is None:
        return False
    x = x.assign(label=x["label"].map(ids)).sort_values("label", ignore_index=True)
    try:
        pd.testing.assert_frame_equal(x, y.sort_values("label", ignore_index=True), rtol=1e-9)
    except AssertionError as exc:
        print(f"{key}: table {name}: {exc}")
        return False
    return True


def time_rows(side: int, repeat: int) -> list[Row]:
    """Chunk-wise vs in-memory on a ``side``^2 image that fits: equal results, then times."""
    from napari_fbias.pipeline import Pipeline
    from napari_fbias.pipeline.runner import run_pipeline

    img = np.tile(_tile_2d(min(side, 1024)), (max(1, side // 1024),) * 2)[:side, :side].copy()
    rows = []
    for key in ON["yx"]:
        pipe = Pipeline.from_dict(PIPELINES[key])

        def chunked(p=pipe) -> object:
            return run_pipeline(p, img, chunked=True, chunks=side // 4, checksum=False)

        def in_memory(p=pipe) -> object:
            return run_pipeline(p, img, chunked=False, checksum=False)

        a, b = chunked(), in_memory()
        same = {name: _same(key, name, a[name], b[name], a, b) for name in b}
        if not all(same.values()):
            raise AssertionError(f"{key}: chunk-wise results differ from in memory: {same}")
        times = alternate({"chunked": chunked, "memory": in_memory}, repeat, warmup=False)
        t_c, t_m = median(times["chunked"]), median(times["memory"])
        rows.append(
            Row(
                "chunked",
                f"{key} {side}x{side}: chunk-wise (16 blocks) vs in memory, same objects",
                t_c,
                t_m,
                goal="(recorded)",
                met=True,
                note="threaded scheduler",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        p = argparse.ArgumentParser()
        p.add_argument("pipeline")
        p.add_argument("image")
        p.add_argument("warm")
        p.add_argument("budget", type=int)
        p.add_argument("--tmp", default=None)
        return child(p.parse_args(argv[1:]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, repeat=1)
    parser.add_argument("--data", type=Path, default=None, help="folder for the images (kept)")
    parser.add_argument("--sizes", default="16384,32768", help="slide sides, comma-separated")
    parser.add_argument("--no-volume", action="store_true", help="skip the 3D volume")
    parser.add_argument("--budget", type=int, default=64 * 2**20, help="memory budget, bytes")
    parser.add_argument("--no-memory", action="store_true", help="only the in-memory comparison")
    args = parser.parse_args(argv)
    if args.quick:
        images = [("slide_2048", (2048, 2048), (512, 512), "yx")]
        images += [("volume_32x256x256", (32, 256, 256), (16, 128, 128), "zyx")]
        images += [("movie_3x512x512", (3, 512, 512), (1, 256, 256), "tyx")]
        budget, side_time = 16 * 2**20, 512
    else:
        sides = [int(s) for s in args.sizes.split(",")]
        images = [(f"slide_{s}", (s, s), (1024, 1024), "yx") for s in sides]
        images += [(f"movie_3x{s}x{s}", (3, s, s), (1, 1024, 1024), "tyx") for s in sides[:1]]
        if not args.no_volume:
            images.append(("volume_256x1024x1024", (256, 1024, 1024), (64, 256, 256), "zyx"))
        budget, side_time = args.budget, 4096
    rows = time_rows(side_time, args.repeat)
    with contextlib.ExitStack() as stack:
        root = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory(dir="/tmp")))
        root.mkdir(parents=True, exist_ok=True)
        if not args.no_memory:
            rows += memory_rows(root, images, budget)
    print_machine()
    print_rows(rows, title=f"bench_chunked_memory quick={args.quick} budget={fmt_bytes(budget)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
