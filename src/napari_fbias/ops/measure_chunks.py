"""Per-object measurements of labels larger than memory, per block and merged exactly.

Each block contributes, per object id it holds: its pixel count, the
smallest and largest coordinate along every axis, the sum of each
coordinate and, with an intensity image, the sum, minimum and maximum of
the intensity of each channel. These merge exactly across blocks (sums add,
minima and maxima combine), so the whole-image values are:

=====================  ===================================================
``area``               pixel count (exact)
``bbox``               min / max + 1 per axis (exact)
``centroid``           coordinate sums / count (exact: the sums are of
                       integers, exact in float64 below 2**53, and the
                       division is the one scikit-image does)
``intensity_sum``      float64 sums: exact for integer images (below
                       2**53); float images within 1e-12 relative of the
                       in-memory sum (the same numbers added in another
                       order)
``intensity_mean``     intensity sum / count (as ``intensity_sum``)
``intensity_min/max``  exact
=====================  ===================================================

Properties that do not merge from such sums (:data:`PER_OBJECT`:
eccentricity, solidity, perimeter, orientation, axis lengths, extent,
equivalent diameter) need the object's pixels together. They are computed
per object on its bounding-box crop, the way scikit-image computes them in
memory (``label_image[bbox] == label``), so they are the same numbers:

* an object lying whole in one block (not touching the block's inner
  faces, and with all its pixels there) is measured in that block, in the
  same pass as the sums;
* the others (cut by a seam) are measured on their bounding box read from
  the dask arrays, :data:`CROP_BATCH` objects per compute. An object's
  bounding box must fit in memory.

:func:`regionprops_chunks` is ``measure.regionprops``'s chunk-wise strategy:
it gives the same table as the in-memory operation (columns, order, dtypes,
``df.attrs``), integer columns exactly and float columns as above.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_fbias.ops.measure import (
    INTENSITY_STATS,
    PROPERTIES,
    add_physical,
    assemble_table,
    check_labels_dtype,
    measure_plan,
    shape_properties,
)
from napari_fbias.ops.registry import register_chunked

if TYPE_CHECKING:
    import dask.array as da
    import pandas as pd

__all__ = [
    "CROP_BATCH",
    "FOLD_ROWS",
    "MERGED_EXACTLY",
    "PER_OBJECT",
    "label_stats",
    "regionprops_chunks",
]

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
#: ``measure.regionprops`` properties that cannot be merged from per-block sums:
#: computed per object on its bounding box.
PER_OBJECT = tuple(p for p in PROPERTIES if p not in ("area", "centroid", "bbox"))
#: Objects cut by a seam measured per compute (their bounding boxes read together).
CROP_BATCH = 64

Frame = tuple[int, ...]


def _block_stats(
    labels: np.ndarray, image: np.ndarray | None, origin: tuple[int, ...]
) -> dict[str, np.ndarray] | None:
    """Partial statistics of one block; ``image`` has a trailing channel axis (or is None)."""
    lab = labels.astype(np.int64, copy=False)
    if lab.size and lab.min() < 0:
        raise ValueError("the labels contain negative object ids")
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
        sums, mins, maxs = [], [], []
        for c in range(image.shape[-1]):
            v = image[..., c].ravel().astype(np.float64)
            vmin = np.full(n, np.inf)
            vmax = np.full(n, -np.inf)
            np.minimum.at(vmin, inverse, v)
            np.maximum.at(vmax, inverse, v)
            sums.append(np.bincount(inverse, weights=v, minlength=n)[keep])
            mins.append(vmin[keep])
            maxs.append(vmax[keep])
        out["isum"] = np.stack(sums, axis=1)
        out["imin"] = np.stack(mins, axis=1)
        out["imax"] = np.stack(maxs, axis=1)
    return out


def _shape_table(lab: np.ndarray, ids: np.ndarray, props: Sequence[str]) -> dict[str, np.ndarray]:
    """scikit-image's ``props`` of the objects ``ids`` (sorted) of ``lab``, in that order.

    The objects are renumbered 1..n first (the values do not change any of
    these properties), so that scikit-image's per-label tables stay small.
    """
    pos = np.searchsorted(ids, lab)
    pos_c = np.minimum(pos, ids.size - 1)
    sub = np.where(ids[pos_c] == lab, pos_c + 1, 0)
    raw = shape_properties(sub, props)
    if not np.array_equal(raw["label"], np.arange(1, ids.size + 1)):
        raise RuntimeError("an object to measure is missing from its block")  # a bug
    return {p: np.asarray(raw[p], dtype=np.float64) for p in props}


def _block_parts(
    lblock: np.ndarray,
    iblocks: Sequence[np.ndarray],
    origin: tuple[int, ...],
    n_loop: int,
    full: tuple[int, ...],
    props: Sequence[str],
) -> dict[str, np.ndarray] | None:
    """One block's partial statistics, and ``props`` of the objects lying whole in it."""
    lab = lblock.reshape(lblock.shape[n_loop:])
    img = np.stack([b.reshape(lab.shape) for b in iblocks], axis=-1) if iblocks else None
    s = _block_stats(lab, img, origin)
    if s is None or not props:
        return s
    inside = np.ones(s["id"].size, dtype=bool)
    for k in range(lab.ndim):  # off the inner faces: no neighbour block can hold a piece
        end = origin[k] + lab.shape[k]
        if origin[k] > 0:
            inside &= s[f"lo{k}"] > origin[k]
        if end < full[k]:
            inside &= s[f"hi{k}"] < end
    ids = s["id"][inside]
    s["shape_id"] = ids
    s["shape_area"] = s["area"][inside]
    if ids.size:
        for p, v in _shape_table(lab.astype(np.int64, copy=False), ids, props).items():
            s[f"shape_{p}"] = v
    else:
        for p in props:
            s[f"shape_{p}"] = np.zeros(0)
    return s


def _crop_shapes(crop: np.ndarray, obj: int, props: Sequence[str]) -> dict[str, float]:
    """``props`` of object ``obj`` from the labels on its bounding box."""
    values = _shape_table(np.asarray(crop), np.array([obj], dtype=np.int64), props)
    return {p: float(v[0]) for p, v in values.items()}


def label_stats(
    labels: da.Array,
    n_loop: int,
    image: da.Array | Sequence[da.Array] | None = None,
    *,
    shape_props: Sequence[str] = (),
) -> dict[Frame, dict[str, np.ndarray]]:
    """Merge per-block object statistics into whole-image ones, per frame.

    Parameters
    ----------
    labels : dask.array.Array
        Labels; the first ``n_loop`` axes are frames (chunks of 1).
    n_loop : int
        Number of leading ``t``/``c`` axes.
    image : dask.array.Array or sequence of them, optional
        Intensities, shaped like ``labels``; a sequence gives one channel each.
    shape_props : sequence of str
        scikit-image properties from :data:`PER_OBJECT` to measure per object.

    Returns
    -------
    dict
        Per frame with objects: ``id``, ``area``, ``lo{k}``/``hi{k}`` (bounding
        box, ``hi`` exclusive), ``centroid{k}`` and, with ``image``,
        ``intensity_sum``, ``intensity_mean``, ``intensity_min``,
        ``intensity_max`` (shaped ``(n,)`` for one image, ``(n, channels)``
        for a sequence), and each of ``shape_props``; sorted by id.
    """
    from napari_fbias.io.region_read import restride
    from napari_fbias.ops.chunk_stats import block_tasks, iter_batches

    unknown = [p for p in shape_props if p not in PER_OBJECT]
    if unknown:
        raise ValueError(f"cannot measure {unknown} per object; choose from {PER_OBJECT}")
    single = image is not None and not isinstance(image, Sequence)
    channels = [] if image is None else ([image] if single else list(image))
    channels = [restride(c, labels.chunks) for c in channels]
    starts = [np.cumsum((0, *c[:-1])) for c in labels.chunks]
    full = tuple(int(n) for n in labels.shape[n_loop:])
    lblocks = block_tasks(labels)
    iblocks = [block_tasks(c) for c in channels]
    calls, frames = [], []
    for loc in np.ndindex(*lblocks.shape):
        origin = tuple(int(starts[i][loc[i]]) for i in range(n_loop, labels.ndim))
        blocks = [b[loc] for b in iblocks]  # dask computes the delayed blocks of a list
        calls.append((_block_parts, lblocks[loc], blocks, origin, n_loop, full, shape_props))
        frames.append(loc[:n_loop])
    nd = len(full)
    folds: dict[Frame, _Fold] = {}
    for j, s in iter_batches(calls, lblocks.shape):
        if s is not None:
            folds.setdefault(frames[j], _Fold(nd)).add(s)
    out = {
        frame: _finish(folds.pop(frame).combined(), nd, bool(channels), shape_props)
        for frame in sorted(folds)
    }
    if shape_props:
        _measure_cut_objects(labels, out, shape_props)
    if single:
        for res in out.values():
            for key in ("intensity_sum", "intensity_mean", "intensity_min", "intensity_max"):
                res[key] = res[key][:, 0]
    return out


#: Partial rows held before they are combined (a frame's combined rows count too):
#: the blocks' partial statistics are folded as batches come, not all kept.
FOLD_ROWS = 65536


class _Fold:
    """Per-block partial statistics of one frame, combined as they come.

    Partials wait until they hold more rows than :data:`FOLD_ROWS` and than
    a quarter of the combined ones, then all are combined into one partial
    (ids unique): what is held stays within about 1.25 times the frame's
    objects (and the combined copy while combining), and the rows are
    combined a few times each. Sums, minima and maxima
    combine in any order, so the result is the same as one merge of all.
    """

    def __init__(self, nd: int) -> None:
        self.nd = nd
        self.parts: list[dict[str, np.ndarray]] = []
        self.rows = 0
        self.done = 0

    def add(self, part: dict[str, np.ndarray]) -> None:
        self.parts.append(part)
        self.rows += part["id"].size
        if self.rows > max(FOLD_ROWS, self.done // 4):
            self.parts = [self.combined()]

    def combined(self) -> dict[str, np.ndarray]:
        one = self.parts[0] if len(self.parts) == 1 else _combine(self.parts, self.nd)
        self.parts = [one]
        self.rows = self.done = one["id"].size
        return one


def _combine(parts: list[dict[str, np.ndarray]], nd: int) -> dict[str, np.ndarray]:
    """One partial (ids unique, sorted) from several: counts and sums add, extremes combine.

    The rows of objects measured whole in a block (``shape_*``) are kept as they are.
    """
    ids, inv = np.unique(np.concatenate([p["id"] for p in parts]), return_inverse=True)
    n = ids.size

    def cat(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts])

    def added(key: str) -> np.ndarray:
        v = cat(key)
        if v.ndim == 1:
            return np.bincount(inv, weights=v, minlength=n).astype(v.dtype, copy=False)
        cols = [np.bincount(inv, weights=v[:, c], minlength=n) for c in range(v.shape[1])]
        return np.stack(cols, axis=1)

    def extreme(key: str, ufunc: np.ufunc, start: Any) -> np.ndarray:
        v = cat(key)
        out = np.full((n, *v.shape[1:]), start, dtype=v.dtype)
        ufunc.at(out, inv, v)
        return out

    res: dict[str, np.ndarray] = {"id": ids, "area": added("area")}
    for k in range(nd):
        res[f"lo{k}"] = extreme(f"lo{k}", np.minimum, np.iinfo(np.int64).max)
        res[f"hi{k}"] = extreme(f"hi{k}", np.maximum, -1)
        res[f"sum{k}"] = added(f"sum{k}")
    if "isum" in parts[0]:
        res["isum"] = added("isum")
        res["imin"] = extreme("imin", np.minimum, np.inf)
        res["imax"] = extreme("imax", np.maximum, -np.inf)
    for key in parts[0]:
        if key.startswith("shape_"):
            res[key] = cat(key)
    return res


def _finish(
    part: dict[str, np.ndarray], nd: int, intensity: bool, shape_props: Sequence[str]
) -> dict[str, np.ndarray]:
    """Whole-frame statistics from the frame's combined partial (see :func:`label_stats`)."""
    ids, area = part["id"], part["area"].astype(np.int64)
    n = ids.size
    res: dict[str, np.ndarray] = {"id": ids, "area": area}
    for k in range(nd):
        res[f"lo{k}"], res[f"hi{k}"] = part[f"lo{k}"], part[f"hi{k}"]
        res[f"centroid{k}"] = part[f"sum{k}"] / area
    if intensity:
        total = part["isum"]
        res.update(
            intensity_sum=total,
            intensity_mean=total / area[:, None],
            intensity_min=part["imin"],
            intensity_max=part["imax"],
        )
    if shape_props:
        pos = np.searchsorted(ids, part["shape_id"])
        whole = part["shape_area"] == area[pos]  # all the object's pixels were in that block
        res["shape_done"] = np.zeros(n, dtype=bool)
        res["shape_done"][pos[whole]] = True
        for p in shape_props:
            res[p] = np.full(n, np.nan)
            res[p][pos[whole]] = part[f"shape_{p}"][whole]
    return res


def _measure_cut_objects(
    labels: da.Array, out: dict[Frame, dict[str, np.ndarray]], props: Sequence[str]
) -> None:
    """Measure ``props`` of the objects not measured in one block, on their bounding boxes."""
    import dask

    todo = [
        (frame, int(i)) for frame, res in out.items() for i in np.flatnonzero(~res["shape_done"])
    ]
    for start in range(0, len(todo), CROP_BATCH):
        batch = todo[start : start + CROP_BATCH]
        tasks = []
        for frame, i in batch:
            res = out[frame]
            nd = sum(1 for k in res if k.startswith("lo"))
            sl = frame + tuple(
                slice(int(res[f"lo{k}"][i]), int(res[f"hi{k}"][i])) for k in range(nd)
            )
            tasks.append(dask.delayed(_crop_shapes)(labels[sl], int(res["id"][i]), props))
        for (frame, i), values in zip(batch, dask.compute(*tasks), strict=True):
            for p, v in values.items():
                out[frame][p][i] = v
    for res in out.values():
        res.pop("shape_done", None)


# --- measure.regionprops chunk-wise ------------------------------------------------------


def regionprops_chunks(
    call: Callable[..., Any],
    data: da.Array | tuple[da.Array, ...],
    n_loop: int,
    params: Mapping[str, Any],
) -> pd.DataFrame:
    """``measure.regionprops`` chunk-wise: per-block statistics merged, the rest per object.

    ``data`` is the labels, or the labels and the image (which may have a
    channel axis that the labels lack, chunked like the labels with one
    channel per chunk). One pass over the blocks gives the merged statistics
    (:func:`label_stats`) and the :data:`PER_OBJECT` properties of the
    objects lying whole in a block; the objects cut by a seam are measured on
    their bounding boxes. The table is the in-memory one (see the module
    docstring for the tolerances); object ids are the labels' ids.
    """
    arrays = list(data) if isinstance(data, tuple) else [data]
    labels = arrays[0]
    image = arrays[1] if len(arrays) > 1 else None
    plan = measure_plan(
        labels.shape,
        None if image is None else image.shape,
        params["properties"],
        params.get("axes", ""),
        params.get("spacing"),
    )
    check_labels_dtype(labels.dtype)
    if image is not None and np.dtype(image.dtype).kind not in "biuf":
        raise ValueError(f"measure.regionprops: the image must hold numbers; got {image.dtype}")
    if int(plan.has_t) != n_loop:
        raise ValueError(
            f"measure.regionprops: labels with {n_loop} non-spatial axes cannot be measured"
        )
    channels: list[da.Array] = []
    if image is not None:
        if plan.c_pos is None:
            channels = [image]
        else:
            before = (slice(None),) * plan.c_pos
            channels = [image[(*before, c)] for c in range(plan.n_channels)]
    per_object = [p for p in plan.props if p in PER_OBJECT]
    stats = label_stats(labels, n_loop, channels or None, shape_props=per_object)
    axes = plan.spatial_axes

    def per_frame() -> Any:
        for frame in list(stats):
            s = stats.pop(frame)  # a frame's statistics go once its columns are made
            out: dict[str, np.ndarray] = {"label": s["id"].astype(np.int64, copy=False)}
            for p in plan.props:
                if p == "area":
                    out["area"] = s["area"].astype(np.int64, copy=False)
                elif p == "centroid":
                    for k, a in enumerate(axes):
                        out[f"centroid_{a}"] = s[f"centroid{k}"]
                elif p == "bbox":
                    for k, a in enumerate(axes):
                        out[f"bbox_min_{a}"] = s[f"lo{k}"].astype(np.int64, copy=False)
                        out[f"bbox_max_{a}"] = s[f"hi{k}"].astype(np.int64, copy=False)
                else:
                    out[p] = s[p]
            for c in range(plan.n_channels):
                for stat in INTENSITY_STATS:
                    out[f"{stat}_intensity_{c}"] = s[f"intensity_{stat}"][:, c]
            add_physical(out, axes, plan.spacing)
            yield (frame[0] if plan.has_t else None), out

    return assemble_table(per_frame(), plan.columns, plan.units, plan.spacing)


regionprops_chunks.takes_several = True  # type: ignore[attr-defined]
#: the image may have a channel axis that the labels lack
regionprops_chunks.channel_axis_ok = True  # type: ignore[attr-defined]


register_chunked("measure.regionprops", regionprops_chunks)
