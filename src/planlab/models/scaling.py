"""Fixed physical scales for ego-status inputs and trajectory outputs of small regression planners.

Why: the raw targets span three orders of magnitude (x up to ~40 m at 4 s, y at 0.5 s a few cm, heading a
few hundredths of a radian). A raw-unit L1 and an output layer shared by all channels leave the early
lateral offsets and the headings at the noise level of the x channel, and the PDM score's LQR tracker turns
a 0.05 rad heading error into a drift off the drivable area. Dividing by typical magnitudes puts every
channel on a comparable scale. The scales are constants of physics (a 10 m/s reference speed, 1 m/s²
lateral acceleration, 0.2 rad/s yaw rate), not statistics of a dataset, so training and inference can never
disagree and no data pass is needed.
"""

from __future__ import annotations

import torch

REF_SPEED = 10.0  # m/s: scale of velocities and of the longitudinal offset per second
REF_ACCEL = 2.0  # m/s²: scale of accelerations
REF_LAT_ACCEL = 1.0  # m/s²: lateral offset scale 0.5·a·t²
REF_YAW_RATE = 0.2  # rad/s: heading scale per second
MIN_LATERAL = 0.1  # m: floor of the lateral scale (the first poses move a few cm sideways)
HISTORY_SCALE = (REF_SPEED, 1.0, REF_YAW_RATE)  # past pose (x [m], y [m], heading [rad])


def ego_status_scale(history_poses: int = 0) -> torch.Tensor:
    """Divisors of the ego-status vector: v (2) [m/s], a (2) [m/s²], command one-hot (4, unscaled),
    then ``history_poses`` × (x, y, heading) of the past poses."""
    base = [REF_SPEED, REF_SPEED, REF_ACCEL, REF_ACCEL, 1.0, 1.0, 1.0, 1.0]
    return torch.tensor(base + list(HISTORY_SCALE) * int(history_poses), dtype=torch.float32)


def trajectory_scale(num_poses: int, interval_length: float) -> torch.Tensor:
    """(num_poses, 3) divisors of future poses (x [m], y [m], heading [rad]) at t = (k+1)·interval."""
    t = interval_length * torch.arange(1, num_poses + 1, dtype=torch.float32)
    x = REF_SPEED * t
    y = (0.5 * REF_LAT_ACCEL * t**2).clamp(min=MIN_LATERAL)
    heading = REF_YAW_RATE * t
    return torch.stack([x, y, heading], dim=1)
