"""Perception metrics against hand-computed values: centre-distance AP (greedy by score, duplicates are false
positives, thresholds), mIoU per class, occupancy / free-space precision and recall, multi-modal forecasting
ADE / FDE / miss rate at 2 m, and the aggregate over decoded batches."""

from __future__ import annotations

import math

import numpy as np
import pytest

from planlab.metrics.perception import (
    DetectionAccumulator,
    ForecastAccumulator,
    OccupancyAccumulator,
    PerceptionMetrics,
    SemanticAccumulator,
    average_precision,
    match_detections,
)


def test_matching_is_greedy_by_score_and_respects_the_threshold():
    gt = np.array([[0.0, 0.0], [10.0, 0.0]])
    pred = np.array([[0.3, 0.0], [0.1, 0.0], [11.5, 0.0]])
    scores = np.array([0.9, 0.8, 0.7])
    # the higher-scored detection takes the first box; the better-placed duplicate is a false positive
    assert match_detections(pred, scores, gt, 1.0).tolist() == [True, False, False]
    assert match_detections(pred, scores, gt, 2.0).tolist() == [True, False, True]
    assert match_detections(pred[:0], scores[:0], gt, 2.0).tolist() == []
    assert match_detections(pred, scores, gt[:0], 2.0).tolist() == [False, False, False]


def test_average_precision_by_hand():
    # ranked TP, FP, TP with 3 ground truths: precision 1, 1/2, 2/3 at recall 1/3, 1/3, 2/3
    # envelope: 1 on (0, 1/3], 2/3 on (1/3, 2/3] -> AP = 1/3 + 2/9
    ap = average_precision(np.array([0.9, 0.8, 0.7]), np.array([True, False, True]), 3)
    assert ap == pytest.approx(1 / 3 + 2 / 9)
    assert average_precision(np.array([0.5, 0.4]), np.array([True, True]), 2) == pytest.approx(1.0)
    assert average_precision(np.zeros(0), np.zeros(0, bool), 4) == 0.0
    assert math.isnan(average_precision(np.array([0.3]), np.array([False]), 0))


def test_detection_map_over_scenes_and_thresholds():
    acc = DetectionAccumulator((0.5, 2.0))
    acc.update(np.array([[1.0, 1.0]]), np.array([0.9]), np.array([[1.0, 1.0]]))  # exact
    acc.update(np.array([[5.0, 1.0]]), np.array([0.8]), np.array([[6.0, 1.0]]))  # 1 m off
    acc.update(np.zeros((0, 2)), np.zeros(0), np.array([[3.0, 3.0]]))  # missed
    out = acc.compute()
    assert out["ap@0.5m"] == pytest.approx(1 / 3)  # one of three found at 0.5 m, at precision 1
    assert out["ap@2m"] == pytest.approx(2 / 3)
    assert out["map"] == pytest.approx(0.5) and out["num_gt"] == 3
    # a perfect detector scores 1 regardless of its score order
    perfect = DetectionAccumulator()
    rng = np.random.default_rng(0)
    for _ in range(5):
        gt = rng.uniform(-30, 30, size=(4, 2))
        perfect.update(gt[::-1], rng.uniform(size=4), gt)
    assert perfect.compute()["map"] == pytest.approx(1.0)


def test_semantic_iou_by_hand():
    acc = SemanticAccumulator(["bg", "road", "car"])
    target = np.array([[0, 0, 1, 1], [0, 1, 1, 2]])
    pred = np.array([[0, 1, 1, 1], [0, 1, 0, 2]])
    acc.update(pred, target)
    out = acc.compute()
    # bg: TP 2, FP 1 (a road cell), FN 1 -> 2/4; road: TP 3, FP 1, FN 1 -> 3/5; car: 1/1
    assert out["iou/bg"] == pytest.approx(0.5)
    assert out["iou/road"] == pytest.approx(0.6)
    assert out["iou/car"] == pytest.approx(1.0)
    assert out["miou"] == pytest.approx((0.5 + 0.6 + 1.0) / 3)
    assert out["miou_fg"] == pytest.approx(0.8)
    assert out["pixel_accuracy"] == pytest.approx(6 / 8)
    # a class absent from both prediction and target does not count in the mean
    acc2 = SemanticAccumulator(["bg", "road", "car"])
    acc2.update(np.zeros((2, 2), int), np.zeros((2, 2), int))
    assert acc2.compute()["miou"] == pytest.approx(1.0) and math.isnan(acc2.compute()["iou/car"])
    with pytest.raises(ValueError, match="must lie in"):
        acc2.update(np.full((1, 1), 3), np.zeros((1, 1), int))


def test_occupancy_precision_recall_and_free_space():
    acc = OccupancyAccumulator()
    prob = np.array([[0.9, 0.6, 0.2], [0.1, 0.7, 0.4]])
    gt = np.array([[1, 0, 1], [0, 1, 0]])
    acc.update(prob, gt)
    out = acc.compute()
    # predicted occupied: (0,0), (0,1), (1,1); TP 2, FP 1, FN 1, TN 2
    assert out["precision"] == pytest.approx(2 / 3) and out["recall"] == pytest.approx(2 / 3)
    assert out["iou"] == pytest.approx(0.5)
    assert out["free_precision"] == pytest.approx(2 / 3) and out["free_recall"] == pytest.approx(2 / 3)


def test_forecast_min_over_modes_top_mode_and_miss_rate():
    acc = ForecastAccumulator()
    target = np.array([[[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0], [0.0, 2.0]], [[5.0, 5.0], [6.0, 6.0]]])
    valid = np.array([[1, 1], [1, 1], [1, 0]])  # the third agent's last step is unlogged: skipped
    pred = np.zeros((3, 2, 2, 2))
    pred[0, 0] = target[0]  # agent 0: mode 0 exact
    pred[0, 1] = target[0] + [0.0, 3.0]  # mode 1 3 m off
    pred[1, 0] = target[1] + [3.0, 0.0]  # agent 1: both modes 3 m off
    pred[1, 1] = target[1] + [0.0, 3.0]
    probs = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    acc.update(pred, probs, target, valid)
    out = acc.compute()
    assert out["num_agents"] == 2
    assert out["min_ade"] == pytest.approx(1.5) and out["min_fde"] == pytest.approx(1.5)
    assert out["ade"] == pytest.approx(3.0) and out["fde"] == pytest.approx(3.0)  # top mode: 3 m each
    assert out["miss_rate"] == pytest.approx(0.5)  # agent 1 misses by 3 m > 2 m


def test_aggregate_reads_decoded_batches_and_skips_padding():
    m = PerceptionMetrics(["bg", "road"])
    batch = {
        "det_boxes": np.array([[[1.0, 2.0, 0, 4, 2], [9.0, 9.0, 0, 4, 2]]]),
        "det_scores": np.array([[0.9, 0.1]]),
        "gt_boxes": np.array([[[1.0, 2.0, 0, 4, 2], [0.0, 0.0, 0, 0, 0]]]),
        "gt_valid": np.array([[True, False]]),  # padding row: not a ground truth
        "sem_pred": np.zeros((1, 2, 2), int),
        "sem_gt": np.zeros((1, 2, 2), int),
        "occ_prob": np.zeros((1, 2, 2)),
        "occ_gt": np.zeros((1, 2, 2)),
        "fc_pred": np.zeros((1, 2, 1, 2, 2)),
        "fc_prob": np.ones((1, 2, 1)),
        "fc_gt": np.zeros((1, 2, 2, 2)),
        "fc_valid": np.ones((1, 2, 2)),
    }
    m.update(batch)
    out = m.compute()
    assert out["detection/map"] == pytest.approx(1.0) and out["detection/num_gt"] == 1
    assert out["semantic/miou"] == pytest.approx(1.0)
    assert out["forecast/num_agents"] == 1 and out["forecast/min_ade"] == 0.0
    assert math.isnan(out["occupancy/precision"]) and out["occupancy/free_recall"] == 1.0
    assert m.num_scenes == 1
    # groups an agent does not produce are absent, not zero
    only = PerceptionMetrics(["bg"])
    only.update({"sem_pred": np.zeros((1, 1, 1), int), "sem_gt": np.zeros((1, 1, 1), int)})
    assert set(only.compute()) == {
        "semantic/iou/bg",
        "semantic/miou",
        "semantic/miou_fg",
        "semantic/pixel_accuracy",
    }
