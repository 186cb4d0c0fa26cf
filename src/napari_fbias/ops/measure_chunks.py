"""Per-object measurements of labels larger than memory, per block and merged exactly.

Each block contributes, per object id it holds: its pixel count, the
smallest and largest coordinate along every axis, the sum of each
coordinate and, with an intensity image, the sum, minimum and maximum of
the intensity. These merge exactly across blocks (sums add, minima and
maxima combine), so the whole-image values are:

=====================  ===================================================
``area``               pixel count (exact)
``bbox``               min / max + 1 per axis (exact)
``centroid``           coordinate sums / count (exact up to float rounding
                       of the sums: float64, integers below 2**53)
``intensity_mean``     intensity sum / count (float64 sums: within 1e-12
                       relative of numpy's pairwise mean)
``intensity_min/max``  exact
=====================  ===================================================

Properties that do not merge from such sums (perimeter, eccentricity,
axis lengths, orientation, solidity, moments, Euler number, ...) need
the object's pixels together: compute them per object on its bounding box
(:func:`object_crop` gives the crop of the labels and the image around one
object), the way ``measure.regionprops`` computes them in memory.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["MERGED_EXACTLY", "label_bboxes", "label_stats", "object_crop"]

#: Properties merged exactly from per-block partial results.
MERGED_EXACTLY = (
    "area",
    "bbox",
    "centroid",
    "intensity_mean",
    "intensity_min",
    "intensity_max",
    "intensity_sum",
)

Frame = tuple[int, ...]


def _block_stats(
    labels: np.ndarray, image: np.ndarray | None, origin: tuple[int, ...]
) -> dict[str, np.ndarray] | None:
    lab = labels.astype(np.int64, copy=False)
    ids, inverse, counts = np.unique(lab.ravel(), return_inverse=True, return_counts=True)
    keep = ids > 0
    if not keep.any():
        return None
    n = ids.size
    out: dict[str, np.ndarray] = {"id": ids[keep], "area": counts[keep]}
    for k in range(lab.ndim):
        shape = [1] * lab.ndim
        shape[k] = lab.shape[k]
        coord = np.broadcast_to(
            np.arange(lab.shape[k], dtype=np.int64).reshape(shape) + origin[k], lab.shape
        ).ravel()
        lo = np.full(n, np.iinfo(np.int64).max)
        hi = np.full(n, -1, dtype=np.int64)
        np.minimum.at(lo, inverse, coord)
        np.maximum.at(hi, inverse, coord)
        out[f"lo{k}"] = lo[keep]
        out[f"hi{k}"] = hi[keep] + 1
        out[f"sum{k}"] = np.bincount(inverse, weights=coord, minlength=n)[keep]
    if image is not None:
        v = image.ravel().astype(np.float64)
        vmin = np.full(n, np.inf)
        vmax = np.full(n, -np.inf)
        np.minimum.at(vmin, inverse, v)
        np.maximum.at(vmax, inverse, v)
        out["isum"] = np.bincount(inverse, weights=v, minlength=n)[keep]
        out["imin"] = vmin[keep]
        out["imax"] = vmax[keep]
    return out


def label_stats(
    labels: da.Array, n_loop: int, image: da.Array | None = None
) -> dict[Frame, dict[str, np.ndarray]]:
    """Merge per-block object statistics into whole-image ones, per frame.

    Returns
    -------
    dict
        Per frame: ``id``, ``area``, ``bbox-lo{k}``/``bbox-hi{k}`` (as ``lo{k}``,
        ``hi{k}``), ``centroid{k}`` and, with ``image``, ``intensity_sum``,
        ``intensity_mean``, ``intensity_min``, ``intensity_max``; sorted by id.
    """
    import dask

    if image is not None:
        image = image.rechunk(labels.chunks)
    starts = [np.cumsum((0, *c[:-1])) for c in labels.chunks]
    lblocks = labels.to_delayed()
    iblocks = image.to_delayed() if image is not None else None
    tasks, frames = [], []
    for loc in np.ndindex(*lblocks.shape):
        origin = tuple(int(starts[i][loc[i]]) for i in range(n_loop, labels.ndim))
        lb = dask.delayed(np.squeeze)(lblocks[loc], axis=tuple(range(n_loop)))
        ib = (
            None
            if iblocks is None
            else dask.delayed(np.squeeze)(iblocks[loc], axis=tuple(range(n_loop)))
        )
        tasks.append(dask.delayed(_block_stats)(lb, ib, origin))
        frames.append(loc[:n_loop])
    per_frame: dict[Frame, list[dict[str, np.ndarray]]] = {}
    from napari_fbias.ops.chunk_stats import compute_in_batches

    results = compute_in_batches([(lambda s: s, t) for t in tasks])
    for frame, s in zip(frames, results, strict=True):
        if s is not None:
            per_frame.setdefault(frame, []).append(s)
    nd = labels.ndim - n_loop
    out = {}
    for frame, parts in per_frame.items():
        ids_all = np.concatenate([p["id"] for p in parts])
        ids, inv = np.unique(ids_all, return_inverse=True)
        n = ids.size

        def cat(key: str, parts: list[dict[str, np.ndarray]] = parts) -> np.ndarray:
            return np.concatenate([p[key] for p in parts])

        area = np.bincount(inv, weights=cat("area"), minlength=n).astype(np.int64)
        res: dict[str, np.ndarray] = {"id": ids, "area": area}
        for k in range(nd):
            lo = np.full(n, np.iinfo(np.int64).max)
            hi = np.full(n, -1, dtype=np.int64)
            np.minimum.at(lo, inv, cat(f"lo{k}"))
            np.maximum.at(hi, inv, cat(f"hi{k}"))
            res[f"lo{k}"], res[f"hi{k}"] = lo, hi
            res[f"centroid{k}"] = np.bincount(inv, weights=cat(f"sum{k}"), minlength=n) / area
        if image is not None:
            isum = np.bincount(inv, weights=cat("isum"), minlength=n)
            vmin, vmax = np.full(n, np.inf), np.full(n, -np.inf)
            np.minimum.at(vmin, inv, cat("imin"))
            np.maximum.at(vmax, inv, cat("imax"))
            res.update(
                intensity_sum=isum,
                intensity_mean=isum / area,
                intensity_min=vmin,
                intensity_max=vmax,
            )
        out[frame] = res
    return out


def label_bboxes(labels: da.Array, n_loop: int) -> dict[tuple[Frame, int], tuple[Any, Any]]:
    """``(frame, id) -> (lo, hi)`` bounding boxes (hi exclusive) of every object."""
    out = {}
    for frame, s in label_stats(labels, n_loop).items():
        nd = sum(1 for k in s if k.startswith("lo"))
        lo = np.stack([s[f"lo{k}"] for k in range(nd)], axis=1)
        hi = np.stack([s[f"hi{k}"] for k in range(nd)], axis=1)
        for i, obj in enumerate(s["id"]):
            out[(frame, int(obj))] = (lo[i], hi[i])
    return out


def object_crop(
    labels: da.Array, image: da.Array | None, frame: Frame, lo: Any, hi: Any, obj: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """One object's mask (``labels == obj``) and image on its bounding box, in memory."""
    sl = frame + tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    mask = np.asarray(labels[sl].compute()) == obj
    img = None if image is None else np.asarray(image[sl].compute())
    return mask, img
