"""napari sample-data contributions: the bundled samples as napari layers.

Each function is a command of the manifest (``napari.yaml``: *File > Open
Sample > napari-fbias*) and returns napari ``LayerData`` tuples
``(data, kwargs, layer_type)``: the image in physical units, then its ground
truth (labels or tracks). The images go through the same
:func:`~napari_fbias._layers.image_to_layer_data` as any opened image. Plain
data only: no Qt, and napari itself is not imported.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_fbias._layers import image_to_layer_data
from napari_fbias.io import samples
from napari_fbias.io.image import MultiscaleImage, from_array

__all__ = ["cells_3d", "nuclei_2d", "nuclei_multiscale", "spots_timelapse"]

LayerData = tuple[Any, dict[str, Any], str]

GROUND_TRUTH = "ground truth"


def _with_ground_truth(img: MultiscaleImage, labels: np.ndarray) -> MultiscaleImage:
    """Attach ground-truth labels (same grid as the image without ``c``) to ``img``."""
    keep = [i for i, a in enumerate(img.axes) if a != "c"]
    gt = from_array(
        labels,
        [img.axes[i] for i in keep],
        scale=[img.scale[i] for i in keep],
        units=[img.units[i] for i in keep],
        name=GROUND_TRUTH,
        source=img.source,
        is_label=True,
    )
    return img.with_(labels={GROUND_TRUTH: gt})


def nuclei_2d() -> list[LayerData]:
    """2D nuclei image and its ground-truth labels."""
    img, labels = samples.load_nuclei_2d()
    return image_to_layer_data(_with_ground_truth(img, labels))


def spots_timelapse() -> list[LayerData]:
    """Moving-spots time-lapse and its ground-truth tracks (napari Tracks layer)."""
    img, tracks = samples.load_spots_timelapse()
    layers = image_to_layer_data(img)
    data = tracks[["track_id", "t", "y", "x"]].to_numpy(dtype=np.float64)
    kwargs: dict[str, Any] = {
        "name": f"{GROUND_TRUTH} tracks",
        "scale": img.scale,
        "translate": img.translations[0],
        "axis_labels": img.axes,
        "units": tuple(u or "pixel" for u in img.units),
        "features": tracks[["after_blink"]].reset_index(drop=True),
        "tail_length": 10,
        "metadata": {"ground_truth": True, "source": img.source},
    }
    return [*layers, (data, kwargs, "tracks")]


def cells_3d() -> list[LayerData]:
    """3D two-channel cells (one layer per channel) and the ground-truth nuclei."""
    img, labels = samples.load_cells_3d()
    return image_to_layer_data(_with_ground_truth(img, labels))


def nuclei_multiscale() -> list[LayerData]:
    """Multiscale OME-Zarr nuclei, opened lazily, with its ``labels/ground_truth``."""
    return image_to_layer_data(samples.load_nuclei_multiscale())
