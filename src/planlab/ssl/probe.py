"""Linear probes: how much driving-relevant information a frozen encoder's pooled feature holds.

The monitor of pre-training (is the encoder learning anything the planner could use?) and the check that
SSL features beat a randomly initialised encoder of the same architecture. Features are the mean over patch
tokens (I-JEPA has no CLS token, methods_facts §1.7, lesson C2), standardised with the probe-train
statistics. Frames are split **by log** into probe-train and probe-test, so a probe cannot succeed by
recognising neighbouring frames of one drive. Tasks:

- ``speed``: ridge regression on the ego speed, scored by R² on the test logs;
- ``command``: multinomial logistic regression on the driving command, balanced accuracy;
- ``lead``: logistic regression on "a vehicle is ahead in the ego corridor", balanced accuracy.

Regularisation strengths are chosen by cross-validation over probe-train logs (grouped folds), so a probe
neither overfits a few hundred frames nor depends on a hand-set penalty.

A task whose probe-train part has a single class is reported as None (nothing to learn).
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

TASKS = ("speed", "command", "lead")


POOLINGS = ("mean", "grid")


def pool_tokens(
    tokens: torch.Tensor, grid: tuple[int, int], pooling: str = "mean", cells: tuple[int, int] = (2, 4)
) -> torch.Tensor:
    """``[B, N, D]`` tokens → ``[B, D]`` (mean over all patches) or ``[B, r·c·D]`` (``grid``: the mean of each
    of ``cells = (r, c)`` regions of the patch grid, concatenated — keeps *where* things are)."""
    if pooling == "mean":
        return tokens.mean(dim=1)
    if pooling != "grid":
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    b, _, d = tokens.shape
    x = tokens.reshape(b, grid[0], grid[1], d).permute(0, 3, 1, 2)
    return torch.nn.functional.adaptive_avg_pool2d(x, cells).permute(0, 2, 3, 1).reshape(b, -1)


@torch.no_grad()
def pooled_features(
    encoder: torch.nn.Module,
    images: np.ndarray,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    pooling: str = "mean",
) -> np.ndarray:
    """``[N, F]`` float64 pooled patch tokens of ``images`` (``[N, 3, H, W]``, any float dtype)."""
    was_training = encoder.training
    encoder.eval()
    out = []
    try:
        for start in range(0, len(images), batch_size):
            x = torch.from_numpy(np.asarray(images[start : start + batch_size], dtype=np.float32)).to(device)
            grid = (x.shape[-2] // encoder.patch_size, x.shape[-1] // encoder.patch_size)
            out.append(pool_tokens(encoder(x), grid, pooling).double().cpu().numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0))


def log_split(logs: Sequence[str], test_fraction: float) -> np.ndarray:
    """Boolean "is test" per frame: whole logs, chosen by a stable hash of the log name (≥ 1 log each side).

    With a single log there is no log to hold out: its last ``test_fraction`` of frames (in the given order,
    i.e. time) are the test rows, so a probe on a one-log split still fits and scores rather than failing.
    """
    names = sorted(set(logs))
    if len(names) == 1:
        n = len(logs)
        n_test = min(max(1, int(round(test_fraction * n))), n - 1) if n > 1 else 0
        return np.arange(n) >= n - n_test
    ranked = sorted(names, key=lambda n: hashlib.sha256(f"probe:{n}".encode()).hexdigest())
    n_test = min(max(1, int(round(test_fraction * len(names)))), max(len(names) - 1, 1))
    test = set(ranked[:n_test])
    return np.array([log in test for log in logs], dtype=bool)


def effective_rank(features: np.ndarray) -> float:
    """RankMe: exp(entropy) of the normalised singular values of the centred features (1 = collapsed)."""
    x = features - features.mean(axis=0, keepdims=True)
    if x.shape[0] < 2:
        return math.nan
    s = np.linalg.svd(x, compute_uv=False)
    p = s / max(float(s.sum()), 1e-12) + 1e-12
    return float(np.exp(-(p * np.log(p)).sum()))


def _standardise(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    mu = x[train].mean(axis=0)
    sd = x[train].std(axis=0)
    return (x - mu) / np.where(sd > 1e-8, sd, 1.0)


def _cv_splits(groups: np.ndarray, train: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """Grouped (by log) folds over the probe-train rows for choosing the regularisation; None with < 2 logs."""
    from sklearn.model_selection import GroupKFold

    g = groups[train]
    n = len(np.unique(g))
    if n < 2:
        return None
    return list(GroupKFold(n_splits=min(3, n)).split(np.zeros(len(g)), groups=g))


def ridge_r2(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, alphas: Sequence[float], groups: np.ndarray | None = None
) -> float:
    """R² on the test rows of a ridge fit on the train rows; the penalty is chosen among ``alphas`` by grouped
    cross-validation on the train rows (a fixed penalty when one value or one log is given)."""
    from sklearn.linear_model import Ridge, RidgeCV

    splits = _cv_splits(groups, train) if groups is not None and len(alphas) > 1 else None
    model = RidgeCV(alphas=list(alphas), cv=splits) if splits else Ridge(alpha=float(alphas[0]))
    model.fit(x[train], y[train])
    ytest = y[~train]
    ss_tot = float(((ytest - ytest.mean()) ** 2).sum())
    if ss_tot <= 0:
        return math.nan
    return 1.0 - float(((ytest - model.predict(x[~train])) ** 2).sum()) / ss_tot


def logistic_balanced_accuracy(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, cs: Sequence[float], groups: np.ndarray | None = None
) -> float | None:
    """Balanced accuracy on the test rows of a logistic regression; C chosen like :func:`ridge_r2`'s penalty."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    if len(np.unique(y[train])) < 2 or (~train).sum() == 0:
        return None
    splits = _cv_splits(groups, train) if groups is not None and len(cs) > 1 else None
    best_c = float(cs[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence and single-class-fold warnings on small probe sets
        if splits:
            xt, yt = x[train], y[train]
            scores = []
            for c in cs:
                accs = []
                for fit_idx, val_idx in splits:
                    if len(np.unique(yt[fit_idx])) < 2:
                        continue
                    clf = LogisticRegression(C=float(c), max_iter=2000).fit(xt[fit_idx], yt[fit_idx])
                    accs.append(balanced_accuracy_score(yt[val_idx], clf.predict(xt[val_idx])))
                scores.append(np.mean(accs) if accs else -1.0)
            best_c = float(cs[int(np.argmax(scores))])
        clf = LogisticRegression(C=best_c, max_iter=2000).fit(x[train], y[train])
        return float(balanced_accuracy_score(y[~train], clf.predict(x[~train])))


def run_probes(
    features: np.ndarray,
    labels: dict[str, np.ndarray],
    is_test: np.ndarray,
    ridge_alphas: Sequence[float] = (0.1, 1.0, 10.0, 100.0, 1000.0),
    logistic_cs: Sequence[float] = (0.01, 0.1, 1.0, 10.0),
    logs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Scores of every task plus the feature statistics (RankMe, std of the pooled features).

    ``logs`` (one per frame) groups the cross-validation folds that choose the regularisation.
    """
    train = ~is_test
    if train.sum() == 0 or is_test.sum() == 0:  # nothing to fit or nothing to score: report, don't crash
        return {
            "n_train": int(train.sum()),
            "n_test": int(is_test.sum()),
            "rankme": effective_rank(features),
            "pooled_std": float(features.std(axis=0).mean()) if len(features) else math.nan,
            "speed_r2": math.nan,
            "command_bacc": None,
            "lead_bacc": None,
            "lead_rate": math.nan,
        }
    x = _standardise(features, train)
    groups = None
    if logs is not None:
        groups = np.unique(np.asarray(logs), return_inverse=True)[1]
    out: dict[str, Any] = {
        "n_train": int(train.sum()),
        "n_test": int(is_test.sum()),
        "rankme": effective_rank(features),
        "pooled_std": float(features.std(axis=0).mean()),
        "speed_r2": ridge_r2(x, labels["speed"].astype(np.float64), train, ridge_alphas, groups),
        "command_bacc": logistic_balanced_accuracy(
            x, labels["command"].astype(int), train, logistic_cs, groups
        ),
        "lead_bacc": logistic_balanced_accuracy(x, labels["lead"].astype(int), train, logistic_cs, groups),
        "lead_rate": float(np.mean(labels["lead"][is_test])) if is_test.any() else math.nan,
    }
    return out


def compare(ssl: dict[str, Any], random: dict[str, Any]) -> dict[str, Any]:
    """Per task: SSL score − random-init score (positive = the SSL features hold more)."""
    out = {}
    for key in ("speed_r2", "command_bacc", "lead_bacc"):
        a, b = ssl.get(key), random.get(key)
        out[key] = None if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) else a - b
    return out


def encoder_camera(encoder_dir: str, image_size: tuple[int, int]) -> Any:
    """The camera settings an encoder was pre-trained with (``planlab.json``), else the defaults at its native
    image size."""
    import json
    from dataclasses import fields
    from pathlib import Path

    from planlab.agents.learned_config import CameraFeatureConfig
    from planlab.errors import CheckpointError
    from planlab.ssl.convert import INFO_FILE

    info_path = Path(encoder_dir) / INFO_FILE
    cam = {}
    if info_path.is_file():
        cam = dict(json.loads(info_path.read_text()).get("camera") or {})
    cam.update({"history_index": 0})
    cam.setdefault("image_height", image_size[0])
    cam.setdefault("image_width", image_size[1])

    unknown = sorted(set(cam) - {f.name for f in fields(CameraFeatureConfig)})
    if unknown:
        raise CheckpointError(f"{info_path}: unknown camera setting(s) {', '.join(unknown)}")
    camera = CameraFeatureConfig(**cam)
    camera.validate(f"{info_path}: camera")
    return camera


def probe_encoder(
    encoder_dir: str,
    root: str | None,
    split: str,
    cache_root: str,
    *,
    max_frames: int = 1500,
    test_fraction: float = 0.3,
    lead_range: tuple[float, float] = (2.0, 30.0),
    lead_half_width: float = 2.0,
    random_seed: int = 0,
    splits_file: str | None = None,
    device: str | None = None,
    pooling: str = "mean",
    progress: bool = True,
) -> dict[str, Any]:
    """Probe a ``planlab-vit/1`` encoder directory against a random-init ViT of the same architecture."""
    from planlab.models.vit import load_vit
    from planlab.ssl.encoder import JepaViT
    from planlab.ssl.frames import build_frames

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    vit = load_vit(encoder_dir).to(device)
    c = vit.config
    camera = encoder_camera(encoder_dir, (c.grid_height * c.patch_size, c.grid_width * c.patch_size))
    frames = build_frames(root, split, camera, cache_root, max_frames=max_frames, splits_file=splits_file,
                          lead_range=lead_range, lead_half_width=lead_half_width, progress=progress)  # fmt: skip
    is_test = log_split(frames.logs, test_fraction)
    state = torch.random.get_rng_state()
    torch.manual_seed(random_seed)
    try:
        random_vit = JepaViT(c).to(device)
    finally:
        torch.random.set_rng_state(state)
    ssl = run_probes(pooled_features(vit, frames.images, device=device, pooling=pooling), frames.labels, is_test,
                     logs=frames.logs)  # fmt: skip
    rnd = run_probes(pooled_features(random_vit, frames.images, device=device, pooling=pooling), frames.labels,
                     is_test, logs=frames.logs)  # fmt: skip
    return {"encoder": str(encoder_dir), "split": split, "frames": len(frames), "pooling": pooling, "ssl": ssl,
            "random_init": rnd, "ssl_minus_random": compare(ssl, rnd)}  # fmt: skip
