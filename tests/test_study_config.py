"""The study config: packaged configs validate, bad input names the key, the run-length schedule, ids."""

from __future__ import annotations

import pytest

from planlab.errors import ConfigError
from planlab.study.config import ArmConfig, build_study_config, packaged_configs
from planlab.study.runner import exp_id, schedule_overrides

ARMS = {"arms": [{"name": "a", "template": "ego_mlp"}, {"name": "b", "template": "label_efficiency", "encoder": "ssl",
                                                         "embeddings": True}]}  # fmt: skip


def test_packaged_study_configs_validate():
    names = [p.stem for p in packaged_configs()]
    assert "label_efficiency_small" in names
    for path in packaged_configs():
        assert path.read_text().startswith("# planlab study label-efficiency"), path
        cfg = build_study_config([path])
        assert (
            len(cfg.arms) >= 6 and cfg.fractions == [0.01, 0.05, 0.1, 0.25, 0.5, 1.0] and len(cfg.seeds) >= 3
        )
        kinds = {(a.encoder, a.embeddings, a.finetune_at is not None) for a in cfg.arms}
        # frozen SSL, frozen random, images (scratch / fine-tuning), no vision
        assert {
            ("ssl", True, False),
            ("random", True, False),
            ("none", False, False),
            ("ssl", False, True),
        } <= kinds
    assert build_study_config(["label_efficiency_small"]).name == "le-small"  # a packaged name works too


@pytest.mark.parametrize(
    "over, match",
    [
        ({"fractions": [0.5, 0.1]}, "increasing"),
        ({"fractions": [0.0, 1.0]}, r"\(0, 1\]"),
        ({"seeds": [1, 1]}, "distinct"),
        ({"name": "bad name"}, "invalid name"),
        ({"results": {"compare": [["a", "zzz"]]}}, "unknown arm 'zzz'"),
        ({"train": {"trainer.seed": 3}}, "trainer.seed is set by the study"),
        ({"train": {"trainer": {"max_epochs": 3}}}, "trainer.max_epochs is set by the study"),
        ({"eval": {"mode": "fast"}}, "eval.mode"),
        ({"data": {"val_split": None}}, "eval.checkpoint=best needs data.val_split"),
        ({"schedul": {}}, "unknown config key 'schedul'"),
    ],
)
def test_bad_study_configs(over, match):
    with pytest.raises(ConfigError, match=match):
        build_study_config([], {**ARMS, **over})


def test_bad_arms():
    with pytest.raises(ConfigError, match="duplicate arm"):
        build_study_config([], {"arms": [{"name": "a"}, {"name": "a"}]})
    with pytest.raises(ConfigError, match="embeddings needs an image encoder"):
        build_study_config([], {"arms": [{"name": "a", "embeddings": True}]})
    with pytest.raises(ConfigError, match="finetune_at"):
        build_study_config(
            [], {"arms": [{"name": "a", "encoder": "ssl", "embeddings": True, "finetune_at": 0.5}]}
        )
    with pytest.raises(ConfigError, match="set by the study"):
        build_study_config([], {"arms": [{"name": "a", "overrides": {"data.label_fraction": 0.5}}]})
    with pytest.raises(ConfigError, match="at least one arm"):
        build_study_config([], {})


def test_schedule_gives_small_subsets_more_epochs():
    cfg = build_study_config([], {**ARMS, "schedule": {"epochs": 20, "min_steps": 300, "val_checks": 20}})
    arm = ArmConfig(name="x")
    full = schedule_overrides(cfg, arm, 1.0, 3900, 64)
    assert full == {"trainer.max_epochs": 20, "trainer.check_val_every_n_epoch": 1}  # 61 steps/epoch
    tiny = schedule_overrides(cfg, arm, 0.01, 3900, 64)  # 39 scenes: one batch per epoch
    assert tiny["trainer.max_epochs"] == 300 and tiny["trainer.check_val_every_n_epoch"] == 15
    mid = schedule_overrides(cfg, arm, 0.25, 3900, 64)  # 975 scenes: 16 batches -> 19 epochs < 20
    assert mid["trainer.max_epochs"] == 20
    ft = schedule_overrides(cfg, ArmConfig(name="f", finetune_at=0.5), 0.01, 3900, 64)
    assert ft["optim.finetune.unfreeze_at_epoch"] == 150


def test_step_cap_and_fine_tuning_after_a_whole_frozen_stage():
    from planlab.study.config import StudySchedule

    cfg = build_study_config([], ARMS)
    capped = ArmConfig(name="c", schedule=StudySchedule(epochs=1, min_steps=10, max_steps=10))
    assert schedule_overrides(cfg, capped, 1.0, 3900, 64)["trainer.max_steps"] == 10  # 61 steps/epoch, capped
    tiny = schedule_overrides(cfg, capped, 0.01, 3900, 64)  # one batch per epoch: 10 epochs = 10 steps
    assert tiny["trainer.max_epochs"] == 10 and tiny["trainer.max_steps"] == 10
    ft = ArmConfig(name="f", finetune_at=0.5, schedule=StudySchedule(epochs=2, min_steps=20, max_steps=10))
    full = schedule_overrides(cfg, ft, 1.0, 3900, 64)
    # one whole frozen epoch (61 steps), then at most 10 steps with the last blocks trainable
    assert full["optim.finetune.unfreeze_at_epoch"] == 1 and full["trainer.max_epochs"] == 2
    assert full["trainer.max_steps"] == 61 + 10
    small = schedule_overrides(cfg, ft, 0.01, 3900, 64)  # 20 epochs of 1 step: frozen for 10, then 10 more
    assert small["optim.finetune.unfreeze_at_epoch"] == 10 and small["trainer.max_steps"] == 20
    assert small["trainer.max_epochs"] == 20
    with pytest.raises(ConfigError, match="max_steps"):
        build_study_config([], {**ARMS, "schedule": {"max_steps": 0}})
    with pytest.raises(ConfigError, match="set by the study"):
        build_study_config([], {"arms": [{"name": "a", "overrides": {"trainer.max_steps": 5}}]})


def test_experiment_ids():
    cfg = build_study_config([], ARMS)
    assert exp_id(cfg, "a", 0.01, 2) == "le-a-f0.01-s2"
    assert exp_id(cfg, "a", 1.0, 0) == "le-a-f1-s0"
    with pytest.raises(ConfigError):
        exp_id(cfg, "x" * 70, 1.0, 0)


def test_random_encoders_are_the_pretraining_init_per_seed(tmp_path):
    import json

    import torch

    from planlab.models.vit import ViTConfig, load_vit, save_vit
    from planlab.ssl.encoder import JepaViT
    from planlab.study.runner import random_encoder

    vit_cfg = ViTConfig(patch_size=16, embed_dim=32, depth=1, num_heads=2, grid_height=2, grid_width=4)
    enc = tmp_path / "ssl"
    save_vit(JepaViT(vit_cfg), enc)
    (enc / "planlab.json").write_text(json.dumps({"camera": {"image_height": 32, "image_width": 64}}))
    r0, r1 = random_encoder(tmp_path, enc, 0), random_encoder(tmp_path, enc, 1)
    torch.manual_seed(0)
    init0 = JepaViT(vit_cfg)
    a, b = load_vit(r0).state_dict(), load_vit(r1).state_dict()
    assert all(torch.equal(v, init0.state_dict()[k]) for k, v in a.items())
    assert not torch.equal(a["blocks.0.attn.qkv.weight"], b["blocks.0.attn.qkv.weight"])
    assert json.loads((r0 / "planlab.json").read_text())["camera"]["image_width"] == 64
    assert random_encoder(tmp_path, enc, 0) == r0  # made once, then reused


def test_report_command_line_carries_the_overrides():
    from planlab.study.runner import _command

    cfg = build_study_config([], ARMS)
    cmd = _command(cfg, ["label_efficiency_small"], "local", ["data.root=/data/small dir", "seeds=[0,1]"])
    assert cmd == ("planlab study label-efficiency --config label_efficiency_small 'data.root=/data/small dir' "
                   "'seeds=[0,1]'")  # fmt: skip
    assert _command(cfg, [], "slurm") == "planlab study label-efficiency --launcher slurm"
