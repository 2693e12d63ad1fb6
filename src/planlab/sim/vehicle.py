"""The ego vehicle: nuPlan's Pacifica parameters, the 11-dim state layout and the rear-axle <-> box geometry.

Every derived length is computed with the same float operations as nuPlan's ``VehicleParameters`` /
``CarFootprint`` (fact sheet §1.2), so boxes built here agree with NAVSIM's to the last bit where it
matters (a corner 1e-15 m off a road edge decides DAC).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from planlab.scene.enums import StateIndex

STATE_SIZE = len(StateIndex)  # x, y, heading, vx, vy, ax, ay, steering, steering rate, yaw rate, yaw accel


@dataclass(frozen=True)
class VehicleParameters:
    """Rigid box + wheel base of the ego, all lengths in metres measured from the rear axle."""

    width: float
    front_length: float  # rear axle -> front bumper
    rear_length: float  # rear axle -> rear bumper
    wheel_base: float
    cog_position_from_rear_axle: float
    height: float

    @property
    def length(self) -> float:
        return self.front_length + self.rear_length

    @property
    def half_length(self) -> float:
        return self.length / 2.0

    @property
    def half_width(self) -> float:
        return self.width / 2.0

    @property
    def rear_axle_to_center(self) -> float:
        return self.half_length - self.rear_length


# fact sheet §1.2: nuPlan's Pacifica (width written as 2 x 1.1485 like nuPlan, for identical rounding).
PACIFICA = VehicleParameters(
    width=1.1485 * 2.0,
    front_length=4.049,
    rear_length=1.127,
    wheel_base=3.089,
    cog_position_from_rear_axle=1.67,
    height=1.777,
)


def translate_lon_lat(x, y, heading, lon: float, lat: float) -> tuple[np.ndarray, np.ndarray]:
    """Points ``lon`` metres ahead and ``lat`` metres left of poses (nuPlan's translation formula)."""
    half_pi = np.pi / 2.0
    tx = (lat * np.cos(heading + half_pi)) + (lon * np.cos(heading))
    ty = (lat * np.sin(heading + half_pi)) + (lon * np.sin(heading))
    return x + tx, y + ty


def box_coords(x, y, heading, length, width) -> np.ndarray:
    """Box corners + centre ``(..., 5, 2)`` in NAVSIM's BBCoordsIndex order FL, RL, RR, FR, CENTER.

    ``x, y, heading`` is the box centre; corners use nuPlan's ``translate_longitudinally_and_laterally``.
    """
    x, y, heading, length, width = np.broadcast_arrays(
        *(np.asarray(v, dtype=np.float64) for v in (x, y, heading, length, width))
    )
    hl, hw = length / 2.0, width / 2.0
    out = np.empty(x.shape + (5, 2), dtype=np.float64)
    for i, (slon, slat) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        cx, cy = translate_lon_lat(x, y, heading, slon * hl, slat * hw)
        out[..., i, 0], out[..., i, 1] = cx, cy
    out[..., 4, 0], out[..., 4, 1] = x, y
    return out


def ego_coords(states: np.ndarray, vehicle: VehicleParameters = PACIFICA) -> np.ndarray:
    """Ego box corners + centre ``(..., 5, 2)`` from rear-axle states ``(..., 11)`` (fact sheet §1.5)."""
    h = states[..., StateIndex.HEADING]
    c, s = np.cos(h), np.sin(h)
    d = vehicle.rear_axle_to_center
    cx = states[..., StateIndex.X] + d * c
    cy = states[..., StateIndex.Y] + d * s
    hl, hw = vehicle.half_length, vehicle.half_width
    half_pi = np.pi / 2.0
    cl, sl = np.cos(h + half_pi), np.sin(h + half_pi)
    out = np.empty(states.shape[:-1] + (5, 2), dtype=np.float64)
    for i, (slon, slat) in enumerate(((1, 1), (-1, 1), (-1, -1), (1, -1))):
        lon, lat = slon * hl, slat * hw
        out[..., i, 0] = cx + ((lat * cl) + (lon * c))
        out[..., i, 1] = cy + ((lat * sl) + (lon * s))
    out[..., 4, 0], out[..., 4, 1] = cx, cy
    return out


def rear_axle_roundtrip(
    x, y, heading, vehicle: VehicleParameters = PACIFICA
) -> tuple[np.ndarray, np.ndarray]:
    """The rear axle nuPlan reports for an EgoState built from rear axle (x, y): centre, then back.

    nuPlan stores the box centre and recomputes the rear axle from it; the result differs from the
    input in the last bits. NAVSIM reads every initial and interpolated state through this path.
    """
    d = vehicle.rear_axle_to_center
    c, s = np.cos(heading), np.sin(heading)
    cx, cy = x + d * c, y + d * s
    return cx + (-d) * c, cy + (-d) * s


def initial_state_array(
    pose: np.ndarray, velocity: np.ndarray, acceleration: np.ndarray, vehicle: VehicleParameters = PACIFICA
) -> np.ndarray:
    """The 11-dim simulator state of a logged ego pose ``(..., 3)``, velocity and acceleration ``(..., 2)``.

    fact sheet §1.2: steering, steering rate, yaw rate and yaw acceleration are 0; NAVSIM's Scene stores
    the logged velocity and acceleration as float32, so they are rounded to float32 here too.
    """
    pose = np.asarray(pose, dtype=np.float64)
    out = np.zeros(pose.shape[:-1] + (STATE_SIZE,), dtype=np.float64)
    rx, ry = rear_axle_roundtrip(pose[..., 0], pose[..., 1], pose[..., 2], vehicle)
    out[..., StateIndex.X] = rx
    out[..., StateIndex.Y] = ry
    out[..., StateIndex.HEADING] = pose[..., 2]
    vel = np.asarray(velocity, dtype=np.float32).astype(np.float64)
    acc = np.asarray(acceleration, dtype=np.float32).astype(np.float64)
    out[..., StateIndex.VELOCITY_X] = vel[..., 0]
    out[..., StateIndex.VELOCITY_Y] = vel[..., 1]
    out[..., StateIndex.ACCELERATION_X] = acc[..., 0]
    out[..., StateIndex.ACCELERATION_Y] = acc[..., 1]
    return out
