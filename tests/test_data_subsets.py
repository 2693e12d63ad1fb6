"""By-log splits, nested label-fraction subsets and manifests: deterministic, hashed, tamper-evident."""

from __future__ import annotations

import json
import shutil

import pytest

from planlab.data.loader import SceneLoader
from planlab.data.manifest import build_manifest, load_manifest
from planlab.data.splits import load_log_split, make_log_split, part_sizes
from planlab.data.subsets import load_subset, make_subsets, scene_filter_of, subset_size, write_subsets
from planlab.errors import DataError
from planlab.scene import SceneFilter

LOGS = [f"2021.{i:03d}_veh-{i % 7}" for i in range(57)]
TOKENS = [f"{(i * 2654435761) % 2**64:016x}" for i in range(1000)]
FRACTIONS = [0.01, 0.05, 0.1, 0.25, 0.5, 1.0]


def test_log_split_is_deterministic_disjoint_and_complete():
    a = make_log_split(LOGS, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    b = make_log_split(list(reversed(LOGS)), {"train": 0.7, "val": 0.15, "test": 0.15}, seed=3)
    assert a.parts == b.parts and a.sha256 == b.sha256  # list order does not matter
    assert sorted(sum(a.parts.values(), [])) == sorted(LOGS)
    sizes = {k: len(v) for k, v in a.parts.items()}
    assert sizes == part_sizes(57, {"train": 0.7, "val": 0.15, "test": 0.15})
    assert abs(sizes["train"] - 39.9) < 1 and abs(sizes["val"] - 8.55) < 1
    c = make_log_split(LOGS, {"train": 0.7, "val": 0.15, "test": 0.15}, seed=4)
    assert c.parts["train"] != a.parts["train"]


def test_part_sizes_small_and_zero():
    assert part_sizes(5, {"train": 0.8, "val": 0.1, "test": 0.1}) == {"train": 3, "val": 1, "test": 1}
    assert part_sizes(2, {"train": 0.8, "val": 0.2, "test": 0.0}) == {"train": 1, "val": 1, "test": 0}
    with pytest.raises(DataError, match="sum to 1"):
        make_log_split(LOGS, {"train": 0.8, "val": 0.1})


def test_split_file_round_trip_and_tamper(tmp_path):
    split = make_log_split(LOGS, seed=0, data_split="trainval", manifest_hash="m" * 64)
    path = split.write(tmp_path / "splits.json")
    back = load_log_split(path)
    assert back.parts == split.parts and back.manifest_hash == "m" * 64 and back.data_split == "trainval"
    data = json.loads(path.read_text())
    moved = data["parts"]["val"].pop()
    data["parts"]["train"].append(moved)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="splits.json"):
        load_log_split(path)


def test_subsets_nested_deterministic_and_seeded():
    s0 = make_subsets(TOKENS, FRACTIONS, seed=0, split="train", manifest_hash="h")
    again = make_subsets(list(reversed(TOKENS)), FRACTIONS, seed=0, split="train", manifest_hash="h")
    assert [s.tokens for s in s0] == [s.tokens for s in again]
    assert [s.sha256 for s in s0] == [s.sha256 for s in again]
    assert [len(s.tokens) for s in s0] == [10, 50, 100, 250, 500, 1000]
    for small, big in zip(s0, s0[1:], strict=False):
        assert set(small.tokens) < set(big.tokens)
    assert set(s0[-1].tokens) == set(TOKENS)
    s1 = make_subsets(TOKENS, FRACTIONS, seed=1, split="train")
    assert set(s1[2].tokens) != set(s0[2].tokens)
    assert len(set(s1[2].tokens) & set(s0[2].tokens)) < 50  # independent draws, not shifted copies
    assert all(s.tokens == sorted(s.tokens) for s in s0)


def test_subset_size_rules():
    assert subset_size(0.01, 42) == 1  # never empty
    assert subset_size(0.05, 42) == 2 and subset_size(0.5, 42) == 21 and subset_size(1.0, 42) == 42
    with pytest.raises(DataError):
        subset_size(0.0, 10)
    with pytest.raises(DataError):
        subset_size(1.5, 10)
    with pytest.raises(DataError, match="duplicates"):
        make_subsets(TOKENS + TOKENS[:1])


def test_subset_file_verifies_hash(tmp_path):
    subset = make_subsets(TOKENS, [0.1], seed=2, manifest_hash="abc")[0]
    path = subset.write(tmp_path / subset.file_name)
    assert path.name == "train_frac0.1_seed2.json"
    back = load_subset(path, expected_manifest_hash="abc")
    assert back.tokens == subset.tokens and back.sha256 == subset.sha256
    with pytest.raises(DataError, match="expected"):
        load_subset(path, expected_manifest_hash="other")
    data = json.loads(path.read_text())
    data["tokens"][0] = TOKENS[-1] if TOKENS[-1] not in data["tokens"] else TOKENS[-2]
    tampered = tmp_path / "tampered.json"
    tampered.write_text(json.dumps(data))
    with pytest.raises(DataError, match="tampered.json"):
        load_subset(tampered)
    data = json.loads(path.read_text())
    data["fraction"] = 0.2
    tampered.write_text(json.dumps(data))
    with pytest.raises(DataError, match="sha256"):
        load_subset(tampered)


def test_write_subsets_on_calibration(calib_root, tmp_path):
    out = tmp_path / "subsets"
    written = write_subsets(calib_root, "calib", FRACTIONS, [0, 1, 2], out)
    assert len(written) == 18 and all(p.is_file() for _, p in written)
    manifest = build_manifest("calib", sorted((calib_root / "navsim_logs" / "calib").glob("*.pkl")))
    by_seed: dict[int, list] = {}
    for subset, path in written:
        back = load_subset(path, expected_manifest_hash=manifest.hash)
        assert back.num_available == 42 and back.tokens == subset.tokens
        by_seed.setdefault(back.seed, []).append(back)
    for subsets in by_seed.values():
        assert [len(s.tokens) for s in subsets] == [1, 2, 4, 11, 21, 42]  # round half up: 10.5 -> 11
        for small, big in zip(subsets, subsets[1:], strict=False):
            assert set(small.tokens) <= set(big.tokens)
    assert by_seed[0][3].tokens != by_seed[1][3].tokens
    # writing again gives byte-identical files
    first = {p.name: p.read_bytes() for _, p in written}
    write_subsets(calib_root, "calib", FRACTIONS, [0, 1, 2], out)
    assert first == {p.name: p.read_bytes() for p in out.iterdir()}
    # the recorded filter reproduces exactly the subset through the SceneLoader
    sub = by_seed[2][2]
    loader = SceneLoader(calib_root, "calib", scene_filter_of(sub), load_maps=False)
    assert sorted(loader.tokens) == sub.tokens


def test_subsets_of_a_split_part(calib_root, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(calib_root / "navsim_logs", root / "navsim_logs")
    files = sorted((root / "navsim_logs" / "calib").glob("*.pkl"))
    manifest = build_manifest("calib", files)
    split = make_log_split(
        manifest.log_names, {"train": 0.6, "val": 0.2, "test": 0.2}, 0, "calib", manifest.hash
    )
    split.write(root / "splits.json")
    written = write_subsets(root, "train", [0.5, 1.0], [0], scene_filter=SceneFilter(frame_interval=1))
    full = written[-1][0]
    loader = SceneLoader(root, "calib", SceneFilter(frame_interval=1), load_maps=False)
    per_log = loader.get_tokens_list_per_log()
    assert sorted(full.tokens) == sorted(t for log in split.parts["train"] for t in per_log[log])
    assert full.scene_filter["log_names"] == split.parts["train"]
    part_manifest = build_manifest(
        "train", [root / "navsim_logs" / "calib" / f"{n}.pkl" for n in split.parts["train"]]
    )
    assert full.manifest_hash == part_manifest.hash != manifest.hash
    assert written[0][1].parent == root / "subsets" / "train"
    with pytest.raises(DataError, match="no part 'holdout'"):
        write_subsets(root, "holdout")


def test_manifest_file_and_hash_sensitivity(calib_root, tmp_path):
    files = sorted((calib_root / "navsim_logs" / "calib").glob("*.pkl"))
    m = build_manifest("calib", files)
    path = m.write(tmp_path / "manifest.json")
    assert load_manifest(path).hash == m.hash
    assert build_manifest("calib", files[:4]).hash != m.hash
    data = json.loads(path.read_text())
    data["logs"][0]["num_tokens"] += 1
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="does not match"):
        load_manifest(path)
