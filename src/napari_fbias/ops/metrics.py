"""Segmentation accuracy: object matching and average precision (AP) at IoU thresholds.

The measure used by StarDist and the Cell Segmentation Benchmark: a predicted
object is a true positive when it overlaps a ground-truth object with an
intersection over union (IoU) of at least the threshold (one-to-one
matching); ``AP = TP / (TP + FP + FN)``.

IoU comes from a sparse contingency table of the two label images, computed
in one pass over the pixels (no per-object loops).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Overlaps:
    """Sparse IoU table of two label images.

    Attributes
    ----------
    gt_ids, pred_ids : numpy.ndarray
        Object ids present in each image, ascending.
    pairs_gt, pairs_pred : numpy.ndarray
        Indices (into ``gt_ids`` / ``pred_ids``) of each overlapping pair.
    iou : numpy.ndarray
        IoU of each overlapping pair.
    """

    gt_ids: np.ndarray
    pred_ids: np.ndarray
    pairs_gt: np.ndarray
    pairs_pred: np.ndarray
    iou: np.ndarray


@dataclass(frozen=True)
class MatchStats:
    """Matching result at one IoU threshold."""

    threshold: float
    tp: int
    fp: int
    fn: int
    mean_matched_iou: float

    @property
    def precision(self) -> float:
        """TP / (TP + FP) (1.0 when nothing was predicted and nothing expected)."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def average_precision(self) -> float:
        """TP / (TP + FP + FN) (1.0 when both images are empty)."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every count and score."""
        return {
            "threshold": self.threshold,
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "average_precision": self.average_precision,
            "mean_matched_iou": self.mean_matched_iou,
        }


def _ratio(num: int, den: int) -> float:
    return 1.0 if den == 0 else num / den


def _check_pair(gt: Any, pred: Any) -> tuple[np.ndarray, np.ndarray]:
    g, p = np.asarray(gt), np.asarray(pred)
    if g.shape != p.shape:
        raise ValueError(f"ground truth shape {g.shape} differs from prediction shape {p.shape}")
    for name, a in (("ground truth", g), ("prediction", p)):
        if a.dtype.kind not in "iub":
            raise ValueError(f"{name} must be integer labels; got {a.dtype}")
        if a.size and a.dtype.kind == "i" and a.min() < 0:
            raise ValueError(f"{name} contains negative object ids")
    return g, p


def _dense_ids(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (flat ids 0..n with 0 = background, original ids, pixel counts)."""
    flat = a.ravel()
    if flat.size == 0:
        return flat.astype(np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    top = int(flat.max())
    if top <= 4 * flat.size + 1024:
        counts = np.bincount(flat, minlength=top + 1)
        ids = np.flatnonzero(counts[1:]) + 1
        lut = np.zeros(top + 1, dtype=np.int64)
        lut[ids] = np.arange(1, ids.size + 1)
        return lut[flat], ids, counts[ids]
    uniq, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    if uniq[0] != 0:
        inverse = inverse + 1
        return inverse, uniq, counts
    return inverse, uniq[1:], counts[1:]


def overlaps(gt: Any, pred: Any) -> Overlaps:
    """IoU of every overlapping (ground truth, prediction) object pair.

    Parameters
    ----------
    gt, pred : array-like
        Label images of the same shape (0 = background).

    Returns
    -------
    Overlaps
        Sparse IoU table.
    """
    g, p = _check_pair(gt, pred)
    gi, gt_ids, gsize = _dense_ids(g.astype(np.int64, copy=False))
    pi, pred_ids, psize = _dense_ids(p.astype(np.int64, copy=False))
    both = (gi > 0) & (pi > 0)
    key = gi[both] * (pred_ids.size + 1) + pi[both]
    pairs, inter = np.unique(key, return_counts=True)
    pg = pairs // (pred_ids.size + 1) - 1
    pp = pairs % (pred_ids.size + 1) - 1
    iou = inter / (gsize[pg] + psize[pp] - inter)
    return Overlaps(gt_ids, pred_ids, pg, pp, iou)


def match(gt: Any, pred: Any, threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One-to-one matching of objects with IoU >= ``threshold`` (maximum number of matches).

    Returns
    -------
    gt_ids, pred_ids, iou : numpy.ndarray
        The matched ids (in ``gt`` and ``pred``) and their IoU, by ascending gt id.
    """
    return _match(overlaps(gt, pred), threshold)


def _match(ov: Overlaps, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if not 0 < threshold <= 1:
        raise ValueError(f"IoU threshold must be in (0, 1]; got {threshold}")
    ok = ov.iou >= threshold
    pg, pp, iou = ov.pairs_gt[ok], ov.pairs_pred[ok], ov.iou[ok]
    if threshold <= 0.5 and pg.size:
        # IoU > 0.5 is one-to-one by construction; below (or at exactly 0.5) a
        # maximum bipartite matching resolves the conflicts.
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_bipartite_matching

        graph = csr_matrix((iou, (pg, pp)), shape=(ov.gt_ids.size, ov.pred_ids.size))
        partner = maximum_bipartite_matching(graph, perm_type="column")
        rows = np.flatnonzero(partner >= 0)
        cols = partner[rows]
        iou = np.asarray(graph[rows, cols]).ravel()
        pg, pp = rows, cols
    order = np.argsort(pg, kind="stable")
    return ov.gt_ids[pg[order]], ov.pred_ids[pp[order]], np.asarray(iou, float)[order]


def match_stats(gt: Any, pred: Any, thresholds: Iterable[float] = (0.5,)) -> list[MatchStats]:
    """Compute the counts and scores of the matching at each IoU threshold.

    Parameters
    ----------
    gt, pred : array-like
        Label images of the same shape (0 = background).
    thresholds : iterable of float
        IoU thresholds in (0, 1].

    Returns
    -------
    list of MatchStats
        One per threshold, in the given order.
    """
    ov = overlaps(gt, pred)
    n_gt, n_pred = ov.gt_ids.size, ov.pred_ids.size
    out = []
    for t in thresholds:
        _, _, iou = _match(ov, float(t))
        tp = int(iou.size)
        out.append(
            MatchStats(
                threshold=float(t),
                tp=tp,
                fp=n_pred - tp,
                fn=n_gt - tp,
                mean_matched_iou=float(iou.mean()) if tp else 0.0,
            )
        )
    return out


def average_precision(
    gt: Any, pred: Any, thresholds: Iterable[float] = (0.5,)
) -> dict[float, float]:
    """Average precision ``TP / (TP + FP + FN)`` at each IoU threshold.

    Parameters
    ----------
    gt, pred : array-like
        Ground-truth and predicted label images of the same shape (0 = background).
    thresholds : iterable of float
        IoU thresholds in (0, 1].

    Returns
    -------
    dict
        ``{threshold: AP}``, e.g. ``average_precision(gt, pred)[0.5]``. AP is
        1.0 when both images are empty.
    """
    return {s.threshold: s.average_precision for s in match_stats(gt, pred, thresholds)}


# --- scores against (partial) annotations: one function for tuning, Compare and the report ---


@dataclass(frozen=True)
class Scores:
    """How well a prediction matches annotated objects (one line of a scoreboard).

    Attributes
    ----------
    average_precision : float
        ``TP / (TP + FP + FN)`` at IoU ``threshold`` (for points: a prediction
        matches a point when the point lies inside it).
    f1 : float
        ``2 TP / (2 TP + FP + FN)``.
    mean_iou : float or None
        For each annotated object, its IoU with the prediction it overlaps
        most (0 when none), averaged; None for points (they have no extent).
    tp, fp, fn : int
        Counts. A false positive is an unmatched prediction that lies mostly
        (at least half of its pixels) inside the region scored.
    n_annotated : int
        Annotated objects (or points).
    threshold : float
        The IoU threshold.
    """

    average_precision: float
    f1: float
    mean_iou: float | None
    tp: int
    fp: int
    fn: int
    n_annotated: int
    threshold: float = 0.5

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict (``ap``, ``f1``, ``mean_iou``, counts)."""
        return {
            "ap": round(self.average_precision, 4),
            "f1": round(self.f1, 4),
            "mean_iou": None if self.mean_iou is None else round(self.mean_iou, 4),
            "tp": self.tp,
            "fp": self.fp,
            "fn": self.fn,
            "n_annotated": self.n_annotated,
            "threshold": self.threshold,
        }


def annotated_region(
    gt: Any,
    *,
    mode: str = "objects",
    margin: float | None = None,
    spacing: Iterable[float] | None = None,
) -> np.ndarray:
    """Return where the annotation is complete: the region a prediction is scored in.

    Parameters
    ----------
    gt : array-like
        Annotated label image (0 = not annotated).
    mode : {"objects", "box"}
        ``"objects"`` (partial annotation: only the annotated objects are
        known): the annotated objects grown by ``margin``; a correct object
        nobody annotated lies mostly outside it and is never a false positive,
        while a fragment or a spurious object on an annotated one is.
        ``"box"`` (every object inside the annotations' bounding box was
        annotated): that box, grown by ``margin``.
    margin : float, optional
        Pixels; default a quarter of the annotated objects' median diameter,
        at least 2.
    spacing : iterable of float, optional
        Pixel size per axis (the margin is then in units of the finest axis).

    Returns
    -------
    numpy.ndarray of bool
    """
    g = np.asarray(gt)
    mask = g > 0
    if not mask.any():
        raise ValueError("the annotation holds no object")
    if margin is None:
        sizes = np.bincount(g[mask].astype(np.int64).ravel())
        sizes = sizes[sizes > 0]
        ball = 1.0 if g.ndim == 2 else 4.0 / 3.0
        diameter = 2 * (float(np.median(sizes)) / (ball * np.pi)) ** (1.0 / g.ndim)
        margin = max(2.0, diameter / 4)
    if mode == "box":
        box = np.zeros_like(mask)
        idx = np.nonzero(mask)
        box[tuple(slice(int(i.min()), int(i.max()) + 1) for i in idx)] = True
        mask = box
    elif mode != "objects":
        raise ValueError(f"region mode must be 'objects' or 'box'; got {mode!r}")
    return grow(mask, margin, spacing)


def grow(mask: np.ndarray, margin: float, spacing: Iterable[float] | None = None) -> np.ndarray:
    """Return ``mask`` grown by ``margin`` (pixels of the finest axis; exact Euclidean)."""
    from scipy import ndimage as ndi

    if margin <= 0:
        return mask.astype(bool, copy=True)
    sampling = None
    if spacing is not None:
        sp = np.asarray(tuple(spacing), float)
        sampling = sp / sp.min()
    return ndi.distance_transform_edt(~mask, sampling=sampling) <= margin


def _in_region(pi: np.ndarray, n_pred: int, psize: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Return, per prediction (dense index), whether at least half of it lies in ``region``."""
    inside = np.bincount(pi[region.ravel()], minlength=n_pred + 1)[1:]
    return 2 * inside >= psize


def scoreboard(gt: Any, pred: Any, region: Any = None, threshold: float = 0.5) -> Scores:
    """Score a predicted label image against annotated objects.

    Parameters
    ----------
    gt : array-like
        Annotated (ground-truth) label image; every object in it counts.
    pred : array-like
        Predicted label image of the same shape.
    region : array-like of bool, optional
        Where the annotation is complete (see :func:`annotated_region`). An
        unmatched prediction is a false positive only when at least half of
        its pixels lie inside it. None: everywhere (a complete ground truth).
    threshold : float
        IoU threshold of a match.

    Returns
    -------
    Scores
    """
    g, p = _check_pair(gt, pred)
    gi, gt_ids, gsize = _dense_ids(g.astype(np.int64, copy=False))
    pi, pred_ids, psize = _dense_ids(p.astype(np.int64, copy=False))
    ov = overlaps(g, p)
    _, matched, iou = _match(ov, float(threshold))
    tp = int(iou.size)
    counted = np.ones(pred_ids.size, bool)
    if region is not None:
        r = np.asarray(region, bool)
        if r.shape != g.shape:
            raise ValueError(f"region shape {r.shape} differs from the labels shape {g.shape}")
        counted = _in_region(pi, pred_ids.size, psize, r)
    counted[np.searchsorted(pred_ids, matched)] = False
    fp = int(counted.sum())
    fn = gt_ids.size - tp
    best = np.zeros(gt_ids.size)
    if ov.iou.size:
        np.maximum.at(best, ov.pairs_gt, ov.iou)
    return Scores(
        average_precision=_ratio(tp, tp + fp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        mean_iou=float(best.mean()) if best.size else 0.0,
        tp=tp,
        fp=fp,
        fn=fn,
        n_annotated=int(gt_ids.size),
        threshold=float(threshold),
    )


def point_scoreboard(points: Any, pred: Any, region: Any = None) -> Scores:
    """Score a predicted label image against points marked at object centres.

    A prediction matches a point when the point lies inside it, one to one (a
    prediction holding two points matches one of them; the other is missed).

    Parameters
    ----------
    points : array-like
        ``(n, ndim)`` pixel coordinates of the points (rounded to the nearest pixel).
    pred : array-like
        Predicted label image.
    region : array-like of bool, optional
        Where the marking is complete (e.g. discs around the points): an
        unmatched prediction is a false positive only when at least half of
        its pixels lie inside it. None: everywhere.

    Returns
    -------
    Scores
        ``mean_iou`` is None.
    """
    p = np.asarray(pred)
    if p.dtype.kind not in "iub":
        raise ValueError(f"prediction must be integer labels; got {p.dtype}")
    idx = point_indices(points, p.shape)
    pi, pred_ids, psize = _dense_ids(p.astype(np.int64, copy=False))
    hit = pi.reshape(p.shape)[tuple(idx.T)] if idx.size else np.zeros(0, np.int64)
    matched = np.unique(hit[hit > 0])  # dense indices, one point each
    tp = int(matched.size)
    counted = np.ones(pred_ids.size, bool)
    if region is not None:
        r = np.asarray(region, bool)
        if r.shape != p.shape:
            raise ValueError(f"region shape {r.shape} differs from the labels shape {p.shape}")
        counted = _in_region(pi, pred_ids.size, psize, r)
    counted[matched - 1] = False
    fp = int(counted.sum())
    fn = len(idx) - tp
    return Scores(
        average_precision=_ratio(tp, tp + fp + fn),
        f1=_ratio(2 * tp, 2 * tp + fp + fn),
        mean_iou=None,
        tp=tp,
        fp=fp,
        fn=fn,
        n_annotated=len(idx),
    )


def point_indices(points: Any, shape: tuple[int, ...]) -> np.ndarray:
    """Return ``points`` as integer pixel indices, checked to lie inside ``shape``."""
    pts = np.asarray(points, float)
    if pts.size == 0:
        return np.zeros((0, len(shape)), np.int64)
    if pts.ndim != 2 or pts.shape[1] != len(shape):
        raise ValueError(
            f"points must be an (n, {len(shape)}) array of coordinates for a "
            f"{len(shape)}D image; got shape {pts.shape}"
        )
    if not np.isfinite(pts).all():
        raise ValueError("points hold coordinates that are not finite numbers")
    idx = np.rint(pts).astype(np.int64)
    out = (idx < 0) | (idx >= np.asarray(shape))
    if out.any():
        n = int(out.any(axis=1).sum())
        raise ValueError(f"{n} point(s) lie outside the image of shape {tuple(shape)}")
    return idx
