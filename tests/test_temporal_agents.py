"""The temporal-fusion agent and the TransFuser-style baseline end to end on the tiny world: config errors name
the key, the single-frame ablation has the same parameters and loads one LiDAR frame, planning equals the
batched forward, training logs perception metrics every validation epoch, ``planlab eval perception`` scores a
checkpoint, and a run resumed from its checkpoint continues."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.utils.data import default_collate
from typer.testing import CliRunner

from planlab.agents.registry import build_agent
from planlab.data.loader import SceneLoader
from planlab.errors import ConfigError
from planlab.features.base import compute_features, compute_targets
from planlab.scene import SceneFilter, SensorConfig
from planlab.training.config import build_train_config

TINY_GRU = {
    "agent.lidar.range_m": 32.0,
    "agent.lidar.pixels_per_meter": 0.5,  # 32 x 32 input, 8 x 8 fused map of 8 m cells
    "agent.encoder_channels": [8, 8],
    "agent.feature_dim": 8,
    "agent.temporal_hidden_dim": 8,
    "agent.d_model": 16,
    "agent.num_heads": 2,
    "agent.num_layers": 1,
    "agent.ffn_dim": 32,
    "agent.semantic_pixel_size": 4.0,
    "agent.forecast_modes": 2,
}
TINY_TF = {
    "agent.camera.image_height": 32,
    "agent.camera.image_width": 128,
    "agent.channels": [8, 8, 16, 16],
    "agent.fusion_heads": 2,
    "agent.top_down_dim": 8,
    "agent.d_model": 16,
    "agent.num_heads": 2,
    "agent.num_layers": 1,
    "agent.ffn_dim": 32,
    "agent.semantic_pixel_size": 2.0,
}


def tiny_agent(name: str, **extra):
    tiny = TINY_GRU if name == "convgru_bev" else TINY_TF
    cfg = build_train_config(name, overrides={**tiny, **extra})
    return build_agent(name, config=cfg.agent_settings())


@pytest.mark.parametrize(
    ("name", "override", "message"),
    [
        ("convgru_bev", {"agent.slice_indices": [0, 0, 3]}, "agent.slice_indices .* strictly increasing"),
        ("convgru_bev", {"agent.lidar.pixels_per_meter": 0.75}, "agent.lidar: the BEV size 48"),
        ("convgru_bev", {"agent.heads": ["detection", "lanes"]}, "agent.heads"),
        (
            "convgru_bev",
            {"agent.loss_weights": {"forecast": -1.0}},
            "agent.loss_weights.forecast must be >= 0",
        ),
        ("convgru_bev", {"agent.semantic_loss": "focal"}, "agent.semantic_loss"),
        ("transfuser_lite", {"agent.lidar.pixels_per_meter": 4.0}, "must be 128"),
        ("transfuser_lite", {"agent.channels": [8, 8, 8]}, "4 positive stage widths"),
    ],
)
def test_bad_settings_name_the_key(name, override, message):
    with pytest.raises(ConfigError, match=message):
        build_train_config(name, overrides=override)


def test_a_head_without_a_loss_weight_is_refused():
    from planlab.agents.temporal_config import ConvGRUBEVConfig

    with pytest.raises(ConfigError, match="agent.loss_weights has no weight for agent_class, agent_box"):
        ConvGRUBEVConfig(loss_weights={"trajectory": 1.0}).validate()


def test_single_frame_ablation_has_the_same_parameters_and_one_frame():
    full, single = tiny_agent("convgru_bev"), tiny_agent("convgru_bev", **{"agent.use_convgru": False})
    shapes = {k: tuple(v.shape) for k, v in full.state_dict().items()}
    assert shapes == {k: tuple(v.shape) for k, v in single.state_dict().items()}
    assert full.get_sensor_config().lidar_pc == [0, 1, 2, 3]
    assert single.get_sensor_config().lidar_pc == [3]
    assert single.get_feature_builders()[0].specs()["lidar_bev_seq"].shape[0] == 1
    # the same weights, history or not: a checkpoint of one loads into the other
    single.load_state_dict(full.state_dict())
    sliced = tiny_agent("convgru_bev", **{"agent.slice_indices": [1, 3]})
    assert sliced.get_sensor_config().lidar_pc == [1, 3]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["convgru_bev", "transfuser_lite"])
def test_plan_equals_batched_forward_and_losses_are_finite(name, tiny_dataset):
    torch.manual_seed(0)
    agent = tiny_agent(name)
    sensors = agent.get_sensor_config()
    loader = SceneLoader(tiny_dataset, "val", SceneFilter(frame_interval=1), sensors)
    tokens = loader.tokens[:3]
    samples = [
        (
            compute_features(agent.get_feature_builders(), loader.get_agent_input_from_token(t)),
            compute_targets(
                agent.get_target_builders(), loader.get_scene_from_token(t, SensorConfig.build_no_sensors())
            ),
        )
        for t in tokens
    ]
    feats, targs = default_collate(samples)
    agent.eval()
    with torch.no_grad():
        batched = agent(feats)["trajectory"]
    for i, t in enumerate(tokens):
        traj = agent.compute_trajectory(loader.get_agent_input_from_token(t))
        assert torch.allclose(torch.from_numpy(traj.poses).float(), batched[i], atol=1e-4)
    agent.train()
    losses = agent.compute_loss(feats, targs, agent(feats))
    expected = {"loss", "trajectory", "agent_class", "agent_box", "bev_semantic"}
    if name == "convgru_bev":
        expected |= {"occupancy", "forecast"}
    assert set(losses) == expected
    assert all(math.isfinite(float(v.detach())) for v in losses.values())
    losses["loss"].backward()
    assert all(p.grad is not None for n, p in agent.named_parameters() if p.requires_grad), [
        n for n, p in agent.named_parameters() if p.grad is None
    ]


@pytest.fixture(scope="module")
def trained(tiny_dataset, tmp_path_factory):
    """convgru_bev trained 2 epochs on the tiny world with validation (uncertainty weighting on)."""
    from planlab.training.train import run_training

    run = tmp_path_factory.mktemp("temporal_run") / "run"
    over = {
        **TINY_GRU,
        "agent.uncertainty_weighting": True,
        "data.root": str(tiny_dataset),
        "data.val_split": "test",  # the tiny world's test log has vehicles around the ego (detection metrics)
        "data.num_workers": 0,
        "trainer.batch_size": 4,
        "trainer.max_epochs": 2,
        "trainer.progress_bar": False,
        "optim.lr": 1e-3,
        "logging.tensorboard": False,
    }
    cfg = build_train_config("convgru_bev", overrides=over)
    result = run_training(cfg, run)
    return {"run": run, "result": result, "cfg": cfg, "over": over}


@pytest.mark.slow
def test_training_logs_perception_metrics_every_validation_epoch(trained):
    from planlab.diagnostics.logs import read_metrics_csv

    series = read_metrics_csv(trained["run"] / "metrics.csv")
    for key in (
        "val/perception/detection/map",
        "val/perception/semantic/miou",
        "val/perception/occupancy/recall",
        "val/perception/forecast/min_ade",
        "val/perception/forecast/miss_rate",
    ):
        points = series.get(key, [])
        assert len(points) == 2, (key, sorted(series))  # one per validation epoch
        assert all(math.isfinite(p.value) for p in points)
    assert "train/log_var/forecast_epoch" in series  # uncertainty weighting is logged
    assert "val/forecast" in series and "val/ade" in series


@pytest.mark.slow
def test_eval_perception_cli_scores_the_checkpoint(trained, tiny_dataset, tmp_path):
    from planlab.cli.main import app

    out = tmp_path / "perc"
    args = ["eval", "perception", "--checkpoint", str(trained["run"]), "--data", str(tiny_dataset)]
    cli_cache = tmp_path / "cli_fc"
    res = CliRunner().invoke(
        app,
        [*args, "--split", "test", "--out", str(out), "--no-progress", "--json", "--cache", str(cli_cache)],
    )
    assert res.exit_code == 0, res.output
    # --cache reaches the evaluation: 7 scenes x (2 feature + 4 target builders) entries written
    assert len(list(cli_cache.rglob("*.safetensors"))) == 7 * 6
    saved = json.loads((out / "perception.json").read_text())
    assert saved["agent"] == "convgru_bev" and saved["num_scenes"] == 7 and saved["split"] == "test"
    m = saved["metrics"]
    for key in (
        "detection/map",
        "detection/ap@2m",
        "semantic/miou",
        "semantic/iou/road",
        "occupancy/precision",
        "occupancy/free_recall",
        "forecast/min_fde",
        "forecast/miss_rate",
    ):
        assert key in m
    assert 0.0 <= m["semantic/miou"] <= 1.0 and m["forecast/min_ade"] >= 0.0
    # the same numbers as the library call over the same scenes
    from planlab.models.temporal.perception_eval import evaluate_perception
    from planlab.training.checkpoint import load_agent_from_checkpoint

    agent = load_agent_from_checkpoint(str(trained["run"]))
    loader = SceneLoader(tiny_dataset, "test", SceneFilter(frame_interval=1), agent.get_sensor_config())
    again = evaluate_perception(agent, loader, tmp_path / "again", batch_size=3, progress=False)
    assert again["metrics"] == pytest.approx(m, nan_ok=True)
    # through a feature cache: filled on the first pass, read (contract-checked) on the second, same numbers
    for _ in range(2):
        cached = evaluate_perception(agent, loader, tmp_path / "c", progress=False, cache=tmp_path / "fc")
        assert cached["metrics"] == pytest.approx(m, nan_ok=True)
    assert (
        len(list((tmp_path / "fc").rglob("*.safetensors"))) == 7 * 6
    )  # 7 scenes x (2 feature + 4 target builders)
    # a missing split is one line, no traceback
    bad = CliRunner().invoke(app, [*args, "--split", "nope", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "Traceback" not in bad.output


def test_agent_without_perception_heads_is_refused(tiny_dataset, tmp_path):
    from planlab.models.temporal.perception_eval import evaluate_perception

    agent = build_agent("ego_status_mlp")
    loader = SceneLoader(tiny_dataset, "test", SceneFilter(frame_interval=1))
    with pytest.raises(ConfigError, match="'ego_status_mlp' has no perception heads"):
        evaluate_perception(agent, loader, tmp_path)
    assert not (tmp_path / "perception.json").exists()


@pytest.mark.slow
def test_transfuser_lite_trains_and_logs_detection_and_semantics(tiny_dataset, tmp_path):
    from planlab.diagnostics.logs import read_metrics_csv
    from planlab.training.train import run_training

    over = {
        **TINY_TF,
        "data.root": str(tiny_dataset),
        "data.val_split": "test",  # the tiny world's test log has vehicles around the ego (detection metrics)
        "data.num_workers": 0,
        "trainer.batch_size": 4,
        "trainer.max_epochs": 1,
        "trainer.progress_bar": False,
        "optim.lr": 1e-3,
        "logging.tensorboard": False,
    }
    run_training(build_train_config("transfuser_lite", overrides=over), tmp_path / "run")
    series = read_metrics_csv(tmp_path / "run" / "metrics.csv")
    for key in (
        "val/perception/detection/map",
        "val/perception/semantic/miou",
        "val/perception/occupancy/recall",
    ):
        assert key in series, sorted(series)
    assert "val/perception/forecast/min_ade" not in series  # no forecasting head: nothing logged
    assert {"train/agent_class_epoch", "train/agent_box_epoch", "train/bev_semantic_epoch"} <= set(series)
