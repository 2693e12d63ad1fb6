"""Perception metrics, accumulated over a dataset: BEV detection mAP with centre-distance thresholds, semantic
IoU per class and mIoU, occupancy / free-space precision and recall, and multi-modal forecasting
ADE / FDE / miss rate.

- **Detection** (nuScenes-style matching): per scene, detections in descending score each take the nearest
  still-unmatched ground-truth centre within the threshold (a true positive) or count as a false positive;
  over the whole dataset detections are ranked by score and AP is the area under the precision envelope
  (all-point interpolation, VOC 2010+). mAP is the mean over the thresholds (default 0.5, 1, 2, 4 m) and the
  classes present.
- **Semantics**: a confusion matrix over all cells; IoU_c = TP / (TP + FP + FN); mIoU over the classes with a
  non-empty union (``miou``) and the same without the background class (``miou_fg``).
- **Occupancy**: a cell is predicted occupied when its probability ≥ 0.5; precision, recall and IoU of the
  occupied cells, and precision / recall of the free cells.
- **Forecasting**: for every agent whose final future step is logged, min-over-modes ADE (over its logged
  steps) and FDE, the same for the most probable mode, and the miss rate (min FDE > 2 m, the
  motion-forecasting convention also used by ``planlab.metrics.openloop``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from planlab.metrics.openloop import MISS_THRESHOLD_M

DEFAULT_DISTANCE_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


# --------------------------------------------------------------------------------------------- detection
def match_detections(
    pred_xy: np.ndarray, scores: np.ndarray, gt_xy: np.ndarray, threshold: float
) -> np.ndarray:
    """True-positive flags of the detections of one scene, in the order given (greedy by score)."""
    pred_xy = np.asarray(pred_xy, dtype=np.float64).reshape(-1, 2)
    gt_xy = np.asarray(gt_xy, dtype=np.float64).reshape(-1, 2)
    tp = np.zeros(len(pred_xy), bool)
    if not len(pred_xy) or not len(gt_xy):
        return tp
    taken = np.zeros(len(gt_xy), bool)
    dist = np.hypot(pred_xy[:, None, 0] - gt_xy[None, :, 0], pred_xy[:, None, 1] - gt_xy[None, :, 1])
    for i in np.argsort(-np.asarray(scores), kind="stable"):
        d = np.where(taken, np.inf, dist[i])
        j = int(np.argmin(d))
        if d[j] <= threshold:
            taken[j] = True
            tp[i] = True
    return tp


def average_precision(scores: np.ndarray, tp: np.ndarray, num_gt: int) -> float:
    """All-point interpolated AP of detections pooled over a dataset (NaN without ground truth)."""
    if num_gt <= 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-np.asarray(scores), kind="stable")
    hits = np.asarray(tp, dtype=np.float64)[order]
    ctp, cfp = np.cumsum(hits), np.cumsum(1.0 - hits)
    recall = ctp / num_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    # precision envelope, then the area over the recall steps
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    r = np.concatenate([[0.0], recall])
    return float(np.sum((r[1:] - r[:-1]) * envelope))


class DetectionAccumulator:
    """Pools matched detections over scenes for AP at each centre-distance threshold (one class)."""

    def __init__(self, thresholds: Sequence[float] = DEFAULT_DISTANCE_THRESHOLDS) -> None:
        self.thresholds = tuple(float(t) for t in thresholds)
        self.scores: list[np.ndarray] = []
        self.tp: dict[float, list[np.ndarray]] = {t: [] for t in self.thresholds}
        self.num_gt = 0
        self.num_scenes = 0

    def update(self, pred_xy: np.ndarray, scores: np.ndarray, gt_xy: np.ndarray) -> None:
        """One scene: detections ``(M, 2)`` with ``scores (M,)`` against ground-truth centres ``(N, 2)``."""
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        self.scores.append(scores)
        for t in self.thresholds:
            self.tp[t].append(match_detections(pred_xy, scores, gt_xy, t))
        self.num_gt += int(np.asarray(gt_xy).reshape(-1, 2).shape[0])
        self.num_scenes += 1

    def compute(self) -> dict[str, float]:
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        out: dict[str, float] = {}
        for t in self.thresholds:
            tp = np.concatenate(self.tp[t]) if self.tp[t] else np.zeros(0, bool)
            out[f"ap@{t:g}m"] = average_precision(scores, tp, self.num_gt)
        aps = [v for v in out.values() if np.isfinite(v)]
        out["map"] = float(np.mean(aps)) if aps else float("nan")
        out["num_gt"] = float(self.num_gt)
        return out


# --------------------------------------------------------------------------------------------- semantics
class SemanticAccumulator:
    """Confusion matrix of per-cell class labels; IoU per class and mIoU."""

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = list(class_names)
        k = len(self.class_names)
        self.confusion = np.zeros((k, k), np.int64)  # [true, predicted]

    def update(self, pred: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(pred, dtype=np.int64).reshape(-1)
        target = np.asarray(target, dtype=np.int64).reshape(-1)
        k = len(self.class_names)
        if pred.shape != target.shape:
            raise ValueError(f"semantic prediction {pred.shape} and target {target.shape} differ")
        if len(pred) and (pred.min() < 0 or pred.max() >= k or target.min() < 0 or target.max() >= k):
            raise ValueError(f"semantic labels must lie in [0, {k - 1}]")
        self.confusion += np.bincount(target * k + pred, minlength=k * k).reshape(k, k)

    def iou(self) -> np.ndarray:
        tp = np.diag(self.confusion).astype(np.float64)
        union = self.confusion.sum(0) + self.confusion.sum(1) - tp
        return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    def compute(self) -> dict[str, float]:
        iou = self.iou()
        out = {f"iou/{name}": float(v) for name, v in zip(self.class_names, iou, strict=True)}
        valid = iou[np.isfinite(iou)]
        out["miou"] = float(valid.mean()) if len(valid) else float("nan")
        fg = iou[1:][np.isfinite(iou[1:])]
        out["miou_fg"] = float(fg.mean()) if len(fg) else float("nan")
        total = self.confusion.sum()
        out["pixel_accuracy"] = float(np.trace(self.confusion) / total) if total else float("nan")
        return out


# --------------------------------------------------------------------------------------------- occupancy
class OccupancyAccumulator:
    """Counts of occupied / free cells predicted vs logged."""

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = float(threshold)
        self.tp = self.fp = self.fn = self.tn = 0

    def update(self, prob: np.ndarray, target: np.ndarray) -> None:
        pred = np.asarray(prob, dtype=np.float64) >= self.threshold
        gt = np.asarray(target).astype(bool)
        if pred.shape != gt.shape:
            raise ValueError(f"occupancy prediction {pred.shape} and target {gt.shape} differ")
        self.tp += int((pred & gt).sum())
        self.fp += int((pred & ~gt).sum())
        self.fn += int((~pred & gt).sum())
        self.tn += int((~pred & ~gt).sum())

    def compute(self) -> dict[str, float]:
        def ratio(a: int, b: int) -> float:
            return a / b if b else float("nan")

        return {
            "precision": ratio(self.tp, self.tp + self.fp),
            "recall": ratio(self.tp, self.tp + self.fn),
            "iou": ratio(self.tp, self.tp + self.fp + self.fn),
            "free_precision": ratio(self.tn, self.tn + self.fn),
            "free_recall": ratio(self.tn, self.tn + self.fp),
        }


# --------------------------------------------------------------------------------------------- forecasting
class ForecastAccumulator:
    """Multi-modal forecasts of agents: min-over-modes and most-likely-mode ADE / FDE, miss rate."""

    def __init__(self, miss_threshold: float = MISS_THRESHOLD_M) -> None:
        self.miss_threshold = float(miss_threshold)
        self.rows: list[np.ndarray] = []  # per agent: minADE, minFDE, top1 ADE, top1 FDE

    def update(self, pred: np.ndarray, probs: np.ndarray, target: np.ndarray, valid: np.ndarray) -> None:
        """``pred (N, K, F, 2)``, ``probs (N, K)``, ``target (N, F, 2)``, ``valid (N, F)`` for N agents."""
        pred = np.asarray(pred, dtype=np.float64)
        target = np.asarray(target, dtype=np.float64)
        valid = np.asarray(valid).astype(bool)
        if pred.ndim != 4 or pred.shape[0] != target.shape[0] or pred.shape[2:] != target.shape[1:]:
            raise ValueError(f"forecast prediction {pred.shape} does not fit target {target.shape}")
        keep = valid[:, -1] if valid.shape[1] else np.zeros(len(valid), bool)
        if not keep.any():
            return
        pred, target, valid = pred[keep], target[keep], valid[keep]
        probs = np.asarray(probs, dtype=np.float64)[keep]
        err = np.hypot(*(pred - target[:, None]).transpose(3, 0, 1, 2))  # (N, K, F)
        w = valid[:, None, :].astype(np.float64)
        ade = (err * w).sum(-1) / w.sum(-1)  # (N, K)
        fde = err[..., -1]
        top = probs.argmax(1)
        idx = np.arange(len(top))
        self.rows.append(np.stack([ade.min(1), fde.min(1), ade[idx, top], fde[idx, top]], 1))

    def compute(self) -> dict[str, float]:
        if not self.rows:
            nan = float("nan")
            return {
                "min_ade": nan,
                "min_fde": nan,
                "miss_rate": nan,
                "ade": nan,
                "fde": nan,
                "num_agents": 0.0,
            }
        r = np.concatenate(self.rows)
        return {
            "min_ade": float(r[:, 0].mean()),
            "min_fde": float(r[:, 1].mean()),
            "miss_rate": float((r[:, 1] > self.miss_threshold).mean()),
            "ade": float(r[:, 2].mean()),
            "fde": float(r[:, 3].mean()),
            "num_agents": float(len(r)),
        }


# --------------------------------------------------------------------------------------------- all together
class PerceptionMetrics:
    """Every perception metric over a dataset, fed with decoded batches (numpy) from an agent.

    ``update`` takes a mapping with any of these groups (a missing group is a head the agent does not have):
    detection ``det_boxes (B, M, ≥2)``, ``det_scores (B, M)``, ``det_valid (B, M)``, ``gt_boxes (B, N, ≥2)``,
    ``gt_valid (B, N)``; semantics ``sem_pred (B, H, W)``, ``sem_gt``; occupancy ``occ_prob (B, H, W)``,
    ``occ_gt``; forecasting ``fc_pred (B, N, K, F, 2)``, ``fc_prob (B, N, K)``, ``fc_gt (B, N, F, 2)``,
    ``fc_valid (B, N, F)`` (agents with ``gt_valid`` 0 are skipped).
    """

    def __init__(
        self,
        class_names: Sequence[str] | None = None,
        thresholds: Sequence[float] = DEFAULT_DISTANCE_THRESHOLDS,
        occupancy_threshold: float = 0.5,
        miss_threshold: float = MISS_THRESHOLD_M,
    ) -> None:
        self.detection = DetectionAccumulator(thresholds)
        self.semantic = SemanticAccumulator(class_names) if class_names else None
        self.occupancy = OccupancyAccumulator(occupancy_threshold)
        self.forecast = ForecastAccumulator(miss_threshold)
        self.seen: set[str] = set()
        self.num_scenes = 0

    def update(self, batch: Mapping[str, np.ndarray]) -> None:
        b = None
        if "det_boxes" in batch:
            self.seen.add("detection")
            boxes, scores = np.asarray(batch["det_boxes"]), np.asarray(batch["det_scores"])
            dv = np.asarray(batch.get("det_valid", np.ones(scores.shape, bool))).astype(bool)
            gt, gv = np.asarray(batch["gt_boxes"]), np.asarray(batch["gt_valid"]).astype(bool)
            b = len(boxes)
            for i in range(b):
                self.detection.update(boxes[i][dv[i], :2], scores[i][dv[i]], gt[i][gv[i], :2])
        if "sem_pred" in batch:
            if self.semantic is None:
                raise ValueError("semantic predictions given but PerceptionMetrics has no class names")
            self.seen.add("semantic")
            self.semantic.update(batch["sem_pred"], batch["sem_gt"])
            b = len(batch["sem_pred"])
        if "occ_prob" in batch:
            self.seen.add("occupancy")
            self.occupancy.update(batch["occ_prob"], batch["occ_gt"])
            b = len(batch["occ_prob"])
        if "fc_pred" in batch:
            self.seen.add("forecast")
            gv = np.asarray(batch["gt_valid"]).astype(bool)
            pred, prob = np.asarray(batch["fc_pred"]), np.asarray(batch["fc_prob"])
            gt, val = np.asarray(batch["fc_gt"]), np.asarray(batch["fc_valid"])
            b = len(pred)
            for i in range(b):
                self.forecast.update(pred[i][gv[i]], prob[i][gv[i]], gt[i][gv[i]], val[i][gv[i]])
        self.num_scenes += int(b or 0)

    def compute(self) -> dict[str, float]:
        """Flat ``{"detection/map": …, "semantic/iou/road": …, "occupancy/recall": …, "forecast/min_ade": …}``."""
        out: dict[str, float] = {}
        parts: list[tuple[str, Any]] = [
            ("detection", self.detection),
            ("semantic", self.semantic),
            ("occupancy", self.occupancy),
            ("forecast", self.forecast),
        ]
        for name, acc in parts:
            if name in self.seen and acc is not None:
                out.update({f"{name}/{k}": v for k, v in acc.compute().items()})
        return out
