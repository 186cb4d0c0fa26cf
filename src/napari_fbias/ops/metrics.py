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
