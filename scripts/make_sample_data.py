"""Regenerate every file in ``sample_data/`` from the seeded generators.

Usage (from the repository root)::

    python scripts/make_sample_data.py                 # all samples, into sample_data/
    python scripts/make_sample_data.py --only cells_3d  # one sample
    python scripts/make_sample_data.py --out /tmp/sd    # somewhere else

What each sample is made of (generator, seed, arguments) is recorded once, in
``napari_fbias.io.samples.SAMPLES``; this script only turns those arrays into
files: zlib-compressed OME-TIFF (with physical sizes and channel names), a CSV
of tracks, and an NGFF 0.4 (zarr v2) multiscale OME-Zarr written with
``napari_fbias.io.ome_zarr_write``. Every file is written atomically
(temporary sibling, then rename), and the same inputs give the same bytes on
every run with the same library versions.
"""

from __future__ import annotations

import argparse
import io
import sys
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import tifffile

from napari_fbias.io import synth
from napari_fbias.io.atomic import atomic_write_bytes, atomic_write_text
from napari_fbias.io.image import Channel
from napari_fbias.io.ome_zarr_write import write_image_with_labels
from napari_fbias.io.samples import SAMPLES, channel_window

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "sample_data"
CREATOR = "napari-fbias scripts/make_sample_data.py"
ZARR_CHUNKS = (256, 256)  # few, big chunks: a small store of few files

#: Display colour (hex RGB) of each channel name.
CHANNEL_COLORS = {"DAPI": "FFFFFF", "Membrane": "FF00FF"}
CELLS_3D_COLORS = {"DAPI": "00FFFF", "Membrane": "FF00FF"}


# --- writers -----------------------------------------------------------------------------
def _ome_color(hex_rgb: str) -> int:
    """OME-XML Color: signed 32-bit RGBA."""
    value = (int(hex_rgb, 16) << 8) | 0xFF
    return value - (1 << 32) if value >= (1 << 31) else value


def write_ome_tiff(
    path: Path,
    data: np.ndarray,
    axes: str,
    *,
    scale: dict[str, float],
    channel_names: Sequence[str],
    channel_colors: Sequence[str] = (),
    description: str = "",
) -> Path:
    """Write ``data`` as a zlib-compressed OME-TIFF with physical sizes, atomically."""
    metadata: dict = {
        "axes": axes.upper(),
        "UUID": str(uuid.uuid5(uuid.NAMESPACE_URL, f"napari-fbias/sample_data/{path.name}")),
        "Creator": CREATOR,
        "Name": path.name.split(".")[0],
    }
    if description:
        metadata["Description"] = description
    for a in "zyx":
        if a in scale:
            metadata[f"PhysicalSize{a.upper()}"] = scale[a]
            metadata[f"PhysicalSize{a.upper()}Unit"] = "µm"
    if "t" in scale:
        metadata["TimeIncrement"] = scale["t"]
        metadata["TimeIncrementUnit"] = "s"
    channel: dict = {"Name": list(channel_names)}
    if channel_colors:
        channel["Color"] = [_ome_color(c) for c in channel_colors]
    metadata["Channel"] = channel
    buf = io.BytesIO()
    tifffile.imwrite(
        buf,
        data,
        ome=True,
        photometric="minisblack",
        compression="zlib",
        compressionargs={"level": 9},
        predictor=False,
        resolution=(1e4 / scale["x"], 1e4 / scale["y"]),
        resolutionunit="CENTIMETER",
        software="napari-fbias",
        metadata=metadata,
    )
    return atomic_write_bytes(path, buf.getvalue())


def write_nuclei_zarr(
    dest: Path, image: np.ndarray, labels: np.ndarray, *, pixel_size: float, n_levels: int
) -> Path:
    """Write the multiscale NGFF 0.4 OME-Zarr (zarr v2) of a 2D image and its labels."""
    write_image_with_labels(
        dest,
        image,
        "yx",
        {"ground_truth": labels},
        scale=(pixel_size, pixel_size),
        units=("micrometer", "micrometer"),
        channels=[Channel("DAPI", CHANNEL_COLORS["DAPI"], channel_window(image))],
        name="nuclei_multiscale",
        n_levels=n_levels,
        ngff_version="0.4",
        chunks=ZARR_CHUNKS,
        overwrite=True,
    )
    return dest


# --- samples -----------------------------------------------------------------------------
def make_nuclei_2d(out: Path) -> list[Path]:
    params = SAMPLES["nuclei_2d"].params
    image, labels = synth.make_nuclei_2d(**params)
    px = synth.NUCLEI_PIXEL_SIZE_UM
    img_name, lab_name = SAMPLES["nuclei_2d"].files
    return [
        write_ome_tiff(
            out / img_name,
            image,
            "yx",
            scale={"y": px, "x": px},
            channel_names=["DAPI"],
            channel_colors=[CHANNEL_COLORS["DAPI"]],
            description=f"synth.make_nuclei_2d(**{dict(params)})",
        ),
        write_ome_tiff(
            out / lab_name,
            labels,
            "yx",
            scale={"y": px, "x": px},
            channel_names=["ground_truth"],
            description="ground-truth nuclei labels",
        ),
    ]


def make_nuclei_batch(out: Path) -> list[Path]:
    info = SAMPLES["nuclei_batch"]
    img_dir, lab_dir = (out / f for f in info.files)
    img_dir.mkdir(exist_ok=True)
    lab_dir.mkdir(exist_ok=True)
    px = synth.NUCLEI_PIXEL_SIZE_UM
    written = []
    for k, seed in enumerate(info.params["seed"], start=1):
        params = {**info.params, "seed": seed}
        image, labels = synth.make_nuclei_2d(**params)
        name = f"nuclei_{k:02d}.ome.tif"
        written.append(
            write_ome_tiff(
                img_dir / name,
                image,
                "yx",
                scale={"y": px, "x": px},
                channel_names=["DAPI"],
                channel_colors=[CHANNEL_COLORS["DAPI"]],
                description=f"synth.make_nuclei_2d(**{params})",
            )
        )
        written.append(
            write_ome_tiff(
                lab_dir / name,
                labels,
                "yx",
                scale={"y": px, "x": px},
                channel_names=["ground_truth"],
                description="ground-truth nuclei labels",
            )
        )
    return written


def make_spots_timelapse(out: Path) -> list[Path]:
    info = SAMPLES["spots_timelapse"]
    movie, tracks = synth.make_spots_timelapse(**info.params)
    px, dt = synth.SPOTS_PIXEL_SIZE_UM, synth.SPOTS_FRAME_INTERVAL_S
    img_name, csv_name = info.files
    image_path = write_ome_tiff(
        out / img_name,
        movie,
        "tyx",
        scale={"t": dt, "y": px, "x": px},
        channel_names=["spots"],
        description=f"synth.make_spots_timelapse(**{dict(info.params)})",
    )
    csv_path = atomic_write_text(out / csv_name, tracks.to_csv(index=False, lineterminator="\n"))
    return [image_path, csv_path]


def make_cells_3d(out: Path) -> list[Path]:
    info = SAMPLES["cells_3d"]
    image, labels = synth.make_cells_3d(**info.params)
    vz, vy, vx = synth.CELLS_3D_VOXEL_SIZE_UM
    scale = {"z": vz, "y": vy, "x": vx}
    img_name, lab_name = info.files
    names = list(synth.CELLS_3D_CHANNELS)
    return [
        write_ome_tiff(
            out / img_name,
            image,
            "czyx",
            scale=scale,
            channel_names=names,
            channel_colors=[CELLS_3D_COLORS[n] for n in names],
            description=f"synth.make_cells_3d(**{dict(info.params)})",
        ),
        write_ome_tiff(
            out / lab_name,
            labels,
            "zyx",
            scale=scale,
            channel_names=["ground_truth"],
            description="ground-truth nuclei labels",
        ),
    ]


def make_nuclei_multiscale(out: Path) -> list[Path]:
    info = SAMPLES["nuclei_multiscale"]
    params = {k: v for k, v in info.params.items() if k != "n_levels"}
    image, labels = synth.make_nuclei_2d(**params)
    dest = write_nuclei_zarr(
        out / info.files[0],
        image,
        labels,
        pixel_size=synth.NUCLEI_PIXEL_SIZE_UM,
        n_levels=info.params["n_levels"],
    )
    return [dest]


MAKERS = {
    "nuclei_2d": make_nuclei_2d,
    "nuclei_batch": make_nuclei_batch,
    "spots_timelapse": make_spots_timelapse,
    "cells_3d": make_cells_3d,
    "nuclei_multiscale": make_nuclei_multiscale,
}


# --- README ------------------------------------------------------------------------------
README_HEAD = """\
# Sample data

Small, offline sample images with ground truth, for teaching, demos and tests.
Every file here is **synthetic**: made by the seeded generators in
`napari_fbias.io.synth` (numpy `default_rng(seed)` + scipy only) and written by

    python scripts/make_sample_data.py

Do not edit these files by hand; change the generator or the arguments in
`napari_fbias.io.samples.SAMPLES` and rerun the script. The tests
(`tests/test_samples.py`) check that the files equal a fresh regeneration.
Load them with `napari_fbias.io.samples` (`load_nuclei_2d()`, ...) or from
napari's *File > Open Sample > napari-fbias* menu.

Every image is simulated like an acquisition: objects, Gaussian PSF blur,
uneven illumination and background, Poisson shot noise, camera offset
(100 ADU), gain 1 ADU/e- and Gaussian read noise (2.5 ADU), `uint16`.

| sample | files | generator and arguments | pixel / voxel size |
|---|---|---|---|
"""

README_DETAILS = """
## Details

- **nuclei_2d** (OME-TIFF, zlib): 60 irregular elliptical nuclei of varied size,
  brightness and chromatin texture (granules, chromocentres, nucleoli), about 30 %
  placed touching or slightly overlapping a neighbour; ground-truth labels
  `1..60` (`uint16`) still separate them (shared pixels go to the nucleus they
  are relatively deeper in). Off-centre vignetting, out-of-focus haze. Channel
  `DAPI`.
- **nuclei_batch**: four 256x256 images made like `nuclei_2d`, seeds 10-13
  (`nuclei_01` is seed 10, ...); labels with the same file names in
  `nuclei_batch_labels/`.
- **spots_timelapse** (OME-TIFF, `TYX`, 2 s per frame): 40 simulated particles
  with a common drift field (uniform drift + swirl), own velocities and Brownian
  steps; they enter and leave the field, some appear or vanish mid-movie, and
  blink off for 1-2 frames. `spots_timelapse_tracks.csv` has columns
  `track_id,t,y,x,after_blink`: one row per frame in which a spot is on and its
  centre inside the image (pixel coordinates, napari Tracks order). A particle
  that leaves and comes back gets a new `track_id`; `after_blink` marks the
  first detection after a gap. trackpy finds them with e.g. `diameter=7,
  minmass=200, search_range=6, memory=2` (spots within ~4 px of the border are
  skipped by `trackpy.locate`).
- **cells_3d** (OME-TIFF, `CZYX`): domes of packed cells on a coverslip;
  channel `DAPI` (nuclei, textured ellipsoids) and `Membrane` (cell outlines +
  faint cytoplasm); anisotropic PSF, signal dimming with depth. Ground-truth
  nuclei labels `1..12` in `cells_3d_labels.ome.tif` (`ZYX`).
- **nuclei_multiscale.ome.zarr**: the `nuclei_2d` image as NGFF 0.4 (zarr v2),
  3 levels (2x2 mean per level, with the matching scale and translation),
  256x256 chunks; `omero` channel `DAPI` with colour and window; ground truth
  under `labels/ground_truth` (same levels, nearest neighbour, `image-label`
  metadata). Written with `napari_fbias.io.ome_zarr_write.write_image_with_labels`.
"""


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def write_readme(out: Path) -> Path:
    scales = {
        "nuclei_2d": f"{synth.NUCLEI_PIXEL_SIZE_UM} um",
        "nuclei_batch": f"{synth.NUCLEI_PIXEL_SIZE_UM} um",
        "spots_timelapse": f"{synth.SPOTS_PIXEL_SIZE_UM} um, {synth.SPOTS_FRAME_INTERVAL_S} s",
        "cells_3d": "z {} x y {} x x {} um".format(*synth.CELLS_3D_VOXEL_SIZE_UM),
        "nuclei_multiscale": f"{synth.NUCLEI_PIXEL_SIZE_UM} um (level 0)",
    }
    rows = []
    for info in SAMPLES.values():
        files = ", ".join(f"`{f}`" for f in info.files)
        args = ", ".join(f"{k}={v!r}" for k, v in info.params.items() if k != "n_levels")
        levels = f", {info.params['n_levels']} levels" if "n_levels" in info.params else ""
        rows.append(
            f"| {info.name} | {files} | `synth.{info.generator}({args})`{levels} "
            f"| {scales[info.name]} |"
        )
    text = README_HEAD + "\n".join(rows) + "\n" + README_DETAILS
    return atomic_write_text(out / "README.md", text)


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder")
    parser.add_argument(
        "--only", nargs="+", choices=sorted(MAKERS), help="regenerate only these samples"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in args.only or MAKERS:
        for path in MAKERS[name](out):
            print(f"{name:18s} {_size(path) / 1024:8.1f} KiB  {path}")
    if not args.only:
        write_readme(out)
    total = sum(_size(p) for p in out.iterdir() if not p.name.startswith("."))
    print(f"total {total / 1024**2:.2f} MiB in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
