"""Dynamic scene content for the sensors: 3-D object boxes, traffic-light heads, and their box "parts".

Both sensors see the same geometry: every object becomes one or a few upright, yawed boxes ("parts": a car is
wheels/underbody, body and glass cabin, a pedestrian legs plus torso, a traffic light a pole plus a housing, a
building one box or one box per wall), each with a colour (camera) and a material (LiDAR intensity). The parts
of one object form a "group" (the unit of the cameras' painter's order). Traffic-light lamps are small emissive
discs on the housing's front face, visible to the cameras only.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from planlab.scene.enums import BOX_NAMES


class Material(IntEnum):
    """Surface materials; :data:`REFLECTIVITY` gives their LiDAR reflectivity in [0, 1]."""

    PAINT = 0
    GLASS = 1
    CLOTH = 2
    RETROREFLECTIVE = 3  # cones, signs, barrier stripes
    CONCRETE = 4
    METAL = 5
    RUBBER = 6
    PLASTIC = 7


REFLECTIVITY = np.array([0.32, 0.07, 0.22, 0.92, 0.4, 0.45, 0.05, 0.28])

# Default albedo per class when the caller gives no colour (sRGB 0..255).
CLASS_COLORS: dict[str, tuple[int, int, int]] = {
    "vehicle": (150, 152, 156),
    "pedestrian": (70, 90, 140),
    "bicycle": (180, 60, 40),
    "traffic_cone": (250, 110, 20),
    "barrier": (225, 225, 220),
    "czone_sign": (245, 140, 20),
    "generic_object": (120, 115, 105),
}

# Car paints for :func:`color_for_token`: a realistic mix (white, black, silver and grey dominate real fleets).
CAR_PAINTS = np.array(
    [
        (235, 235, 232),
        (230, 230, 228),
        (25, 26, 28),
        (30, 30, 34),
        (168, 170, 174),
        (160, 162, 166),
        (105, 107, 110),
        (95, 97, 100),
        (150, 28, 30),
        (30, 60, 130),
        (40, 75, 140),
        (35, 80, 55),
        (200, 170, 120),
        (120, 60, 35),
        (230, 190, 30),
        (90, 30, 60),
    ],
    dtype=np.uint8,
)
SHIRTS = np.array(
    [
        (200, 40, 40),
        (40, 60, 160),
        (230, 230, 230),
        (30, 30, 30),
        (60, 140, 70),
        (220, 180, 40),
        (120, 80, 160),
    ],
    dtype=np.uint8,
)


def color_for_token(token: str, name: str = "vehicle") -> np.ndarray:
    """A stable colour for an object track: the same token always gets the same paint (crc32 of the token)."""
    h = zlib.crc32(token.encode("utf-8"))
    if name == "vehicle":
        return CAR_PAINTS[h % len(CAR_PAINTS)].copy()
    if name in ("pedestrian", "bicycle"):
        return SHIRTS[h % len(SHIRTS)].copy()
    return np.array(CLASS_COLORS.get(name, CLASS_COLORS["generic_object"]), dtype=np.uint8)


@dataclass
class SceneObjects:
    """Object boxes in the **global** frame: ``boxes (N, 7)`` = x, y, z, length, width, height, yaw.

    z is the height of the box centre above the ground (a car standing on the road has z = height / 2), as in
    OpenScene's ``gt_boxes`` with the ego frame on the ground. ``names`` are NAVSIM box classes; ``colors``
    ``(N, 3)`` uint8 is optional (class defaults otherwise; :func:`color_for_token` gives stable track colours).
    """

    boxes: np.ndarray
    names: Sequence[str]
    colors: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float64).reshape(-1, 7)
        self.names = [str(n) for n in self.names]
        if len(self.names) != len(self.boxes):
            raise ValueError(f"{len(self.boxes)} boxes but {len(self.names)} names")
        bad = sorted(set(self.names) - set(BOX_NAMES))
        if bad:
            raise ValueError(f"unknown object class(es) {bad}; valid: {', '.join(BOX_NAMES)}")
        if self.colors is not None:
            self.colors = np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)
            if len(self.colors) != len(self.boxes):
                raise ValueError(f"{len(self.boxes)} boxes but {len(self.colors)} colours")
        if np.any(self.boxes[:, 3:6] <= 0):
            raise ValueError("object boxes need positive length, width and height")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> SceneObjects:
        return cls(np.zeros((0, 7)), [])


LIGHT_STATES = ("red", "yellow", "green", "off")


@dataclass
class TrafficLightHeads:
    """Signal heads in the global frame: centre ``positions (M, 3)`` [m], ``yaws (M,)`` = the direction the lamps
    face (towards approaching traffic) [rad], ``states`` from ``red``, ``yellow``, ``green``, ``off``.

    The head is a 0.4 m × 1.0 m housing on a pole down to the ground; lamps from top: red, yellow, green.
    """

    positions: np.ndarray
    yaws: np.ndarray
    states: Sequence[str]

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        self.yaws = np.asarray(self.yaws, dtype=np.float64).reshape(-1)
        self.states = [str(s).lower() for s in self.states]
        if not len(self.positions) == len(self.yaws) == len(self.states):
            raise ValueError(
                f"traffic lights: {len(self.positions)} positions, {len(self.yaws)} yaws, {len(self.states)} states"
            )
        bad = sorted(set(self.states) - set(LIGHT_STATES))
        if bad:
            raise ValueError(f"unknown traffic-light state(s) {bad}; valid: {', '.join(LIGHT_STATES)}")

    def __len__(self) -> int:
        return len(self.positions)

    @classmethod
    def empty(cls) -> TrafficLightHeads:
        return cls(np.zeros((0, 3)), np.zeros(0), [])


# Housing size and lamp layout (local frame of the head: x = facing direction, z up).
HEAD_DEPTH, HEAD_WIDTH, HEAD_HEIGHT = 0.3, 0.4, 1.0
LAMP_RADIUS = 0.12
LAMP_OFFSETS = {"red": 0.32, "yellow": 0.0, "green": -0.32}
LAMP_ON = {"red": (255, 45, 35), "yellow": (255, 185, 20), "green": (40, 255, 120)}
LAMP_OFF = {"red": (70, 22, 20), "yellow": (70, 55, 15), "green": (18, 55, 30)}


@dataclass
class Parts:
    """Boxes to draw / ray-cast: global centres ``(P, 3)``, half extents ``(P, 3)`` (along yaw, across, up),
    yaws ``(P,)``, albedo ``(P, 3)``, materials ``(P,)``, owning group ``(P,)``; groups are objects then lights.

    ``group_center (G, 3)`` is each group's box centre (painter's order), ``group_split (G,)`` the height where a
    group's lower and upper parts meet (the camera decides the drawing order of stacked parts from it), and
    ``shadow (G,)`` whether the group casts a contact shadow. Lamps: ``lamp_center (Q, 3)``, ``lamp_yaw (Q,)``,
    ``lamp_color (Q, 3)``, ``lamp_group (Q,)``.
    """

    center: np.ndarray
    half: np.ndarray
    yaw: np.ndarray
    albedo: np.ndarray
    material: np.ndarray
    group: np.ndarray
    group_center: np.ndarray
    group_half: np.ndarray
    group_yaw: np.ndarray
    group_split: np.ndarray
    shadow: np.ndarray
    lamp_center: np.ndarray
    lamp_yaw: np.ndarray
    lamp_color: np.ndarray
    lamp_group: np.ndarray

    def __len__(self) -> int:
        return len(self.center)

    @property
    def n_groups(self) -> int:
        return len(self.group_center)


def _part_layout(
    name: str, length: float, width: float, height: float
) -> list[tuple[tuple, tuple, str, int]]:
    """Parts of one object in its local frame: ((dx, dz), (l, w, h), colour role, material), in drawing order.

    The last two parts are stacked (the camera draws them upper-last when it is above their joint, lower-last
    otherwise); earlier parts are drawn first always (a vehicle's dark wheels/underbody, mostly hidden by the body).
    """
    if name == "vehicle":
        under = 0.32 * height if height <= 2.4 else 0.2 * height
        clear = 0.14 * height if height <= 2.4 else 0.1 * height  # ground clearance under the body
        wheels = (
            (0.0, -0.5 * height + 0.5 * under),
            (0.8 * length, 0.94 * width, under),
            "tyre",
            Material.RUBBER,
        )
        if length <= 6.5 and height <= 2.4:
            hb = 0.58 * height - clear
            hc = 0.42 * height
            return [
                wheels,
                ((0.0, -0.5 * height + clear + 0.5 * hb), (length, width, hb), "main", Material.PAINT),
                (
                    (-0.06 * length, 0.5 * height - 0.5 * hc),
                    (0.55 * length, 0.9 * width, hc),
                    "glass",
                    Material.GLASS,
                ),
            ]
        hb = height - clear
        return [wheels, ((0.0, 0.5 * clear), (length, width, hb), "main", Material.PAINT)]
    if name == "pedestrian":
        hl = 0.47 * height
        return [
            ((0.0, -0.5 * height + 0.5 * hl), (0.6 * length, 0.7 * width, hl), "dark", Material.CLOTH),
            ((0.0, 0.5 * height - 0.5 * (height - hl)), (length, width, height - hl), "main", Material.CLOTH),
        ]
    if name == "bicycle" and height > 1.2:
        hw = 0.5 * height
        return [
            ((0.0, -0.5 * height + 0.5 * hw), (length, 0.35 * width, hw), "dark", Material.METAL),
            (
                (-0.1 * length, 0.5 * height - 0.5 * (height - hw)),
                (0.4 * length, width, height - hw),
                "main",
                Material.CLOTH,
            ),
        ]
    material = {
        "traffic_cone": Material.RETROREFLECTIVE,
        "czone_sign": Material.RETROREFLECTIVE,
        "barrier": Material.CONCRETE,
        "vehicle": Material.PAINT,
        "bicycle": Material.METAL,
    }.get(name, Material.PLASTIC)
    return [((0.0, 0.0), (length, width, height), "main", material)]


def build_parts(
    objects: SceneObjects | None,
    lights: TrafficLightHeads | None,
    static_boxes: tuple[np.ndarray, np.ndarray] | None = None,
) -> Parts:
    """Decompose objects, traffic-light heads and static boxes (buildings: ``(K, 7)`` global boxes with colours
    ``(K, 3)``) into box parts (global frame) and lamp discs; groups: objects, then lights, then static boxes."""
    objects = objects if objects is not None else SceneObjects.empty()
    lights = lights if lights is not None else TrafficLightHeads.empty()
    center, half, yaw, albedo, material, group = [], [], [], [], [], []
    g_center, g_half, g_yaw, g_split, shadow = [], [], [], [], []
    l_center, l_yaw, l_color, l_group = [], [], [], []

    for i in range(len(objects)):
        x, y, z, length, width, height, heading = objects.boxes[i]
        name = objects.names[i]
        main = (
            objects.colors[i].astype(np.float64)
            if objects.colors is not None
            else np.array(CLASS_COLORS[name], dtype=np.float64)
        )
        roles = {
            "main": main,
            "glass": np.array([38.0, 46.0, 56.0]),
            "dark": np.array([38.0, 38.0, 46.0]),
            "tyre": np.array([26.0, 26.0, 28.0]),
        }
        c, s = np.cos(heading), np.sin(heading)
        layout = _part_layout(name, length, width, height)
        for (dx, dz), (pl, pw, ph), role, mat in layout:
            center.append((x + c * dx, y + s * dx, z + dz))
            half.append((0.5 * pl, 0.5 * pw, 0.5 * ph))
            yaw.append(heading)
            albedo.append(roles[role])
            material.append(int(mat))
            group.append(i)
        g_center.append((x, y, z))
        g_half.append((0.5 * length, 0.5 * width, 0.5 * height))
        g_yaw.append(heading)
        if len(layout) > 1:  # the joint of the last two parts: top of the second-to-last
            (_, dz), (_, _, ph), _, _ = layout[-2]
            g_split.append(z + dz + 0.5 * ph)
        else:
            g_split.append(z + 0.5 * height)
        shadow.append(True)

    n_obj = len(objects)
    for j in range(len(lights)):
        gx, gy, gz = lights.positions[j]
        heading = lights.yaws[j]
        gid = n_obj + j
        c, s = np.cos(heading), np.sin(heading)
        bottom = gz - 0.5 * HEAD_HEIGHT
        pole_h = max(bottom, 0.05)
        # Pole: from the ground to the bottom of the housing, behind its centre line.
        px, py = gx - c * 0.02, gy - s * 0.02
        center.append((px, py, 0.5 * pole_h))
        half.append((0.07, 0.07, 0.5 * pole_h))
        yaw.append(heading)
        albedo.append(np.array([95.0, 97.0, 100.0]))
        material.append(int(Material.METAL))
        group.append(gid)
        center.append((gx, gy, gz))
        half.append((0.5 * HEAD_DEPTH, 0.5 * HEAD_WIDTH, 0.5 * HEAD_HEIGHT))
        yaw.append(heading)
        albedo.append(np.array([40.0, 40.0, 34.0]))
        material.append(int(Material.PLASTIC))
        group.append(gid)
        g_center.append((gx, gy, 0.5 * (gz + 0.5 * HEAD_HEIGHT)))
        g_half.append((0.5 * HEAD_DEPTH, 0.5 * HEAD_WIDTH, 0.5 * (gz + 0.5 * HEAD_HEIGHT)))
        g_yaw.append(heading)
        g_split.append(bottom)
        shadow.append(False)
        state = lights.states[j]
        for lamp, dz in LAMP_OFFSETS.items():
            front = 0.5 * HEAD_DEPTH + 0.005
            l_center.append((gx + c * front, gy + s * front, gz + dz))
            l_yaw.append(heading)
            l_color.append(LAMP_ON[lamp] if state == lamp else LAMP_OFF[lamp])
            l_group.append(gid)

    if static_boxes is not None:
        sb, sc = static_boxes
        for k in range(len(sb)):
            x, y, z, length, width, height, heading = sb[k]
            gid = n_obj + len(lights) + k
            center.append((x, y, z))
            half.append((0.5 * length, 0.5 * width, 0.5 * height))
            yaw.append(heading)
            albedo.append(sc[k].astype(np.float64))
            material.append(int(Material.CONCRETE))
            group.append(gid)
            g_center.append((x, y, z))
            g_half.append((0.5 * length, 0.5 * width, 0.5 * height))
            g_yaw.append(heading)
            g_split.append(z + 0.5 * height)
            shadow.append(False)

    def arr(v, shape, dtype=np.float64):
        return np.asarray(v, dtype=dtype).reshape(shape)

    return Parts(
        center=arr(center, (-1, 3)),
        half=arr(half, (-1, 3)),
        yaw=arr(yaw, (-1,)),
        albedo=arr(albedo, (-1, 3)),
        material=arr(material, (-1,), np.int64),
        group=arr(group, (-1,), np.int64),
        group_center=arr(g_center, (-1, 3)),
        group_half=arr(g_half, (-1, 3)),
        group_yaw=arr(g_yaw, (-1,)),
        group_split=arr(g_split, (-1,)),
        shadow=arr(shadow, (-1,), bool),
        lamp_center=arr(l_center, (-1, 3)),
        lamp_yaw=arr(l_yaw, (-1,)),
        lamp_color=arr(l_color, (-1, 3)),
        lamp_group=arr(l_group, (-1,), np.int64),
    )


def boxes_near(
    static_boxes: tuple[np.ndarray, np.ndarray], xy: np.ndarray, radius: float
) -> tuple[np.ndarray, np.ndarray] | None:
    """The static boxes any part of which may lie within ``radius`` of ``xy`` (None if there are none)."""
    boxes, colors = static_boxes
    if not len(boxes):
        return None
    reach = radius + 0.5 * np.hypot(boxes[:, 3], boxes[:, 4])
    sel = np.hypot(boxes[:, 0] - xy[0], boxes[:, 1] - xy[1]) < reach
    return (boxes[sel], colors[sel]) if sel.any() else None


# Unit-box corners: bit 0 → +x, bit 1 → +y, bit 2 → +z.
UNIT_CORNERS = np.array(
    [[(i & 1) * 2 - 1, ((i >> 1) & 1) * 2 - 1, ((i >> 2) & 1) * 2 - 1] for i in range(8)], float
)
# Faces as corner indices around the face (consistent winding not needed for filling) and outward normals.
FACES = np.array(
    [
        [1, 3, 7, 5],  # +x (front)
        [0, 4, 6, 2],  # -x (rear)
        [2, 6, 7, 3],  # +y (left)
        [0, 1, 5, 4],  # -y (right)
        [4, 5, 7, 6],  # +z (top)
        [0, 2, 3, 1],  # -z (bottom)
    ]
)
FACE_NORMALS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]], float)


def part_corners(center: np.ndarray, half: np.ndarray, yaw: np.ndarray) -> np.ndarray:
    """Corners ``(P, 8, 3)`` of yawed boxes (order of :data:`UNIT_CORNERS`)."""
    local = UNIT_CORNERS[None] * half[:, None, :]
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    x = c * local[..., 0] - s * local[..., 1]
    y = s * local[..., 0] + c * local[..., 1]
    return np.stack([x, y, local[..., 2]], axis=-1) + center[:, None, :]


def face_normals(yaw: np.ndarray) -> np.ndarray:
    """Outward face normals ``(P, 6, 3)`` of yawed boxes (order of :data:`FACES`)."""
    c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
    n = FACE_NORMALS[None]
    return np.stack(
        [
            c * n[..., 0] - s * n[..., 1],
            s * n[..., 0] + c * n[..., 1],
            np.broadcast_to(n[..., 2], c.shape[:1] + (6,)),
        ],
        -1,
    )
