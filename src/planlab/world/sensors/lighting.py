"""Time-of-day lighting: sun direction, brightness and tint, sky and haze colours, distance fog.

All colours are sRGB 0…255 floats; the renderer bakes them into palettes once per log. The model is deliberately
simple (Lambert shading under one directional sun plus ambient light, exponential fog towards a haze colour):
enough to vary appearance between logs as a difficulty knob, cheap enough to stay out of the frame budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def _lerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    return (1.0 - t) * np.asarray(a, dtype=np.float64) + t * np.asarray(b, dtype=np.float64)


@dataclass(frozen=True)
class Lighting:
    """Scene lighting. ``hour`` is local solar time [0, 24); the sun rises at 6 h and sets at 18 h.

    ``sun_azimuth_deg`` is the compass direction *towards* the sun at noon in the map frame (counter-clockwise
    from +x); it swings 90° either side over the day. ``brightness`` multiplies everything (None: from the
    hour), ``tint`` multiplies the light colour per channel, ``visibility_m`` is the distance at which fog
    reaches 63 %.
    """

    hour: float = 13.0
    sun_azimuth_deg: float = 200.0
    brightness: float | None = None
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)
    visibility_m: float = 700.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.hour < 24.0:
            raise ValueError(f"hour must be in [0, 24), got {self.hour}")
        if self.visibility_m <= 0:
            raise ValueError(f"visibility_m must be positive, got {self.visibility_m}")
        if self.brightness is not None and self.brightness <= 0:
            raise ValueError(f"brightness must be positive, got {self.brightness}")

    # -- sun ---------------------------------------------------------------------------------------------------
    @property
    def sun_elevation(self) -> float:
        """Sun elevation [rad]; negative at night."""
        return math.radians(65.0) * math.sin(math.pi * (self.hour - 6.0) / 12.0)

    @property
    def sun_direction(self) -> np.ndarray:
        """Unit vector towards the sun in the map frame (z up); below the horizon at night."""
        az = math.radians(self.sun_azimuth_deg) + math.pi / 2 * (self.hour - 12.0) / 6.0
        el = self.sun_elevation
        return np.array([math.cos(el) * math.cos(az), math.cos(el) * math.sin(az), math.sin(el)])

    @property
    def daylight(self) -> float:
        """0 at night … 1 in full day, smooth through dawn and dusk."""
        el = math.degrees(self.sun_elevation)
        return float(np.clip((el + 6.0) / 21.0, 0.0, 1.0))

    @property
    def gain(self) -> float:
        """Overall brightness multiplier."""
        if self.brightness is not None:
            return float(self.brightness)
        return 0.22 + 0.83 * self.daylight

    @property
    def light_color(self) -> np.ndarray:
        """Colour of the light (multiplier per channel): warm when the sun is low, blue at night."""
        el = math.degrees(self.sun_elevation)
        warm = float(np.clip(1.0 - (el - 2.0) / 25.0, 0.0, 1.0)) * self.daylight  # golden hour
        night = 1.0 - self.daylight
        col = _lerp([1.0, 1.0, 1.0], [1.12, 0.92, 0.72], warm)
        col = _lerp(col, [0.7, 0.8, 1.1], night)
        return col * np.asarray(self.tint, dtype=np.float64)

    @property
    def ambient(self) -> float:
        return 0.45 + 0.1 * (1.0 - self.daylight)

    @property
    def diffuse(self) -> float:
        return 0.55 * self.daylight

    def shade(self, albedo: np.ndarray, normal: np.ndarray) -> np.ndarray:
        """Lambert-shaded colour of surfaces with ``albedo (..., 3)`` and unit ``normal (..., 3)`` (map frame)."""
        lam = np.clip(np.asarray(normal) @ self.sun_direction, 0.0, None) if self.daylight > 0 else 0.0
        k = (self.ambient + self.diffuse * lam) * self.gain
        return np.asarray(albedo, dtype=np.float64) * np.asarray(k)[..., None] * self.light_color

    # -- sky and fog -------------------------------------------------------------------------------------------
    @property
    def haze_color(self) -> np.ndarray:
        day = np.array([196.0, 208.0, 222.0])
        dusk = np.array([222.0, 170.0, 128.0])
        night = np.array([28.0, 32.0, 44.0])
        el = math.degrees(self.sun_elevation)
        warm = float(np.clip(1.0 - (el - 2.0) / 20.0, 0.0, 1.0)) * self.daylight
        col = _lerp(_lerp(night, day, self.daylight), dusk, warm)
        return np.clip(col * np.asarray(self.tint), 0, 255)

    @property
    def zenith_color(self) -> np.ndarray:
        day = np.array([62.0, 118.0, 196.0])
        night = np.array([6.0, 8.0, 18.0])
        return np.clip(_lerp(night, day, self.daylight) * np.asarray(self.tint), 0, 255)

    def sky(self, elevation: np.ndarray) -> np.ndarray:
        """Sky colour ``(..., 3)`` at view elevations [rad] ≥ 0: haze at the horizon to zenith blue."""
        t = np.clip(np.asarray(elevation, dtype=np.float64) / (math.pi / 2), 0.0, 1.0) ** 0.45
        return (1.0 - t)[..., None] * self.haze_color + t[..., None] * self.zenith_color

    def fog(self, distance: np.ndarray, max_distance: float | None = None) -> np.ndarray:
        """Fog fraction in [0, 1] at ``distance`` [m]; reaches 1 at ``max_distance`` (where drawing stops)."""
        d = np.asarray(distance, dtype=np.float64)
        f = 1.0 - np.exp(-np.clip(d, 0.0, None) / self.visibility_m)
        if max_distance is not None:
            ramp = np.clip((d - 0.6 * max_distance) / (0.4 * max_distance), 0.0, 1.0) ** 2
            f = f + (1.0 - f) * ramp
        return np.clip(f, 0.0, 1.0)

    @classmethod
    def preset(cls, name: str) -> Lighting:
        """Named presets: ``noon``, ``afternoon``, ``morning``, ``dusk``, ``overcast``, ``night``."""
        presets = {
            "noon": cls(hour=12.5),
            "afternoon": cls(hour=15.5),
            "morning": cls(hour=8.0),
            "dusk": cls(hour=17.6),
            "overcast": cls(hour=13.0, brightness=0.8, tint=(0.95, 0.97, 1.0), visibility_m=350.0),
            "night": cls(hour=22.0),
        }
        try:
            return presets[name]
        except KeyError:
            raise ValueError(f"unknown lighting preset {name!r}; valid: {', '.join(presets)}") from None
