"""Small operations registered only for the pipeline tests (category ``testing``).

They exercise what the built-in ops do not: a required setting, bounds on
every kind of setting, context parameters recorded for inspection, and ops
that misbehave (wrong return kind, unexpected exception). Imported by the
pipeline tests; also loadable through the ``napari_fbias.ops`` entry point
group in a temporary ``*.dist-info`` (see test_pipeline_validate.py).
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

import numpy as np
import pandas as pd

from napari_fbias.ops.registry import register_op
from napari_fbias.ops.types import Image, Labels, Table

#: Context received by ``testing.context`` calls: list of (axes, spacing, shape).
CONTEXT_CALLS: list[tuple[str, object, tuple[int, ...]]] = []


@register_op("testing.scale", category="testing", depth=0)
def scale(
    image: Image,
    *,
    factor: Annotated[float, {"min": 0.0, "max": 10.0}],
    offset: Annotated[int, {"min": -5, "max": 5}] = 0,
    mode: Literal["multiply", "divide"] = "multiply",
    clip: bool = False,
    window: Annotated[tuple[float, float], {"min": 0.0}] = (0.0, 1.0),
    label: str | None = None,
) -> Image:
    """Multiply (or divide) an image by a factor, plus an offset (test op).

    Parameters
    ----------
    image : Image
        Any spatial block.
    factor : float
        Required factor.
    offset : int
        Added after scaling.
    mode : {'multiply', 'divide'}
        What to do with the factor.
    clip : bool
        Clip to the window.
    window : tuple of float
        Clip range.
    label : str, optional
        Unused text.
    """
    arr = np.asarray(image, dtype=np.float64)
    out = arr * factor if mode == "multiply" else arr / factor
    out = out + offset
    if clip:
        out = np.clip(out, *window)
    return out


@register_op("testing.context", category="testing", spatial=False)
def context(image: Image, *, axes: str = "", spacing: tuple[float, ...] | None = None) -> Table:
    """Record the axes and spacing the runner passes (test op)."""
    CONTEXT_CALLS.append((axes, spacing, tuple(np.shape(image))))
    return pd.DataFrame({"axes": [axes], "ndim": [np.ndim(image)]})


@register_op("testing.block_context", category="testing")
def block_context(image: Image, *, spacing: tuple[float, ...] | None = None) -> Table:
    """Measure one spatial block: its sum and shape (test op, spatial, gives a table)."""
    CONTEXT_CALLS.append(("block", spacing, tuple(np.shape(image))))
    return pd.DataFrame({"total": [float(np.sum(image))], "ndim": [np.ndim(image)]})


@register_op("testing.wrong_kind", category="testing")
def wrong_kind(image: Image) -> Labels:
    """Return a float image although labels are declared (a buggy op)."""
    return np.asarray(image, dtype=np.float32)


@register_op("testing.crash", category="testing")
def crash(image: Image) -> Image:
    """Fail with an unexpected error (a buggy op)."""
    raise ZeroDivisionError("division by zero inside the op")


@register_op("testing.die_once", category="testing")
def die_once(image: Image, *, marker: str = "") -> Image:
    """Kill the worker process the first time it runs (marker file absent), then pass through."""
    if marker and not os.path.exists(marker):
        with open(marker, "w") as fh:
            fh.write("died once\n")
        os._exit(1)
    return np.asarray(image)


def make_blobs(shape: tuple[int, ...], n: int = 12, seed: int = 0, dtype: str = "uint16"):
    """A small synthetic image of bright round blobs on a noisy background."""
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    img = np.zeros(shape, dtype=np.float64)
    for _ in range(n):
        img[tuple(rng.integers(0, s) for s in shape)] = 1.0
    img = ndi.gaussian_filter(img, 3.0)
    img = img / max(img.max(), 1e-12) * 1000 + rng.normal(50, 10, shape)
    img = np.clip(img, 0, None)
    return img.astype(dtype)


def classical_pipeline(
    name: str = "classical",
    *,
    sigma: float = 1.0,
    measure: bool = True,
    measure_image: bool = True,
) -> dict:
    """The small classical pipeline many tests run: smooth -> otsu threshold (-> measure).

    Returns a fresh plain dict (a pipeline document), so tests may edit it.
    """
    steps: list[dict] = [
        {
            "id": "smooth",
            "op": "preprocess.gaussian",
            "inputs": {"image": "image"},
            "params": {"sigma": sigma},
        },
        {
            "id": "nuclei",
            "op": "segment.threshold",
            "inputs": {"image": "smooth"},
            "params": {"method": "otsu"},
        },
    ]
    outputs = {"nuclei": {"from": "nuclei"}}
    if measure:
        inputs = {"labels": "nuclei", "image": "image"} if measure_image else {"labels": "nuclei"}
        steps.append({"id": "props", "op": "measure.regionprops", "inputs": inputs})
        outputs["props"] = {"from": "props"}
    return {
        "fbias_pipeline": 1,
        "name": name,
        "inputs": {"image": {"kind": "image"}},
        "steps": steps,
        "outputs": outputs,
    }


def classical_pipeline_yaml(name: str = "classical", **options: object) -> str:
    """:func:`classical_pipeline` as the text of a ``*.fbias.yaml`` file."""
    import yaml

    return yaml.safe_dump(classical_pipeline(name, **options), sort_keys=False)  # type: ignore[arg-type]
