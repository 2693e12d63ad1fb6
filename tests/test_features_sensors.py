"""Camera feature (value range once — lesson C3; aspect ratio kept — lesson C4; crops scaled) and LiDAR BEV."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planlab.errors import ContractError
from planlab.features.base import check_contract, compute_features
from planlab.features.camera import CameraFeatureBuilder
from planlab.features.lidar import LidarBEVFeatureBuilder
from planlab.scene import AgentInput, Camera, Cameras, EgoStatus, Lidar

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def agent_input(images: dict[str, np.ndarray] | None = None, points: np.ndarray | None = None) -> AgentInput:
    cams = Cameras(**{k: Camera(image=v) for k, v in (images or {}).items()})
    status = EgoStatus(np.zeros(3), [5.0, 0.0], [0.0, 0.0], [0, 1, 0, 0])
    return AgentInput([status] * 4, [Cameras()] * 3 + [cams], [Lidar()] * 3 + [Lidar(points)])


def test_uint8_is_normalised_exactly_once():
    white = np.full((54, 96, 3), 255, np.uint8)
    b = CameraFeatureBuilder(["cam_f0"], image_height=54, image_width=96, crop_rows_fraction=0)
    out = check_contract(b, b.compute_features(agent_input({"cam_f0": white})))["camera"]
    expect = torch.tensor([(1 - m) / s for m, s in zip(MEAN, STD, strict=True)])
    assert torch.allclose(out[:, 10, 10], expect, atol=1e-6)
    black = np.zeros_like(white)
    out = b.compute_features(agent_input({"cam_f0": black}))["camera"]
    assert torch.allclose(
        out[:, 5, 5], torch.tensor([-m / s for m, s in zip(MEAN, STD, strict=True)]), atol=1e-6
    )


def test_float_image_is_refused_not_scaled_again():
    b = CameraFeatureBuilder(["cam_f0"], image_height=32, image_width=64)
    already_scaled = np.random.default_rng(0).random((27, 48, 3)).astype(np.float32)
    with pytest.raises(ContractError, match="dtype float32, expected uint8 in 0-255"):
        b.compute_features(agent_input({"cam_f0": already_scaled}))


class DoubleScaling(CameraFeatureBuilder):
    """Lesson C3's bug: the 0–255 image multiplied by 255 a second time."""

    def compute_features(self, agent_input):
        out = super().compute_features(agent_input)
        return {"camera": out["camera"] * 255.0}


def test_double_scaling_violates_the_declared_range():
    img = np.random.default_rng(1).integers(0, 256, (27, 48, 3), dtype=np.uint8)
    b = DoubleScaling(["cam_f0"], image_height=32, image_width=64)
    with pytest.raises(ContractError, match=r"builder 'camera' key 'camera' has values in .* declared range"):
        compute_features([b], agent_input({"cam_f0": img}))


def test_aspect_ratio_is_kept_and_padded():
    # a 1920x1080-like (16:9) front image with a white square in the middle, into a 4:1 target
    img = np.zeros((90, 160, 3), np.uint8)
    img[30:60, 65:95] = 255
    b = CameraFeatureBuilder(["cam_f0"], image_height=64, image_width=256, crop_rows_fraction=0)
    out = b.compute_features(agent_input({"cam_f0": img}))["camera"][0]
    white = (1 - MEAN[0]) / STD[0]
    rows = torch.where((out > white - 0.5).any(dim=1))[0]
    cols = torch.where((out > white - 0.5).any(dim=0))[0]
    h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
    assert abs(int(h) - int(w)) <= 1  # the square is still square (squashing would make it 2.25x wider)
    # one scale factor: 90 rows -> 64, so 160 cols -> 114 wide, centred in 256 with zero (= mean) padding
    assert float(out[:, :60].abs().max()) == 0.0 and float(out[:, -60:].abs().max()) == 0.0


def test_stitch_crops_scale_with_resolution(calib_root):
    from planlab.data.loader import SceneLoader
    from planlab.scene import SceneFilter

    b = CameraFeatureBuilder(image_height=32, image_width=128)
    loader = SceneLoader(calib_root, "calib", SceneFilter(frame_interval=1), b.sensor_config())
    ai = loader.get_agent_input_from_token(loader.tokens[0])
    stitched = b.stitch(ai)
    # 48x27 JPEGs: 28/1080*27 -> 1 row off top and bottom, 416/1920*48 -> 10 columns off each side camera
    assert stitched.shape == (25, 28 + 48 + 28, 3) and stitched.dtype == np.uint8
    out = check_contract(b, b.compute_features(ai))
    assert out["camera"].shape == (3, 32, 128)


def test_lidar_bev_histogram():
    # 7 points above ground 10 m ahead, 1.5 m left; 3 ground points at the same spot; one far away
    pts = np.zeros((6, 11), np.float32)
    pts[0, :10], pts[1, :10] = 10.0, 1.5
    pts[2, :7], pts[2, 7:10] = 1.0, 0.0
    pts[0, 10], pts[1, 10], pts[2, 10] = 80.0, 0.0, 1.0
    b = LidarBEVFeatureBuilder(range_m=32, pixels_per_meter=1, use_ground=True)
    out = check_contract(b, b.compute_features(agent_input(points=pts)))["lidar_bev"]
    assert out.shape == (2, 64, 64)
    row, col = 32 - 10, 30  # row 0 = +32 m ahead, column 0 = +32 m left: floor(32 - 10), floor(32 - 1.5)
    assert out[1, row, col] == pytest.approx(1.0)  # 7 points clipped at 5 -> 1
    assert out[0, row, col] == pytest.approx(3 / 5)
    assert float(out.sum()) == pytest.approx(1.0 + 0.6)  # the point 80 m ahead is outside
    with pytest.raises(ContractError, match="was not loaded"):
        b.compute_features(agent_input())
