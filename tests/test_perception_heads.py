"""Perception heads and losses: the dense detector's matching rule (centre cell) and an exact encode/decode
round trip, Hungarian matching recovering a permutation, semantic / occupancy / forecasting losses that are
small for the right answer and large for a wrong one, and static / uncertainty loss weighting."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from planlab.metrics.perception import PerceptionMetrics
from planlab.models.temporal.grid import BEVGrid
from planlab.models.temporal.perception import (
    SIGMA_MIN,
    DenseDetectionHead,
    DenseForecastHead,
    LossWeighting,
    QueryDetectionHead,
    box_cells,
    encode_boxes,
    forecast_nll,
    hungarian_match,
    occupancy_target,
    semantic_loss,
)

GRID = BEVGrid.square(32.0, 32)  # 2 m cells


def some_boxes() -> tuple[torch.Tensor, torch.Tensor]:
    states = torch.zeros(2, 5, 5)
    labels = torch.zeros(2, 5)
    states[0, :3] = torch.tensor(
        [[10.3, -4.1, 0.3, 4.6, 1.9], [-7.2, 12.9, -2.8, 5.1, 2.1], [0.4, 0.7, 1.6, 4.2, 1.8]]
    )
    labels[0, :3] = 1
    states[1, :1] = torch.tensor([[25.5, 20.2, 3.0, 4.4, 2.0]])
    labels[1, :1] = 1
    return states, labels


def perfect_dense_prediction(states, labels):
    row, col, inside = box_cells(states, labels, GRID)
    heat = torch.full((2, 1, 32, 32), -12.0)
    box = torch.zeros(2, 6, 32, 32)
    params = encode_boxes(states, row, col, GRID)
    for b, n in zip(*torch.nonzero(inside, as_tuple=True), strict=True):
        heat[b, 0, row[b, n], col[b, n]] = 12.0
        box[b, :, row[b, n], col[b, n]] = params[b, n]
    return {"det_heatmap": heat, "det_box": box}


def test_box_cells_is_the_cell_containing_the_centre():
    states, labels = some_boxes()
    row, col, inside = box_cells(states, labels, GRID)
    r, c, ok = GRID.cell_of(states[..., :2].numpy())
    assert torch.equal(inside, torch.from_numpy(ok) & (labels > 0.5))
    assert (row.numpy()[ok] == r[ok]).all() and (col.numpy()[ok] == c[ok]).all()
    far = states.clone()
    far[0, 0, 0] = 40.0  # outside the ±32 m grid: not assigned
    assert not box_cells(far, labels, GRID)[2][0, 0]


def test_dense_detection_round_trip_and_losses():
    head = DenseDetectionHead(8, GRID)
    states, labels = some_boxes()
    pred = perfect_dense_prediction(states, labels)
    losses = head.loss(pred, states, labels)
    assert float(losses["agent_box"]) < 1e-5 and float(losses["agent_class"]) < 1e-4
    boxes, scores = head.decode(pred, k=5)
    for b in range(2):
        n = int(labels[b].sum())
        got = boxes[b, :n][scores[b, :n].argsort(descending=True)]
        for want in states[b, :n]:
            d = (got[:, :2] - want[:2]).norm(dim=1)
            j = int(d.argmin())
            assert float(d[j]) < 1e-4
            assert math.isclose(math.remainder(float(got[j, 2] - want[2]), 2 * math.pi), 0.0, abs_tol=1e-4)
            assert torch.allclose(got[j, 3:], want[3:], atol=1e-4)
    metrics = PerceptionMetrics(["bg"])
    metrics.update(
        {
            "det_boxes": boxes.numpy(),
            "det_scores": scores.numpy(),
            "gt_boxes": states.numpy(),
            "gt_valid": labels.numpy() > 0,
        }
    )
    assert metrics.compute()["detection/map"] == pytest.approx(1.0)
    # the same boxes one cell off: a much larger focal loss
    shifted = {"det_heatmap": pred["det_heatmap"].roll(1, dims=3), "det_box": pred["det_box"]}
    assert float(head.loss(shifted, states, labels)["agent_class"]) > 100 * float(losses["agent_class"])


def test_hungarian_matching_recovers_a_permutation():
    states, labels = some_boxes()
    perm = [2, 0, 1]
    boxes = torch.zeros(2, 6, 5)
    boxes[:, :, :2] = 50.0  # unmatched queries far away
    boxes[0, 3:6] = states[0, perm]
    logits = torch.full((2, 6), -4.0)
    logits[0, 3:6] = 4.0
    matches = hungarian_match(logits, boxes, states, labels)
    q, g = matches[0]
    assert dict(zip(q.tolist(), g.tolist(), strict=True)) == {3: 2, 4: 0, 5: 1}
    assert len(matches[1][0]) == 1  # one ground truth in the second sample
    losses = QueryDetectionHead.loss(
        {"agent_logits": logits[:1], "agent_boxes": boxes[:1]}, states[:1], labels[:1]
    )
    assert float(losses["agent_box"]) < 1e-6 and float(losses["agent_class"]) < 0.05
    empty = QueryDetectionHead.loss(
        {"agent_logits": logits[:1], "agent_boxes": boxes[:1]}, states[:1], labels[:1] * 0
    )
    assert (
        float(empty["agent_box"]) == 0.0 and float(empty["agent_class"]) > 1.0
    )  # three confident false alarms


@pytest.mark.parametrize("kind", ["bce_dice", "ce"])
def test_semantic_loss_prefers_the_right_map(kind):
    torch.manual_seed(0)
    target = torch.randint(0, 7, (2, 16, 16))
    right = torch.nn.functional.one_hot(target, 7).permute(0, 3, 1, 2).float() * 20 - 10
    wrong = right.roll(1, dims=1)
    assert float(semantic_loss(right, target, kind)) < 0.05
    assert float(semantic_loss(wrong, target, kind)) > 2.0
    with pytest.raises(ValueError, match="unknown semantic loss"):
        semantic_loss(right, target, "focal")


def test_occupancy_target_marks_objects_only():
    sem = torch.tensor([[0, 1, 2, 3, 4, 5, 6]])
    assert occupancy_target(sem).tolist() == [[0, 0, 0, 0, 1, 1, 1]]


def test_forecast_head_reads_the_agent_cell():
    head = DenseForecastHead(4, modes=2, steps=3)
    fmap = torch.zeros(1, 2 * (1 + 12), 32, 32)
    fmap[0, 0, 7, 9] = 5.0  # mode-0 logit at cell (7, 9)
    out = head.at({"forecast_map": fmap}, torch.tensor([[7, 0]]), torch.tensor([[9, 0]]))
    assert out["logits"].shape == (1, 2, 2) and out["mean"].shape == (1, 2, 2, 3, 2)
    assert float(out["logits"][0, 0, 0]) == 5.0 and float(out["logits"][0, 1, 0]) == 0.0
    # zero activations: zero displacement, σ growing with the horizon
    assert torch.allclose(out["sigma"][0, 0, 0, :, 0], SIGMA_MIN + math.log(2) * 0.5 * torch.arange(1, 4.0))


def test_forecast_nll_is_non_negative_and_prefers_the_true_mode():
    torch.manual_seed(0)
    target = torch.randn(1, 2, 4, 2) * 5
    valid = torch.ones(1, 2, 4)
    mask = torch.ones(1, 2)
    sigma = torch.full((1, 2, 2, 4, 2), 0.5)
    mean = torch.stack([target, target + 4.0], 2)  # mode 0 right, mode 1 off by 4 m
    good = forecast_nll(torch.tensor([[[3.0, -3.0]] * 2]), mean, sigma, target, valid, mask)
    off = torch.stack([target + 4.0, target + 4.0], 2)  # both modes off by 4 m
    bad = forecast_nll(torch.tensor([[[3.0, -3.0]] * 2]), off, sigma, target, valid, mask)
    assert 0.0 <= float(good) < float(bad)
    tight = forecast_nll(
        torch.zeros(1, 2, 2),
        torch.stack([target, target], 2),
        torch.full_like(sigma, SIGMA_MIN),
        target,
        valid,
        mask,
    )
    assert float(tight) == pytest.approx(0.0, abs=1e-5)  # the lower bound is reached at σ_min on target
    for _ in range(5):
        rnd = forecast_nll(
            torch.randn(1, 2, 2),
            torch.randn(1, 2, 2, 4, 2) * 3,
            SIGMA_MIN + torch.rand(1, 2, 2, 4, 2),
            target,
            valid,
            mask,
        )
        assert float(rnd) >= 0.0
    # agents or steps that are not logged do not count
    junk_target = target.clone()
    junk_target[0, 1] = 1e4
    masked = forecast_nll(torch.zeros(1, 2, 2), mean, sigma, junk_target, valid, torch.tensor([[1.0, 0.0]]))
    only = forecast_nll(
        torch.zeros(1, 1, 2), mean[:, :1], sigma[:, :1], target[:, :1], valid[:, :1], mask[:, :1]
    )
    assert float(masked) == pytest.approx(float(only))


def test_loss_weighting_static_and_uncertainty():
    losses = {"a": torch.tensor(2.0), "b": torch.tensor(3.0)}
    total, extra = LossWeighting({"a": 10.0, "b": 1.0})(losses)
    assert float(total) == pytest.approx(23.0) and extra == {}
    w = LossWeighting({"a": 10.0, "b": 1.0}, uncertainty=True)
    total, extra = w(losses)
    assert float(total.detach()) == pytest.approx(23.0) and set(extra) == {
        "log_var/a",
        "log_var/b",
    }  # s = 0 at start
    total.backward()
    # d/ds (exp(-s) L + s) = 1 - L at s = 0: pushes s up for losses above 1
    assert float(w.log_vars["a"].grad) == pytest.approx(10 * (1 - 2.0))
    with pytest.raises(KeyError, match="no loss weight for c"):
        LossWeighting({"a": 1.0})({"a": torch.tensor(1.0), "c": torch.tensor(1.0)})


def test_losses_have_gradients_everywhere_they_should():
    torch.manual_seed(0)
    head = DenseDetectionHead(8, GRID)
    x = torch.randn(2, 8, 32, 32, requires_grad=True)
    states, labels = some_boxes()
    losses = head.loss(head(x), states, labels)
    (losses["agent_class"] + losses["agent_box"]).backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and float(x.grad.abs().sum()) > 0
    assert np.isfinite([float(v.detach()) for v in losses.values()]).all()
