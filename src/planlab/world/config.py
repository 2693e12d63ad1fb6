"""World generation settings: a typed schema, the shipped presets, and ``key=value`` overrides.

Presets live in ``planlab/configs/world/<name>.yaml`` (each starts with the command that uses it). Every
knob a researcher may turn is here: how many logs and frames, the split fractions, which towns and
scenarios, traffic density, pedestrians, parked cars, lighting, camera resolution and sensor noise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from planlab.config import build_config, check_choice
from planlab.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parents[1] / "configs" / "world"
LIGHTING_MODES = ("day", "mixed", "any")


DEFAULT_LOCATIONS: dict[str, float] = {
    "us-nv-las-vegas-strip": 0.3,
    "us-ma-boston": 0.25,
    "us-pa-pittsburgh-hazelwood": 0.2,
    "sg-one-north": 0.25,
}
DEFAULT_SCENARIOS: dict[str, float] = {
    "cruise": 0.16,
    "follow": 0.12,
    "turn": 0.14,
    "red_light": 0.1,
    "nudge": 0.08,
    "construction": 0.06,
    "cut_in": 0.08,
    "merge": 0.08,
    "carpark_exit": 0.06,
    "stop_sign": 0.12,
}
DEFAULT_SPLITS: dict[str, float] = {"train": 0.7, "val": 0.15, "test": 0.15}


@dataclass
class SensorSettings:
    """Cameras (8, NAVSIM rig) and merged LiDAR. 1920×1080 is the real size; the default is 480×270."""

    enabled: bool = True
    width: int = 480
    height: int = 270
    jpeg_quality: int = 90
    lidar: bool = True
    camera_noise: float = 2.0  # σ of pixel noise [8-bit units]
    lidar_range_noise: float = 0.02  # m
    lidar_dropout: float = 0.05


@dataclass
class Difficulty:
    """Knobs that make logs busier or harder to perceive."""

    traffic_density: float = 0.6  # vehicles per 100 m of lane near the ego
    pedestrian_rate: float = 0.5  # pedestrians per 100 m of sidewalk near the ego
    parked_fill: float = 0.5  # fraction of parking spots taken
    lighting: str = "day"  # day | mixed (dawn to dusk) | any (night included)
    visibility_m: float = 700.0  # fog distance (smaller = hazier)


@dataclass
class WorldConfig:
    """One dataset: ``logs`` logs of ``frames`` 2 Hz frames each, split by log.

    ``splits``, ``locations`` and ``scenarios`` are weight tables; an empty table means the default one
    (``DEFAULT_*``), a given table is used exactly as given (it replaces the default, it does not add to it).
    """

    name: str = "custom"
    logs: int = 8
    frames: int = 40  # logged 2 Hz frames per log (≥ 14 for one NAVSIM scene)
    warmup_s: float = 3.0  # simulated before the first logged frame
    annotation_radius: float = 100.0  # m around the ego
    splits: dict[str, float] = field(default_factory=dict)
    locations: dict[str, float] = field(default_factory=dict)
    scenarios: dict[str, float] = field(default_factory=dict)
    sensors: SensorSettings = field(default_factory=SensorSettings)
    difficulty: Difficulty = field(default_factory=Difficulty)

    def validate(self) -> None:
        from planlab.maps.layers import MAP_LOCATIONS
        from planlab.world.scenarios import SCENARIOS

        self.splits = dict(self.splits) or dict(DEFAULT_SPLITS)
        self.locations = dict(self.locations) or dict(DEFAULT_LOCATIONS)
        self.scenarios = dict(self.scenarios) or dict(DEFAULT_SCENARIOS)
        if self.logs < 1:
            raise ConfigError(f"logs must be ≥ 1, got {self.logs}")
        if self.frames < 14:
            raise ConfigError(f"frames must be ≥ 14 (4 history + 10 future for one scene), got {self.frames}")
        if self.warmup_s < 0:
            raise ConfigError(f"warmup_s must be ≥ 0, got {self.warmup_s}")
        for key, table, valid in (
            ("locations", self.locations, MAP_LOCATIONS),
            ("scenarios", self.scenarios, SCENARIOS),
        ):
            if not table or sum(table.values()) <= 0:
                raise ConfigError(f"{key}: give at least one positive weight")
            for k, w in table.items():
                check_choice(f"{key}.{k}", k, valid)
                if w < 0:
                    raise ConfigError(f"{key}.{k}={w} must be ≥ 0")
        if (
            not self.splits
            or any(v < 0 for v in self.splits.values())
            or abs(sum(self.splits.values()) - 1) > 1e-6
        ):
            raise ConfigError(f"splits must be non-negative fractions summing to 1, got {dict(self.splits)}")
        for k in self.splits:
            if not k or not all(c.isalnum() or c in "_-" for c in k):
                raise ConfigError(f"split name {k!r} must be alphanumeric (with _ or -)")
        check_choice("difficulty.lighting", self.difficulty.lighting, LIGHTING_MODES)
        s = self.sensors
        if not (16 <= s.width <= 3840 and 9 <= s.height <= 2160):
            raise ConfigError(f"sensors.width/height {s.width}x{s.height} out of range (16..3840 x 9..2160)")
        if not 1 <= s.jpeg_quality <= 100:
            raise ConfigError(f"sensors.jpeg_quality must be in 1..100, got {s.jpeg_quality}")
        d = self.difficulty
        for k in ("traffic_density", "pedestrian_rate", "parked_fill"):
            if getattr(d, k) < 0:
                raise ConfigError(f"difficulty.{k} must be ≥ 0")
        if d.parked_fill > 1:
            raise ConfigError("difficulty.parked_fill must be ≤ 1")


def preset_names() -> list[str]:
    """Names of the shipped presets."""
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def preset_path(name: str) -> Path:
    names = preset_names()
    if name not in names:
        raise ConfigError(f"unknown world preset {name!r}; choose one of: {', '.join(names)}")
    return PRESETS_DIR / f"{name}.yaml"


WEIGHT_TABLES = ("splits", "locations", "scenarios")


def load_world_config(
    preset: str | Path | None = "mini", overrides: list[str] | dict | None = None
) -> WorldConfig:
    """A preset (name or YAML path) merged with ``key=value`` overrides, validated.

    A weight table given whole (``scenarios={merge: 1}``) replaces the preset's table; a single entry
    (``scenarios.merge=0.5``) changes or adds that entry.
    """
    from planlab.config import parse_overrides

    source = None
    if preset is not None:
        p = Path(preset)
        source = p if p.suffix in (".yaml", ".yml") else preset_path(str(preset))
    flat = dict(overrides) if isinstance(overrides, dict) else parse_overrides(overrides or [])
    tables = {k: flat.pop(k) for k in WEIGHT_TABLES if isinstance(flat.get(k), dict)}
    cfg = build_config(WorldConfig, source, overrides=flat)
    for key, table in tables.items():
        try:
            setattr(cfg, key, {str(k): float(v) for k, v in table.items()})
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: weights must be numbers, got {table}") from None
    cfg.validate()
    return cfg
