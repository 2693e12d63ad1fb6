"""BEV perception heads, their losses and decoders (methods_facts §4 for TransFuser's).

Heads read a BEV feature map laid out as :class:`~planlab.models.temporal.grid.BEVGrid` says (row 0 ahead,
column 0 left):

- :class:`DenseDetectionHead` — CenterNet-style: a per-cell objectness logit and a box (centre offset from the
  cell centre [m], sin/cos heading, log length, log width). **Matching rule**: a ground-truth box is assigned
  to the cell that contains its centre. Loss: sigmoid focal loss (γ 2, α 0.25) over all cells, normalised by
  the number of boxes, plus L1 on the box parameters at the assigned cells. Decoding: 3×3 max-pool peak
  suppression, top-k cells.
- :class:`QueryDetectionHead` + :func:`hungarian_match` — TransFuser's: one box + existence logit per agent
  query, matched to ground truth by the Hungarian algorithm on cost 10·CE(existence) + 1·L1(centre); BCE on
  existence over all queries, L1 on the matched boxes.
- semantic segmentation: :func:`semantic_loss` (``bce_dice`` = per-class BCE + soft Dice, or ``ce`` =
  TransFuser's cross-entropy).
- occupancy: :func:`occupancy_target` (cells of static objects, vehicles, pedestrians) and BCE.
- :class:`DenseForecastHead` — K modes of future centre displacements with a diagonal Gaussian per step and
  a mode logit, read at an agent's cell; :func:`forecast_nll` is the Gaussian-mixture NLL over the modes.
- :class:`LossWeighting` — static weights, optionally multiplied by learned homoscedastic uncertainty
  (Kendall et al.): ``Σ w_i · (exp(−s_i)·L_i + s_i)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from planlab.models.temporal.grid import BEVGrid

OCCUPIED_CLASSES = (
    4,
    5,
    6,
)  # static objects, vehicles, pedestrians of planlab.features.perception.BEV_CLASSES
BOX_PARAMS = 6  # dx, dy, sin, cos, log length, log width
SIGMA_MIN = 0.1  # [m] floor of the forecast standard deviations


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """3×3 conv → GroupNorm → ReLU (GroupNorm: batch-size independent, a batch of one at inference)."""
    groups = next(g for g in (8, 4, 2, 1) if cout % g == 0)
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.GroupNorm(groups, cout),
        nn.ReLU(inplace=True),
    )


def sigmoid_focal_loss(
    logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0
) -> torch.Tensor:
    """Element-wise binary focal loss (Lin et al. 2017) of logits against {0, 1} targets."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return a_t * (1 - p_t) ** gamma * ce


# --------------------------------------------------------------------------------------------- dense detection
def box_cells(
    states: torch.Tensor, labels: torch.Tensor, grid: BEVGrid
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(row, col) of the cell containing each box centre ``states (B, N, ≥2)`` and a mask of real boxes inside."""
    row = torch.floor((grid.x_max - states[..., 0]) / grid.res_x).long()
    col = torch.floor((grid.y_max - states[..., 1]) / grid.res_y).long()
    inside = (row >= 0) & (row < grid.height) & (col >= 0) & (col < grid.width) & (labels > 0.5)
    return row.clamp(0, grid.height - 1), col.clamp(0, grid.width - 1), inside


def cell_centre_xy(row: torch.Tensor, col: torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    x = grid.x_max - (row.to(torch.float32) + 0.5) * grid.res_x
    y = grid.y_max - (col.to(torch.float32) + 0.5) * grid.res_y
    return torch.stack([x, y], -1)


def gather_cells(maps: torch.Tensor, row: torch.Tensor, col: torch.Tensor) -> torch.Tensor:
    """``maps (B, C, H, W)`` read at ``(row, col) (B, N)`` → ``(B, N, C)``."""
    b, c, _, w = maps.shape
    flat = (row * w + col).unsqueeze(1).expand(b, c, row.shape[1])
    return maps.flatten(2).gather(2, flat).transpose(1, 2)


def encode_boxes(states: torch.Tensor, row: torch.Tensor, col: torch.Tensor, grid: BEVGrid) -> torch.Tensor:
    """Box regression targets ``(B, N, 6)`` of ``states (B, N, 5)`` = x, y, heading, length, width."""
    centre = cell_centre_xy(row, col, grid)
    return torch.cat(
        [
            states[..., :2] - centre,
            torch.sin(states[..., 2:3]),
            torch.cos(states[..., 2:3]),
            torch.log(states[..., 3:5].clamp_min(0.1)),
        ],
        -1,
    )


def decode_box_params(params: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """``(…, 6)`` regression + cell centres ``(…, 2)`` → boxes ``(…, 5)`` = x, y, heading, length, width."""
    xy = centre + params[..., :2]
    heading = torch.atan2(params[..., 2], params[..., 3])
    size = torch.exp(params[..., 4:6].clamp(-3.0, 4.0))
    return torch.cat([xy, heading.unsqueeze(-1), size], -1)


class DenseDetectionHead(nn.Module):
    """Objectness logit + 6 box parameters per BEV cell."""

    def __init__(self, channels: int, grid: BEVGrid) -> None:
        super().__init__()
        self.grid = grid
        self.body = conv_block(channels, channels)
        self.heat = nn.Conv2d(channels, 1, 1)
        self.box = nn.Conv2d(channels, BOX_PARAMS, 1)
        nn.init.constant_(self.heat.bias, -math.log((1 - 0.01) / 0.01))  # prior 1 % (focal-loss practice)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h = self.body(x)
        return {"det_heatmap": self.heat(h), "det_box": self.box(h)}

    def loss(
        self, pred: Mapping[str, torch.Tensor], states: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"agent_class": focal, "agent_box": L1}`` against the box target ``states (B, N, 5)``, ``labels``."""
        heat = pred["det_heatmap"]
        b, _, h, w = heat.shape
        row, col, inside = box_cells(states, labels, self.grid)
        target = torch.zeros(b, h * w, device=heat.device, dtype=heat.dtype)
        bi, ni = torch.nonzero(inside, as_tuple=True)
        target[bi, row[bi, ni] * w + col[bi, ni]] = 1.0
        n_pos = inside.sum().clamp_min(1).to(heat.dtype)
        focal = sigmoid_focal_loss(heat.flatten(1), target).sum() / n_pos
        params = gather_cells(pred["det_box"], row, col)
        want = encode_boxes(states, row, col, self.grid)
        l1 = (F.l1_loss(params, want, reduction="none").sum(-1) * inside).sum() / n_pos
        return {"agent_class": focal, "agent_box": l1}

    @torch.no_grad()
    def decode(self, pred: Mapping[str, torch.Tensor], k: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` peaks: boxes ``(B, k, 5)`` and scores ``(B, k)`` (sigmoid objectness)."""
        heat = torch.sigmoid(pred["det_heatmap"])
        peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat)
        b, _, h, w = heat.shape
        scores, idx = peaks.flatten(1).topk(min(k, h * w), dim=1)
        row, col = idx // w, idx % w
        params = gather_cells(pred["det_box"], row, col)
        return decode_box_params(params, cell_centre_xy(row, col, self.grid)), scores


# --------------------------------------------------------------------------------------------- query detection
def hungarian_match(
    logits: torch.Tensor,
    boxes: torch.Tensor,
    states: torch.Tensor,
    labels: torch.Tensor,
    class_cost: float = 10.0,
    centre_cost: float = 1.0,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per sample, (query indices, ground-truth indices) minimising class_cost·CE + centre_cost·L1(centre)."""
    from scipy.optimize import linear_sum_assignment

    out = []
    with torch.no_grad():
        ce = F.softplus(-logits.float())  # -log sigmoid: the cost of calling a query an agent
        for i in range(logits.shape[0]):
            gt = torch.nonzero(labels[i] > 0.5).flatten()
            if gt.numel() == 0:
                out.append((np.zeros(0, np.int64), np.zeros(0, np.int64)))
                continue
            l1 = torch.cdist(boxes[i, :, :2].float(), states[i, gt, :2].float(), p=1)  # (Q, G)
            cost = class_cost * ce[i].unsqueeze(1) + centre_cost * l1
            q, g = linear_sum_assignment(cost.cpu().numpy())
            out.append((q.astype(np.int64), gt.cpu().numpy()[g].astype(np.int64)))
    return out


class QueryDetectionHead(nn.Module):
    """Per agent query: (x, y) = tanh·range, heading = tanh·π, length/width > 0, and an existence logit."""

    def __init__(self, d_model: int, range_m: float) -> None:
        super().__init__()
        self.range_m = float(range_m)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_model), nn.ReLU(inplace=True), nn.Linear(d_model, 6))

    def forward(self, queries: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.mlp(queries)
        xy = torch.tanh(out[..., :2]) * self.range_m
        heading = torch.tanh(out[..., 2:3]) * math.pi
        size = F.softplus(out[..., 3:5]) + 0.1
        return {"agent_boxes": torch.cat([xy, heading, size], -1), "agent_logits": out[..., 5]}

    @staticmethod
    def loss(
        pred: Mapping[str, torch.Tensor], states: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``{"agent_class": BCE over all queries, "agent_box": L1 over matched boxes}`` (heading wrapped)."""
        logits, boxes = pred["agent_logits"], pred["agent_boxes"]
        matches = hungarian_match(logits, boxes, states, labels)
        target = torch.zeros_like(logits)
        l1_sum = logits.new_zeros(())
        n = 0
        for i, (q, g) in enumerate(matches):
            if len(q) == 0:
                continue
            qi = torch.as_tensor(q, device=logits.device)
            gi = torch.as_tensor(g, device=logits.device)
            target[i, qi] = 1.0
            diff = boxes[i, qi] - states[i, gi]
            diff = torch.cat(
                [diff[:, :2], torch.atan2(torch.sin(diff[:, 2:3]), torch.cos(diff[:, 2:3])), diff[:, 3:5]], 1
            )
            l1_sum = l1_sum + diff.abs().sum()
            n += len(q)
        cls = F.binary_cross_entropy_with_logits(logits, target)
        return {"agent_class": cls, "agent_box": l1_sum / max(n, 1)}


# --------------------------------------------------------------------------------------------- semantics and occupancy
def semantic_loss(logits: torch.Tensor, target: torch.Tensor, kind: str = "bce_dice") -> torch.Tensor:
    """``logits (B, C, H, W)`` vs class labels ``target (B, H, W)``: ``bce_dice`` or ``ce``."""
    if kind == "ce":
        return F.cross_entropy(logits, target)
    if kind != "bce_dice":
        raise ValueError(f"unknown semantic loss {kind!r}; choose bce_dice or ce")
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(logits.dtype)
    bce = F.binary_cross_entropy_with_logits(logits, onehot)
    p = torch.sigmoid(logits)
    inter = (p * onehot).sum((0, 2, 3))
    denom = p.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    dice = 1.0 - (2.0 * inter + 1.0) / (denom + 1.0)  # soft Dice per class, smoothed by 1
    return bce + dice.mean()


def occupancy_target(semantic: torch.Tensor) -> torch.Tensor:
    """Occupied cells (float 0/1) of a BEV semantic label map: static objects, vehicles, pedestrians."""
    occ = torch.zeros_like(semantic, dtype=torch.float32)
    for c in OCCUPIED_CLASSES:
        occ = torch.maximum(occ, (semantic == c).to(torch.float32))
    return occ


# --------------------------------------------------------------------------------------------- forecasting
class DenseForecastHead(nn.Module):
    """Per cell, K modes × F steps of (dx, dy, raw σx, raw σy) displacements from the agent's current centre
    plus K mode logits; read at an agent's cell with :meth:`at`.

    Outputs are scaled by the horizon so that a unit activation is a plausible motion at every step: the mean
    is ``raw · step_scale · (t + 1)`` metres (``step_scale`` = 2 m per 0.5 s step, i.e. 4 m/s) and the standard
    deviation ``σ_min + softplus(raw) · 0.5 · (t + 1)`` metres; without it the initial NLL of a car 30 m
    further on is in the thousands and swamps every other loss.
    """

    def __init__(self, channels: int, modes: int, steps: int, step_scale: float = 2.0) -> None:
        super().__init__()
        self.modes, self.steps = int(modes), int(steps)
        self.body = conv_block(channels, channels)
        self.out = nn.Conv2d(channels, self.modes * (1 + 4 * self.steps), 1)
        self.register_buffer(
            "horizon", torch.arange(1, self.steps + 1, dtype=torch.float32), persistent=False
        )
        self.step_scale = float(step_scale)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"forecast_map": self.out(self.body(x))}

    def at(
        self, pred: Mapping[str, torch.Tensor], row: torch.Tensor, col: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Mode logits ``(B, N, K)``, means ``(B, N, K, F, 2)`` and std devs ``(B, N, K, F, 2)`` at the cells."""
        v = gather_cells(pred["forecast_map"], row, col)  # (B, N, K*(1+4F))
        b, n, _ = v.shape
        v = v.view(b, n, self.modes, 1 + 4 * self.steps)
        traj = v[..., 1:].view(b, n, self.modes, self.steps, 4)
        h = self.horizon.to(traj.dtype)[:, None]  # (F, 1): 1 … F steps ahead
        mean = traj[..., :2] * (self.step_scale * h)
        sigma = SIGMA_MIN + F.softplus(traj[..., 2:4]) * (0.5 * h)
        return {"logits": v[..., 0], "mean": mean, "sigma": sigma}


def forecast_nll(
    logits: torch.Tensor,
    mean: torch.Tensor,
    sigma: torch.Tensor,
    target: torch.Tensor,
    valid: torch.Tensor,
    agent_mask: torch.Tensor,
) -> torch.Tensor:
    """Gaussian-mixture NLL over the K modes, per logged step, averaged over agents with a logged future.

    ``target`` are displacements ``(B, N, F, 2)``. Shifted by its lower bound ``log(2π σ_min²)`` so that the
    loss is ≥ 0 (the gradient is unchanged; uncertainty weighting needs a non-negative loss).
    """
    v = valid * agent_mask.unsqueeze(-1)  # (B, N, F)
    z = (target.unsqueeze(2) - mean) / sigma  # (B, N, K, F, 2)
    log_n = -0.5 * (z**2).sum(-1) - torch.log(sigma).sum(-1) - math.log(2 * math.pi)  # (B, N, K, F)
    log_p = (log_n * v.unsqueeze(2)).sum(-1) + torch.log_softmax(logits, -1)  # (B, N, K)
    steps = v.sum(-1)  # (B, N)
    has = steps > 0
    nll = -torch.logsumexp(log_p, -1) / steps.clamp_min(1)
    per_agent = nll - math.log(2 * math.pi * SIGMA_MIN**2)
    return (per_agent * has).sum() / has.sum().clamp_min(1)


# --------------------------------------------------------------------------------------------- weighting
class LossWeighting(nn.Module):
    """Combines named losses with static weights; ``uncertainty=True`` adds one learned log-variance per loss."""

    def __init__(self, weights: Mapping[str, float], uncertainty: bool = False) -> None:
        super().__init__()
        self.weights = {k: float(v) for k, v in weights.items()}
        self.uncertainty = bool(uncertainty)
        if self.uncertainty:
            self.log_vars = nn.ParameterDict({k: nn.Parameter(torch.zeros(())) for k in self.weights})

    def forward(self, losses: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(total, extra logged values). Losses without a weight are an error (a silently ignored head)."""
        unknown = [k for k in losses if k not in self.weights]
        if unknown:
            raise KeyError(f"no loss weight for {', '.join(unknown)}")
        total = next(iter(losses.values())).new_zeros(())
        extra: dict[str, torch.Tensor] = {}
        for name, value in losses.items():
            w = self.weights[name]
            if self.uncertainty:
                s = self.log_vars[name]
                total = total + w * (torch.exp(-s) * value + s)
                extra[f"log_var/{name}"] = s.detach()
            else:
                total = total + w * value
        return total, extra
