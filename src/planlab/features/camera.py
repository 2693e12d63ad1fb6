"""Front-camera image feature: stitched L0 | F0 | R0, TransFuser crops, aspect-preserving resize, one
normalisation.

Fact sheet §2.1: TransFuser crops 28 rows top and bottom of the 1920×1080 cameras and 416 columns on each
side of the side cameras, stitches them and resizes to 1024×256 (4:1). Here the crops are fractions, scaled to
the actual resolution (the calibration set's JPEGs are 48×27). The stitched image is resized with **one**
scale factor and centre-padded to the configured size (lesson C4: no squashing). The input must be uint8 in
0–255 and is normalised exactly once, ``(x/255 − mean)/std`` (lesson C3: an already-scaled float image is
refused rather than scaled again); the declared value range lets the contract check catch a double scaling.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from planlab.errors import ContractError
from planlab.features.base import FeatureBuilder, TensorSpec
from planlab.scene import AgentInput, SensorConfig

FRONT_CAMERA = "cam_f0"


class CameraFeatureBuilder(FeatureBuilder):
    """``camera`` (3, H, W) float32, normalised; cameras stitched left to right in the configured order."""

    def __init__(
        self,
        cameras: list[str] | tuple[str, ...] = ("cam_l0", "cam_f0", "cam_r0"),
        image_height: int = 128,
        image_width: int = 512,
        crop_rows_fraction: float = 28 / 1080,
        crop_side_fraction: float = 416 / 1920,
        mean: list[float] | tuple[float, ...] = (0.485, 0.456, 0.406),
        std: list[float] | tuple[float, ...] = (0.229, 0.224, 0.225),
        history_index: int = 3,
    ) -> None:
        self.cameras = list(cameras)
        self.image_height = int(image_height)
        self.image_width = int(image_width)
        self.crop_rows_fraction = float(crop_rows_fraction)
        self.crop_side_fraction = float(crop_side_fraction)
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]
        self.history_index = int(history_index)

    @classmethod
    def from_config(cls, cfg: Any, history_index: int = 3) -> CameraFeatureBuilder:
        return cls(
            cfg.cameras,
            cfg.image_height,
            cfg.image_width,
            cfg.crop_rows_fraction,
            cfg.crop_side_fraction,
            cfg.mean,
            cfg.std,
            history_index,
        )

    def get_unique_name(self) -> str:
        return "camera"

    def settings(self) -> dict[str, Any]:
        return {
            "cameras": self.cameras,
            "size": [self.image_height, self.image_width],
            "crops": [self.crop_rows_fraction, self.crop_side_fraction],
            "mean": self.mean,
            "std": self.std,
            "history_index": self.history_index,
        }

    def value_range(self) -> tuple[float, float]:
        lo = min((0.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        hi = max((1.0 - m) / s for m, s in zip(self.mean, self.std, strict=True))
        return (min(lo, 0.0), max(hi, 0.0))  # 0 = the padding

    def specs(self) -> dict[str, TensorSpec]:
        return {
            "camera": TensorSpec(
                (3, self.image_height, self.image_width),
                "float32",
                self.value_range(),
                "stitched front cameras, normalised",
            )
        }

    def sensor_config(self) -> SensorConfig:
        return SensorConfig(**{cam: [self.history_index] for cam in self.cameras})

    # ------------------------------------------------------------------ steps (public for tests and viz)
    def _image(self, agent_input: AgentInput, cam: str) -> np.ndarray:
        if self.history_index >= len(agent_input.cameras):
            raise ContractError(
                f"builder 'camera' reads history frame {self.history_index} but the input has "
                f"{len(agent_input.cameras)} (set agent.camera.history_index)"
            )
        camera = getattr(agent_input.cameras[self.history_index], cam)
        image = camera.image
        if image is None:
            raise ContractError(
                f"builder 'camera': {cam} of history frame {self.history_index} was not loaded"
            )
        image = np.asarray(image)
        if image.dtype != np.uint8:
            raise ContractError(
                f"builder 'camera': {cam} image has dtype {image.dtype}, expected uint8 in 0-255 "
                "(images are normalised once, here; a pre-scaled image would be scaled twice)"
            )
        if image.ndim != 3 or image.shape[2] != 3:
            raise ContractError(f"builder 'camera': {cam} image has shape {image.shape}, expected (H, W, 3)")
        return image

    def stitch(self, agent_input: AgentInput) -> np.ndarray:
        """Cropped cameras side by side, uint8 (h, w, 3)."""
        parts = []
        for cam in self.cameras:
            img = self._image(agent_input, cam)
            h, w = img.shape[:2]
            r = int(round(self.crop_rows_fraction * h))
            c = int(round(self.crop_side_fraction * w)) if cam != FRONT_CAMERA else 0
            parts.append(img[r : h - r, c : w - c])
        heights = {p.shape[0] for p in parts}
        if len(heights) != 1:
            raise ContractError(
                f"builder 'camera': cropped camera heights differ {sorted(heights)}; cannot stitch"
            )
        return np.concatenate(parts, axis=1)

    def resize_pad(self, image: torch.Tensor) -> torch.Tensor:
        """``(3, h, w)`` float → ``(3, H, W)``: one scale factor, centred, zero padding (= the mean colour)."""
        _, h, w = image.shape
        scale = min(self.image_height / h, self.image_width / w)
        nh = min(self.image_height, max(1, int(round(h * scale))))
        nw = min(self.image_width, max(1, int(round(w * scale))))
        resized = F.interpolate(
            image[None], size=(nh, nw), mode="bilinear", align_corners=False, antialias=scale < 1
        )[0]
        out = torch.zeros(3, self.image_height, self.image_width, dtype=image.dtype)
        top, left = (self.image_height - nh) // 2, (self.image_width - nw) // 2
        out[:, top : top + nh, left : left + nw] = resized
        return out

    def compute_features(self, agent_input: AgentInput) -> dict[str, torch.Tensor]:
        stitched = self.stitch(agent_input)
        x = torch.from_numpy(np.ascontiguousarray(stitched)).permute(2, 0, 1).float() / 255.0
        mean = torch.tensor(self.mean).view(3, 1, 1)
        std = torch.tensor(self.std).view(3, 1, 1)
        x = (x - mean) / std  # normalised once; the padding added next is 0 = the mean colour
        return {"camera": self.resize_pad(x).contiguous()}
