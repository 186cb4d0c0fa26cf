"""Benchmark: time to first pixels of a huge multiscale OME-Zarr, ours vs napari-ome-zarr.

The image is a 2D ``yx`` uint16 OME-Zarr (NGFF 0.4, zarr v2, 1024 x 1024
chunks, Blosc/lz4) of 106 496 x 106 496 pixels at full resolution (22.7 GB
*virtual*) with 8 resolution levels. It is written sparsely so that it fits
any disk: the metadata, every chunk of the levels no larger than 4096 x 4096
pixels, and the one chunk at the centre of each larger level. Every other
chunk is absent and reads as the array's ``fill_value`` (0), as the Zarr
specification allows; neither reader can tell a sparse store from a full one
until it reads those chunks, and the first view reads none of them.

Both readers are called the way napari calls them: ``napari_get_reader(path)``
and then the returned function, giving napari layer data (lazy dask arrays).
What is timed, per reader, in alternating rounds (median reported):

* ``open``: ``napari_get_reader`` + the reader function (metadata only);
* ``first view``: open + computing the lowest-resolution level, which is what
  napari draws for a zoomed-out, fitted view of a multiscale image (contrast
  limits come from the ``omero`` window, so neither reader scans the data);
* ``zoom tile``: one 1024 x 1024 full-resolution tile at the centre (what
  zooming into the middle reads), on the layer data already opened.

Both readers are checked to return the same pixels. The same is done over
HTTP from a local server (``tests/helpers/http_server.py``) that waits
``--delay`` seconds (default 50 ms) before answering each request. With
``--viewer`` it also times a real napari viewer (needs a display; use
``xvfb-run -a``): ``viewer.open(path, plugin=...)`` up to the first
``viewer.screenshot()`` that shows image pixels (that is, the time until the
canvas has drawn the image), for both plugins.

    python bench/bench_open.py [--quick] [--repeat 3] [--viewer] [--data DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    Row,
    add_common_args,
    alternate,
    fmt_bytes,
    fmt_seconds,
    median,
    print_machine,
    print_rows,
    tests_on_path,
)

CHUNK = 1024
DENSE_MAX = 4096  # levels up to this size are written in full
FULL_SIZE = 104 * CHUNK  # 106 496 px: 22.7 GB of uint16
QUICK_SIZE = 16 * CHUNK


# --- the sparse store ----------------------------------------------------------------------


def level_shapes(size: int) -> list[int]:
    """Sides of the levels: halving until the side is at most one chunk (rounded up)."""
    sides = [size]
    while sides[-1] > CHUNK:
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def pixels(y0: int, x0: int, h: int, w: int, factor: int, seed: int) -> np.ndarray:
    """Synthetic content of a block at a level that is ``factor`` times downsampled."""
    yy = (np.arange(y0, y0 + h, dtype=np.float32) * factor)[:, None]
    xx = (np.arange(x0, x0 + w, dtype=np.float32) * factor)[None, :]
    rng = np.random.default_rng(seed)
    base = 1000 + 400 * np.sin(yy / 997.0) * np.cos(xx / 1303.0)
    base += 300 * (np.sin(yy / 41.0) * np.sin(xx / 37.0) > 0.6)
    return (base + rng.normal(0, 20, (h, w))).clip(0, 65535).astype(np.uint16)


def make_sparse_store(path: Path, size: int) -> dict[str, Any]:
    """Write the sparse multiscale store (see the module docstring) unless it exists."""
    import zarr

    marker = path / ".bench_complete"
    sides = level_shapes(size)
    if marker.exists() and json.loads(marker.read_text()).get("size") == size:
        return json.loads(marker.read_text())
    group = zarr.open_group(zarr.storage.LocalStore(path), mode="w", zarr_format=2)
    written = 0
    for k, side in enumerate(sides):
        arr = group.create_array(
            str(k),
            shape=(side, side),
            chunks=(CHUNK, CHUNK),
            dtype="uint16",
            fill_value=0,
            chunk_key_encoding={"name": "v2", "separator": "/"},
        )
        if side <= DENSE_MAX:
            arr[...] = pixels(0, 0, side, side, 2**k, seed=k)
            written += math.ceil(side / CHUNK) ** 2
        else:
            c = (side // 2) // CHUNK * CHUNK
            arr[c : c + CHUNK, c : c + CHUNK] = pixels(c, c, CHUNK, CHUNK, 2**k, seed=k)
            written += 1
    datasets = [
        {
            "path": str(k),
            "coordinateTransformations": [{"type": "scale", "scale": [0.1 * 2**k] * 2}],
        }
        for k in range(len(sides))
    ]
    group.attrs.put(
        {
            "multiscales": [
                {
                    "version": "0.4",
                    "name": "big",
                    "axes": [
                        {"name": "y", "type": "space", "unit": "micrometer"},
                        {"name": "x", "type": "space", "unit": "micrometer"},
                    ],
                    "datasets": datasets,
                }
            ],
            "omero": {
                "channels": [
                    {
                        "label": "DNA",
                        "color": "FFFFFF",
                        "active": True,
                        "window": {"start": 500, "end": 2000, "min": 0, "max": 65535},
                    }
                ],
                "rdefs": {"model": "greyscale"},
            },
        }
    )
    info = {
        "size": size,
        "levels": len(sides),
        "virtual_bytes": size * size * 2,
        "chunks_written": written,
        "chunks_total": sum(math.ceil(s / CHUNK) ** 2 for s in sides),
        "disk_bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
    }
    marker.write_text(json.dumps(info))
    return info


# --- the two readers -------------------------------------------------------------------------


def open_ours(path: str) -> list[Any]:
    from napari_fbias._reader import napari_get_reader

    reader = napari_get_reader(path)
    if reader is None:
        raise RuntimeError(f"napari-fbias does not read {path}")
    return reader(path)


def open_theirs(path: str) -> list[Any]:
    from napari_ome_zarr._reader import napari_get_reader

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the root attributes
        reader = napari_get_reader(path)
        if reader is None:
            raise RuntimeError(f"napari-ome-zarr does not read {path}")
        return reader(path)


READERS: dict[str, Callable[[str], list[Any]]] = {
    "napari-fbias": open_ours,
    "napari-ome-zarr": open_theirs,
}


def first_view(opener: Callable[[str], list[Any]], path: str) -> dict[str, Any]:
    """Open, compute the lowest level, then the centre tile; times of each part."""
    t0 = time.perf_counter()
    layers = opener(path)
    t1 = time.perf_counter()
    levels = layers[0][0]
    lowest = np.asarray(levels[-1])
    t2 = time.perf_counter()
    side = int(levels[0].shape[-1])
    c = (side // 2) // CHUNK * CHUNK
    tile = np.asarray(levels[0][c : c + CHUNK, c : c + CHUNK])
    t3 = time.perf_counter()
    return {
        "open": t1 - t0,
        "first view": t2 - t0,
        "zoom tile": t3 - t2,
        "lowest": lowest,
        "tile": tile,
        "n_levels": len(levels),
    }


def measure_readers(path: str, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Alternate both readers ``repeat`` times (after a warm-up); check equal pixels."""
    times: dict[str, dict[str, list[float]]] = {
        name: {"open": [], "first view": [], "zoom tile": []} for name in READERS
    }
    ref = {name: first_view(f, path) for name, f in READERS.items()}  # warm-up
    a, b = ref.values()
    if a["n_levels"] != b["n_levels"]:
        raise AssertionError(f"level counts differ: {a['n_levels']} vs {b['n_levels']}")
    for key in ("lowest", "tile"):
        if not np.array_equal(a[key], b[key]):
            raise AssertionError(f"the readers disagree on the {key} pixels")
    if not a["tile"].any():
        raise AssertionError("the centre tile is empty: the sparse store is wrong")
    for _ in range(max(1, repeat)):
        for name, f in READERS.items():
            r = first_view(f, path)
            for key in times[name]:
                times[name][key].append(r[key])
    return times


def reader_rows(where: str, times: dict[str, dict[str, list[float]]]) -> list[Row]:
    rows = []
    for case in ("open", "first view", "zoom tile"):
        ours = median(times["napari-fbias"][case])
        theirs = median(times["napari-ome-zarr"][case])
        rows.append(
            Row(
                "open",
                f"{where}: {case}",
                ours,
                theirs,
                goal="<= 1.0x napari-ome-zarr",
                met=ours <= theirs,
            )
        )
    return rows


# --- a real viewer ---------------------------------------------------------------------------


def viewer_first_pixels(viewer: Any, path: str, plugin: str, timeout: float = 60.0) -> float:
    """Seconds from ``viewer.open`` until a screenshot shows image pixels."""
    viewer.layers.clear()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        viewer.open(path, plugin=plugin)
    while True:
        shot = viewer.screenshot(canvas_only=True, flash=False)
        if shot[..., :3].max() > 0:
            return time.perf_counter() - t0
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError(f"{plugin}: nothing drawn after {timeout} s")


def measure_viewer(paths: dict[str, str], repeat: int) -> list[Row]:
    import napari

    viewer = napari.Viewer(show=True)
    rows = []
    try:
        for where, path in paths.items():
            funcs = {
                p: (lambda p=p, path=path: viewer_first_pixels(viewer, path, p)) for p in READERS
            }
            times = alternate(funcs, repeat)
            ours, theirs = median(times["napari-fbias"]), median(times["napari-ome-zarr"])
            rows.append(
                Row(
                    "open",
                    f"{where}: viewer.open to first drawn pixels",
                    ours,
                    theirs,
                    goal="<= 1.0x napari-ome-zarr",
                    met=ours <= theirs,
                )
            )
    finally:
        viewer.close()
    return rows


# --- main -----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser)
    parser.add_argument("--size", type=int, default=None, help="full-resolution side (px)")
    parser.add_argument("--data", type=Path, default=None, help="folder for the store (kept)")
    parser.add_argument("--delay", type=float, default=0.05, help="HTTP delay per request (s)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP measurements")
    parser.add_argument("--viewer", action="store_true", help="also time a real napari viewer")
    args = parser.parse_args(argv)
    size = args.size or (QUICK_SIZE if args.quick else FULL_SIZE)
    repeat = 1 if args.quick else args.repeat

    with contextlib.ExitStack() as stack:
        root = args.data or Path(stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        store = root / f"big_{size}.ome.zarr"
        t0 = time.perf_counter()
        info = make_sparse_store(store, size)
        print(
            f"store: {size} x {size} uint16, {info['levels']} levels, "
            f"{fmt_bytes(info['virtual_bytes'])} virtual, {info['chunks_written']} of "
            f"{info['chunks_total']} chunks written ({fmt_bytes(info['disk_bytes'])} on disk), "
            f"ready in {fmt_seconds(time.perf_counter() - t0)}"
        )
        rows: list[Row] = []
        local = measure_readers(str(store), repeat)
        rows += reader_rows("local", local)
        fv = median(local["napari-fbias"]["first view"])
        rows.append(Row("open", "local: first view, ours", fv, goal="< 1 s", met=fv < 1.0))
        paths = {"local": str(store)}
        server = None
        if not args.no_http:
            tests_on_path()
            from helpers.http_server import FolderServer

            server = stack.enter_context(FolderServer(root, delay=args.delay))
            url = server.url_for(store.name)
            where = f"HTTP +{args.delay * 1e3:.0f} ms/request"
            remote = measure_readers(url, repeat)
            rows += reader_rows(where, remote)
            paths[where] = url
            server.reset()
            open_ours(url)
            n_ours = len(server.requests)
            server.reset()
            open_theirs(url)
            n_theirs = len(server.requests)
            print(f"HTTP requests to open: napari-fbias {n_ours}, napari-ome-zarr {n_theirs}")
        if args.viewer:
            rows += measure_viewer(paths, repeat)
        print_machine()
        print_rows(rows, title=f"bench_open size={size} repeat={repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
