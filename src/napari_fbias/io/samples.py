"""The bundled, offline sample data: where the files are and how to load them.

The files live in the package folder ``napari_fbias/sample_data`` (found with
:mod:`importlib.resources`) and are all made by the seeded generators of
:mod:`napari_fbias.io.synth`; :data:`SAMPLES` records, for each sample, its
files, the generator and the exact arguments, so that
``scripts/make_sample_data.py`` can rebuild them and the tests can check that
the shipped files equal a fresh regeneration.

Nothing here imports Qt or napari.
"""

from __future__ import annotations

import importlib.resources
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile

from napari_fbias.io.errors import FbiasIOError
from napari_fbias.io.image import Channel, MultiscaleImage, from_array

__all__ = [
    "SAMPLES",
    "SampleDataError",
    "SampleInfo",
    "SampleNotFoundError",
    "channel_window",
    "list_samples",
    "load_cells_3d",
    "load_nuclei_2d",
    "load_nuclei_batch",
    "load_nuclei_multiscale",
    "load_spots_timelapse",
    "nuclei_batch_paths",
    "nuclei_multiscale_path",
    "read_ome_tiff",
    "sample_dir",
    "sample_path",
]

_UNIT_NAMES = {"µm": "micrometer", "um": "micrometer", "s": "second", "ms": "millisecond"}


class SampleDataError(FbiasIOError):
    """A bundled sample file is broken or does not match what the loader expects."""


class SampleNotFoundError(FbiasIOError, FileNotFoundError):
    """A sample name is unknown, or its file is missing from the installation."""


@dataclass(frozen=True)
class SampleInfo:
    """One bundled sample.

    Parameters
    ----------
    name : str
        Key of the sample (also its napari sample-data key where there is one).
    description : str
        One line for menus and ``list_samples()``.
    files : tuple of str
        Its files and folders, relative to the sample folder; the first is the
        image (or folder of images).
    generator : str
        Name of the :mod:`napari_fbias.io.synth` function that made it.
    params : Mapping
        The arguments given to the generator (per image for a batch).
    """

    name: str
    description: str
    files: tuple[str, ...]
    generator: str
    params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """Path of the main file or folder (it may be missing: see :func:`sample_path`)."""
        return sample_dir() / self.files[0]

    def to_dict(self) -> dict[str, Any]:
        """Name, description and path as a plain dict (path as a string)."""
        return {"name": self.name, "description": self.description, "path": str(self.path)}


#: Seeds of the four nuclei batch images, in file order.
NUCLEI_BATCH_SEEDS = (10, 11, 12, 13)

#: Every bundled sample, by name.
SAMPLES: dict[str, SampleInfo] = {
    s.name: s
    for s in (
        SampleInfo(
            "nuclei_2d",
            "2D widefield nuclei (DAPI), 512x512, 0.65 um pixels, with ground-truth labels",
            ("nuclei_2d.ome.tif", "nuclei_2d_labels.ome.tif"),
            "make_nuclei_2d",
            {"shape": (512, 512), "n_nuclei": 60, "seed": 0},
        ),
        SampleInfo(
            "nuclei_batch",
            "Four 256x256 nuclei images (different seeds) for batch runs, with labels",
            ("nuclei_batch", "nuclei_batch_labels"),
            "make_nuclei_2d",
            {"shape": (256, 256), "n_nuclei": 16, "seed": NUCLEI_BATCH_SEEDS},
        ),
        SampleInfo(
            "spots_timelapse",
            "Time-lapse of drifting, blinking spots, 30x256x256, with ground-truth tracks",
            ("spots_timelapse.ome.tif", "spots_timelapse_tracks.csv"),
            "make_spots_timelapse",
            {"shape": (30, 256, 256), "n_spots": 40, "seed": 1},
        ),
        SampleInfo(
            "cells_3d",
            "3D confocal cells, 2 channels (DAPI, membrane), 24x128x128, with nuclei labels",
            ("cells_3d.ome.tif", "cells_3d_labels.ome.tif"),
            "make_cells_3d",
            {"shape": (24, 128, 128), "n_cells": 12, "seed": 2},
        ),
        SampleInfo(
            "nuclei_multiscale",
            "The 2D nuclei as a 3-level OME-Zarr (NGFF 0.4) with labels/ground_truth",
            ("nuclei_multiscale.ome.zarr",),
            "make_nuclei_2d",
            {"shape": (512, 512), "n_nuclei": 60, "seed": 0, "n_levels": 3},
        ),
    )
}


# --- finding the files -------------------------------------------------------------------
def sample_dir() -> Path:
    """Return the folder holding the bundled sample files.

    Raises
    ------
    SampleNotFoundError
        If the installed package has no ``sample_data`` folder on disk.
    """
    root = Path(str(importlib.resources.files("napari_fbias") / "sample_data"))
    if not root.is_dir():
        raise SampleNotFoundError(
            f"the sample data folder {root} is missing from this installation of napari-fbias; "
            "reinstall the package, or rebuild it with scripts/make_sample_data.py"
        )
    return root


def sample_path(name: str) -> Path:
    """Return the path of a sample, by sample name or by file name.

    Parameters
    ----------
    name : str
        A key of :data:`SAMPLES` (``"nuclei_2d"``: its main file) or a path
        relative to the sample folder (``"nuclei_2d_labels.ome.tif"``).

    Returns
    -------
    pathlib.Path
        An existing file or folder.

    Raises
    ------
    SampleNotFoundError
        If the name is unknown or the file is missing.
    """
    relative = SAMPLES[name].files[0] if name in SAMPLES else name
    root = sample_dir()
    path = (root / relative).resolve()
    if root.resolve() not in path.parents:
        raise SampleNotFoundError(f"{name!r} is not a file of the sample data folder {root}")
    if not path.exists():
        known = ", ".join(sorted(SAMPLES))
        raise SampleNotFoundError(
            f"no sample file {relative!r} in {root}; sample names are: {known}"
        )
    return root / relative


def list_samples() -> list[SampleInfo]:
    """Return every bundled sample (name, description, path), in a stable order."""
    return list(SAMPLES.values())


def nuclei_multiscale_path() -> Path:
    """Return the path of the multiscale OME-Zarr nuclei sample."""
    return sample_path("nuclei_multiscale")


def nuclei_batch_paths() -> list[tuple[Path, Path]]:
    """Return ``(image, ground-truth labels)`` paths of the nuclei batch, in order."""
    images = sorted(sample_path("nuclei_batch").glob("*.ome.tif"))
    labels_dir = sample_path("nuclei_batch_labels")
    pairs = []
    for image in images:
        labels = labels_dir / image.name
        if not labels.is_file():
            raise SampleNotFoundError(
                f"the labels of batch image {image.name} ({labels}) are missing"
            )
        pairs.append((image, labels))
    return pairs


# --- reading -----------------------------------------------------------------------------
def read_ome_tiff(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Read a (small) OME-TIFF written by ``scripts/make_sample_data.py``.

    Parameters
    ----------
    path : pathlib.Path
        The file.

    Returns
    -------
    data : numpy.ndarray
        The pixels.
    meta : dict
        ``axes`` (lower case, e.g. ``"czyx"``), ``scale`` and ``units`` (one
        per axis; 1.0 and None for ``c``), ``channel_names`` and
        ``channel_colors`` (hex RGB or None).

    Raises
    ------
    SampleDataError
        If the file is not an OME-TIFF or its metadata lack a needed field.
    """
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.is_ome or tif.ome_metadata is None:
                raise SampleDataError(f"{path} is not an OME-TIFF (no OME-XML metadata)")
            series = tif.series[0]
            data = series.asarray()
            axes = series.axes.lower()
            xml = tif.ome_metadata
    except (OSError, tifffile.TiffFileError) as exc:
        raise SampleDataError(f"cannot read sample file {path}: {exc}") from exc
    pixels = _find(ET.fromstring(xml), "Pixels", path)
    scale: list[float] = []
    units: list[str | None] = []
    for a in axes:
        if a == "c":
            scale.append(1.0)
            units.append(None)
            continue
        key, unit_key = (
            ("TimeIncrement", "TimeIncrementUnit")
            if a == "t"
            else (f"PhysicalSize{a.upper()}", f"PhysicalSize{a.upper()}Unit")
        )
        if key not in pixels.attrib:
            raise SampleDataError(f"{path}: OME metadata have no {key} for axis {a!r}")
        scale.append(float(pixels.attrib[key]))
        unit = pixels.attrib.get(unit_key, "s" if a == "t" else "µm")
        units.append(_UNIT_NAMES.get(unit, unit))
    names, colors = [], []
    for ch in pixels:
        if ch.tag.rsplit("}", 1)[-1] != "Channel":
            continue
        names.append(ch.attrib.get("Name", f"channel {len(names)}"))
        color = ch.attrib.get("Color")
        colors.append(None if color is None else f"{(int(color) & 0xFFFFFFFF) >> 8:06X}")
    meta = {
        "axes": axes,
        "scale": tuple(scale),
        "units": tuple(units),
        "channel_names": tuple(names),
        "channel_colors": tuple(colors),
    }
    return data, meta


def _find(root: ET.Element, tag: str, path: Path) -> ET.Element:
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == tag:
            return el
    raise SampleDataError(f"{path}: OME metadata have no <{tag}> element")


def channel_window(data: np.ndarray) -> tuple[float, float]:
    """Contrast limits to show a sample channel with: its minimum to its 99.8th percentile."""
    return float(data.min()), round(float(np.percentile(data, 99.8)), 1)


def _image(path: Path, name: str, expected_axes: str) -> MultiscaleImage:
    data, meta = read_ome_tiff(path)
    if meta["axes"] != expected_axes:
        raise SampleDataError(
            f"{path}: expected axes {expected_axes!r}, the file has {meta['axes']!r}"
        )
    c = expected_axes.find("c")
    planes = [data.take(i, axis=c) for i in range(data.shape[c])] if c >= 0 else [data]
    names = meta["channel_names"] or (name,)
    colors = meta["channel_colors"] or (None,)
    channels = [
        Channel(name=n, color=col, window=channel_window(p))
        for n, col, p in zip(names, colors, planes, strict=False)
    ]
    return from_array(
        data,
        expected_axes,
        scale=meta["scale"],
        units=meta["units"],
        channels=channels,
        name=name,
        source=str(path),
    )


def _labels(path: Path, expected_axes: str) -> np.ndarray:
    data, meta = read_ome_tiff(path)
    if meta["axes"] != expected_axes:
        raise SampleDataError(
            f"{path}: expected label axes {expected_axes!r}, the file has {meta['axes']!r}"
        )
    return data


def load_nuclei_2d() -> tuple[MultiscaleImage, np.ndarray]:
    """Load the 2D nuclei sample.

    Returns
    -------
    image : MultiscaleImage
        ``yx`` ``uint16`` image, 0.65 um pixels, one channel ``"DAPI"``.
    labels : numpy.ndarray
        ``uint16`` ground-truth labels, same shape, 0 is background.
    """
    info = SAMPLES["nuclei_2d"]
    image = _image(sample_path(info.files[0]), "nuclei_2d", "yx")
    return image, _labels(sample_path(info.files[1]), "yx")


def load_nuclei_batch() -> list[tuple[MultiscaleImage, np.ndarray]]:
    """Load the four 256x256 nuclei batch images and their ground-truth labels."""
    return [
        (_image(img, img.name.split(".")[0], "yx"), _labels(lab, "yx"))
        for img, lab in nuclei_batch_paths()
    ]


def load_spots_timelapse() -> tuple[MultiscaleImage, pd.DataFrame]:
    """Load the spots time-lapse sample.

    Returns
    -------
    image : MultiscaleImage
        ``tyx`` ``uint16`` movie (2 s per frame, 0.2 um pixels).
    tracks : pandas.DataFrame
        Ground truth, columns ``track_id, t, y, x, after_blink`` (see
        :func:`napari_fbias.io.synth.make_spots_timelapse`).
    """
    info = SAMPLES["spots_timelapse"]
    image = _image(sample_path(info.files[0]), "spots_timelapse", "tyx")
    csv = sample_path(info.files[1])
    try:
        tracks = pd.read_csv(
            csv,
            dtype={"track_id": np.int64, "t": np.int64, "y": np.float64, "x": np.float64},
        )
    except (OSError, ValueError) as exc:
        raise SampleDataError(f"cannot read the ground-truth tracks {csv}: {exc}") from exc
    missing = {"track_id", "t", "y", "x"} - set(tracks.columns)
    if missing:
        raise SampleDataError(f"{csv}: missing column(s) {sorted(missing)}")
    if "after_blink" in tracks:
        tracks["after_blink"] = tracks["after_blink"].astype(bool)
    return image, tracks


def load_cells_3d() -> tuple[MultiscaleImage, np.ndarray]:
    """Load the 3D two-channel cells sample.

    Returns
    -------
    image : MultiscaleImage
        ``czyx`` ``uint16`` stack, channels ``"DAPI"`` and ``"Membrane"``,
        voxel 1.0 x 0.3 x 0.3 um.
    labels : numpy.ndarray
        ``uint16`` ground-truth nuclei labels ``(z, y, x)``.
    """
    info = SAMPLES["cells_3d"]
    image = _image(sample_path(info.files[0]), "cells_3d", "czyx")
    return image, _labels(sample_path(info.files[1]), "zyx")


def load_nuclei_multiscale() -> MultiscaleImage:
    """Open the multiscale OME-Zarr sample (lazily) with the project's reader.

    Raises
    ------
    SampleDataError
        If this installation has no OME-Zarr reader (``napari_fbias.io.open``).
    """
    try:
        from napari_fbias.io.open import open_image
    except ImportError as exc:
        raise SampleDataError(
            "reading the OME-Zarr sample needs napari_fbias.io.open, which is not available"
        ) from exc
    return open_image(str(nuclei_multiscale_path()))
