"""Experiment specs: identifiers, templates and cluster profiles validate; bad input names the key."""

from __future__ import annotations

import pytest

from planlab.errors import ConfigError
from planlab.experiments import launch, rundir
from planlab.experiments.cluster import (
    list_profiles,
    load_profile,
    mem_to_mb,
    seconds_to_time,
    time_to_seconds,
)
from planlab.experiments.ids import check_id, check_tags
from planlab.experiments.spec import (
    TEMPLATE_KEYS,
    TEMPLATES_DIR,
    list_templates,
    load_template,
    make_spec,
    resolve,
    worker_budget,
)
from planlab.training.config import trainable_agents


@pytest.mark.parametrize(
    "bad", ["../x", "a;rm -rf ~", "$(id)", "", "-x", ".hidden", "a b", "x" * 65, "a/b", "é", "a\nb"]
)
def test_bad_ids_refused(bad):
    with pytest.raises(ConfigError, match="invalid experiment id"):
        check_id(bad)


@pytest.mark.parametrize("good", ["b15", "B15_v3.lr-2e-4", "0", "x" * 64])
def test_good_ids(good):
    assert check_id(good) == good


def test_tags_are_identifiers():
    assert check_tags("a,b, a") == ["a", "b"]
    with pytest.raises(ConfigError, match="invalid tag"):
        check_tags(["ok", "$(id)"])


def test_every_packaged_template_is_well_formed():
    names = list_templates()
    for required in (
        "ego_mlp",
        "ijepa_mlp",
        "ijepa_transformer",
        "vit_mlp",
        "vocab_scorer",
        "ijepa_mlp_ablation",
    ):
        assert required in names
    for name in names:
        text = (TEMPLATES_DIR / f"{name}.yaml").read_text()
        assert text.startswith("# planlab exp "), f"{name}.yaml must start with the command that uses it"
        data = load_template(name)
        assert set(data) <= set(TEMPLATE_KEYS)
        agent = data["train"]["agent"]["name"]
        assert agent in trainable_agents(), (
            f"{name}.yaml: agent {agent!r} is not a trainable registered agent"
        )
        spec, tmpl = make_spec(f"t-{name}", name)
        resolved = resolve(spec, tmpl)
        assert resolved.train.agent_name == agent
        assert len(resolved.config_hash) == 16 and len(resolved.group_key) == 16
    assert load_template("ijepa_mlp_ablation")["sweep"]["grid"]


def test_every_cluster_profile_validates():
    for name in list_profiles():
        p = load_profile(name)
        p.validate()
        assert (p.train.gpus_per_node > 0) == name.startswith("example-gpu")
    assert {"local", "local-slurm"} <= set(list_profiles())
    with pytest.raises(ConfigError, match="unknown cluster profile 'nope'"):
        load_profile("nope")


def test_time_and_memory_parsing():
    assert time_to_seconds("90") == 5400 and time_to_seconds("01:30:00") == 5400
    assert time_to_seconds("2-00:00:00") == 172800 and time_to_seconds("1-12") == 129600
    assert time_to_seconds("10:30") == 630
    assert seconds_to_time(3661) == "01:01:01" and seconds_to_time(90000) == "1-01:00:00"
    assert mem_to_mb("8G") == 8192 and mem_to_mb("500") == 500 and mem_to_mb("1T") == 1024**2
    with pytest.raises(ConfigError, match="memory size"):
        mem_to_mb("lots")
    with pytest.raises(ConfigError, match="SLURM time"):
        time_to_seconds("1h")


def test_overrides_shortcuts_seed_and_hashes():
    spec, tmpl = make_spec(
        "b15", "ego_mlp", overrides=["optim.lr=2e-4", "trainer.batch_size=48"], seed=3, tags="lr-ablation"
    )
    r = resolve(spec, tmpl)
    assert r.train.optim.lr == pytest.approx(2e-4) and r.train.trainer.batch_size == 48
    assert r.train.trainer.seed == 3 and "lr-ablation" in r.spec.tags and "baseline" in r.spec.tags
    spec2, _ = make_spec("b16", "ego_mlp", overrides=["optim.lr=2e-4", "trainer.batch_size=48"], seed=4)
    r2 = resolve(spec2, tmpl)
    assert r.group_key == r2.group_key and r.config_hash != r2.config_hash  # seed only differs
    spec3, _ = make_spec("b17", "ego_mlp", overrides=["optim.lr=3e-4"], seed=3)
    assert resolve(spec3, tmpl).group_key != r.group_key


def test_unknown_and_mistyped_keys_name_the_key():
    with pytest.raises(ConfigError, match=r"optim\.lrr.*valid keys here: .*lr"):
        resolve(*make_spec("x", "ego_mlp", overrides=["optim.lrr=1"]))
    with pytest.raises(ConfigError, match=r"trainer\.batch_size"):
        resolve(*make_spec("x", "ego_mlp", overrides=["trainer.batch_size=many"]))
    with pytest.raises(ConfigError, match=r"eval.*unknown config key 'splitt'.*valid keys here"):
        resolve(*make_spec("x", "ego_mlp", overrides=["eval.splitt=test"]))
    with pytest.raises(ConfigError, match=r"eval\.metric='pdm'.*pdms, epdms"):
        resolve(*make_spec("x", "ego_mlp", overrides=["eval.metric=pdm"]))
    with pytest.raises(ConfigError, match=r"resources.*unknown config key 'train.gpus'"):
        resolve(*make_spec("x", "ego_mlp", overrides=["resources.train.gpus=2"]))
    with pytest.raises(ConfigError, match="derived from the cluster resources"):
        resolve(*make_spec("x", "ego_mlp", overrides=["trainer.devices=4"]))
    with pytest.raises(ConfigError, match="--seed"):
        resolve(*make_spec("x", "ego_mlp", overrides=["trainer.seed=4"]))


def test_template_with_unknown_key_is_refused(tmp_path):
    bad = tmp_path / "mine.yaml"
    bad.write_text("# planlab exp new --template mine.yaml\ntrain: {}\nevall: {}\n")
    with pytest.raises(ConfigError, match=r"mine\.yaml: unknown template key 'evall'"):
        load_template(str(bad))


def test_layout_consistent_by_construction_and_worker_budget():
    spec, tmpl = make_spec("g1", "ego_mlp", cluster="example-gpu-multinode", overrides=["data.num_workers=8"])
    r = resolve(spec, tmpl)
    assert (r.train.trainer.num_nodes, r.train.trainer.devices, r.train.trainer.accelerator) == (4, 4, "gpu")
    assert r.train.trainer.strategy == "ddp"
    # 400 GB / 4 tasks = 100 GB per task, 12 GB for the rank, 6 GB per worker -> 14; 16 CPUs -> 15; asked 8
    assert r.train.data.num_workers == 8 and not r.warnings
    spec, _ = make_spec("g2", "ego_mlp", cluster="example-gpu-multinode",
                        overrides=["data.num_workers=32", "resources.train.mem=128G"])  # fmt: skip
    r = resolve(spec, tmpl)
    # lessons M1: 128 GB / 4 ranks = 32 GB; minus 12 GB -> 3 workers of 6 GB, not 32
    assert r.train.data.num_workers == 3 and "data.num_workers 32 -> 3" in r.warnings[0]
    assert worker_budget(8, r.train_resources, r.profile) == 3


def test_new_experiment_never_overwrites(tmp_path):
    run, r = launch.new_experiment(tmp_path, "b15", "ego_mlp", description="first")
    before = (run / "experiment.yaml").read_text()
    with pytest.raises(ConfigError, match="already exists"):
        launch.new_experiment(tmp_path, "b15", "ego_mlp", description="second")
    assert (run / "experiment.yaml").read_text() == before
    assert rundir.read_status(run)["state"] == "created"
    # a failed validation leaves no run dir behind
    with pytest.raises(ConfigError):
        launch.new_experiment(tmp_path, "b16", "ego_mlp", overrides=["optim.nope=1"])
    assert not (tmp_path / "b16").exists()
    # the stored config rebuilds the same experiment
    run2, loaded = launch.load(tmp_path, "b15")
    assert loaded.config_hash == r.config_hash
