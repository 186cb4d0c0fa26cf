"""Average precision and object matching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from napari_fbias.ops.metrics import average_precision, match, match_stats, overlaps


def squares():
    gt = np.zeros((20, 20), np.int32)
    gt[0:4, 0:4] = 1  # 16 px
    gt[10:14, 10:14] = 2
    gt[0:4, 10:14] = 3
    return gt


def brute_force_iou(gt, pred):
    out = {}
    for g in np.unique(gt[gt > 0]):
        for p in np.unique(pred[pred > 0]):
            inter = np.sum((gt == g) & (pred == p))
            if inter:
                out[(int(g), int(p))] = inter / np.sum((gt == g) | (pred == p))
    return out


def test_identical_is_perfect_and_ids_do_not_matter():
    gt = squares()
    relabelled = np.choose(gt, [0, 30, 10, 20])
    assert average_precision(gt, relabelled) == {0.5: 1.0}
    g, p, iou = match(gt, relabelled)
    assert g.tolist() == [1, 2, 3] and p.tolist() == [30, 10, 20]
    assert iou.tolist() == [1.0, 1.0, 1.0]


def test_counts_fp_fn_and_iou_thresholds():
    gt = squares()
    pred = np.zeros_like(gt)
    pred[0:4, 1:5] = 1  # shifted by one column: IoU 12 / 20 = 0.6
    pred[10:14, 10:14] = 2  # exact
    pred[15:19, 15:19] = 3  # false positive; gt 3 is missed
    ov = overlaps(gt, pred)
    assert sorted(ov.iou.tolist()) == [0.6, 1.0]
    s5, s7 = match_stats(gt, pred, (0.5, 0.7))
    assert (s5.tp, s5.fp, s5.fn) == (2, 1, 1)
    assert s5.average_precision == pytest.approx(2 / 4)
    assert s5.precision == pytest.approx(2 / 3) and s5.recall == pytest.approx(2 / 3)
    assert s5.mean_matched_iou == pytest.approx(0.8)
    assert (s7.tp, s7.fp, s7.fn) == (1, 2, 2)
    assert average_precision(gt, pred, (0.5, 0.7)) == {0.5: 0.5, 0.7: pytest.approx(1 / 5)}
    assert s5.to_dict()["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))


def test_merged_objects_count_once():
    gt = np.zeros((10, 20), np.int32)
    gt[2:8, 2:8] = 1
    gt[2:8, 8:16] = 2  # 48 px
    merged = (gt > 0).astype(np.int32)  # one object of 84 px
    s = match_stats(gt, merged)[0]
    assert (s.tp, s.fp, s.fn) == (1, 0, 1)  # matches the larger one (48/84 > 0.5)


def test_ties_at_half_are_matched_one_to_one():
    gt = np.zeros((4, 8), np.int32)
    gt[:, :] = 1
    pred = np.zeros_like(gt)
    pred[:, :4] = 1  # each half has IoU exactly 0.5 with gt 1
    pred[:, 4:] = 2
    s = match_stats(gt, pred, (0.5,))[0]
    assert (s.tp, s.fp, s.fn) == (1, 1, 0)


def test_low_threshold_uses_a_maximum_matching():
    # gt A overlaps preds 1 and 2, gt B overlaps only pred 1: pairing A with pred 1
    # (its first candidate) would leave B unmatched; the maximum matching pairs A-2, B-1
    gt = np.zeros((10, 12), np.int32)
    gt[0:10, 0:6] = 1  # A
    gt[0:10, 6:9] = 2  # B
    pred = np.zeros_like(gt)
    pred[0:10, 3:9] = 1  # IoU with A: 30/90, with B: 30/60
    pred[0:10, 0:3] = 2  # IoU with A: 30/60
    s = match_stats(gt, pred, (0.3,))[0]
    assert (s.tp, s.fp, s.fn) == (2, 0, 0)
    g, p, _ = match(gt, pred, 0.3)
    assert dict(zip(g.tolist(), p.tolist(), strict=True)) == {1: 2, 2: 1}


def test_empty_cases():
    empty = np.zeros((5, 5), np.int32)
    assert average_precision(empty, empty) == {0.5: 1.0}
    assert average_precision(squares(), np.zeros((20, 20), np.int32)) == {0.5: 0.0}
    assert average_precision(np.zeros((20, 20), np.uint8), squares()) == {0.5: 0.0}


def test_bad_input():
    with pytest.raises(ValueError, match="shape"):
        average_precision(np.zeros((3, 3), np.int32), np.zeros((3, 4), np.int32))
    with pytest.raises(ValueError, match="integer labels"):
        average_precision(np.zeros((3, 3)), np.zeros((3, 3), np.int32))
    with pytest.raises(ValueError, match="threshold"):
        average_precision(squares(), squares(), (1.5,))


def test_huge_sparse_ids():
    gt = squares().astype(np.int64) * 10**12
    assert average_precision(gt, squares()) == {0.5: 1.0}


label_images = st.integers(0, 2**31 - 1).map(
    lambda seed: np.random.default_rng(seed).integers(0, 5, (6, 7))
)


@settings(max_examples=40, deadline=None)
@given(gt=label_images, pred=label_images)
def test_iou_table_equals_brute_force(gt, pred):
    ov = overlaps(gt, pred)
    table = {
        (int(ov.gt_ids[g]), int(ov.pred_ids[p])): v
        for g, p, v in zip(ov.pairs_gt, ov.pairs_pred, ov.iou, strict=True)
    }
    expected = brute_force_iou(gt, pred)
    assert table.keys() == expected.keys()
    for k, v in expected.items():
        assert table[k] == pytest.approx(v)
    # at IoU > 0.5 matching is unique: TP = pairs above the threshold
    s = match_stats(gt, pred, (0.6,))[0]
    assert s.tp == sum(v >= 0.6 for v in expected.values())
