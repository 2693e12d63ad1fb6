"""Linear probes: how much driving-relevant information a frozen encoder's pooled feature holds.

The monitor of pre-training (is the encoder learning anything the planner could use?) and the check that
SSL features beat a randomly initialised encoder of the same architecture. Features are the mean over patch
tokens (I-JEPA has no CLS token, methods_facts §1.7, lesson C2), standardised with the probe-train
statistics. Tasks:

- ``speed``: ridge regression on the ego speed, scored by R² on the test frames;
- ``command``: multinomial logistic regression on the driving command, balanced accuracy;
- ``lead``: logistic regression on "a vehicle is ahead in the ego corridor", balanced accuracy.

Protocol (the usual linear evaluation of SSL encoders): the probe is fitted on labelled frames of the
pre-training split (the frames the encoder saw, without their labels) and scored on every frame of a
held-out split (other logs, never seen by pre-training). Without a probe-train split, the frames of one split
are divided **by log** instead, so a probe cannot succeed by recognising neighbouring frames of one drive.
Logistic probes weight the classes inversely to their frequency: they are scored by balanced accuracy, and an
unweighted fit on a rare class (a lead vehicle in a few % of frames) predicts "absent" everywhere.
Regularisation strengths are chosen by cross-validation over probe-train logs (grouped folds). The
difference SSL − random init gets a 95 % CI from a bootstrap over test logs (the same resampled frames score
both encoders), and the random-init side can average several initialisations.

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
SCORE_KEYS = {"speed": "speed_r2", "command": "command_bacc", "lead": "lead_bacc"}  # task → score name
RIDGE_ALPHAS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # penalties tried by the grouped cross-validation
LOGISTIC_CS = (0.01, 0.1, 1.0, 10.0)


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
    indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """``[N, F]`` float64 pooled patch tokens of ``images`` (``[N, 3, H, W]``, any float dtype; a memory map
    is read one batch at a time), or of the rows ``indices`` of it."""
    was_training = encoder.training
    encoder.eval()
    rows = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    out = []
    try:
        for start in range(0, len(rows), batch_size):
            x = torch.from_numpy(np.asarray(images[rows[start : start + batch_size]], dtype=np.float32)).to(
                device
            )
            grid = (x.shape[-2] // encoder.patch_size, x.shape[-1] // encoder.patch_size)
            out.append(pool_tokens(encoder(x), grid, pooling).double().cpu().numpy())
    finally:
        encoder.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, 0))


def grid_pixels(
    images: np.ndarray,
    grid: tuple[int, int],
    batch_size: int = 256,
    indices: Sequence[int] | np.ndarray | None = None,
) -> np.ndarray:
    """``[N, 3·rows·cols]`` float64: each image (``[N, 3, H, W]``, normalised) averaged over the cells of a
    ``grid = (rows, cols)`` patch grid — the raw image at the encoder's token resolution, no encoder at all.

    The reference a linear probe on encoder features should beat: it keeps *where* the colours are, which a
    mean-pooled token loses, so it bounds what the probe tasks need from layout alone.
    """
    rows = np.arange(len(images)) if indices is None else np.asarray(indices, dtype=np.int64)
    out = []
    for start in range(0, len(rows), batch_size):
        x = torch.from_numpy(np.asarray(images[rows[start : start + batch_size]], dtype=np.float32))
        out.append(torch.nn.functional.adaptive_avg_pool2d(x, grid).reshape(len(x), -1).double().numpy())
    return np.concatenate(out) if out else np.zeros((0, 3 * grid[0] * grid[1]))


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


def _ridge_predict(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, alphas: Sequence[float], groups: np.ndarray | None = None
) -> np.ndarray:
    """Test-row predictions of a ridge fit on the train rows; the penalty is chosen among ``alphas`` by grouped
    cross-validation on the train rows (a fixed penalty when one value or one log is given)."""
    from sklearn.linear_model import Ridge, RidgeCV

    splits = _cv_splits(groups, train) if groups is not None and len(alphas) > 1 else None
    model = RidgeCV(alphas=list(alphas), cv=splits) if splits else Ridge(alpha=float(alphas[0]))
    model.fit(x[train], y[train])
    return model.predict(x[~train])


def r2_score(y: np.ndarray, pred: np.ndarray) -> float:
    """1 − SSE/SST; NaN when the targets are constant (nothing to explain)."""
    ss_tot = float(((y - y.mean()) ** 2).sum()) if len(y) else 0.0
    if ss_tot <= 0:
        return math.nan
    return 1.0 - float(((y - pred) ** 2).sum()) / ss_tot


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean per-class recall over the classes present in ``y`` (NaN when ``y`` is empty)."""
    classes = np.unique(y)
    if len(classes) == 0:
        return math.nan
    return float(np.mean([np.mean(pred[y == c] == c) for c in classes]))


def ridge_r2(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, alphas: Sequence[float], groups: np.ndarray | None = None
) -> float:
    """R² on the test rows of a ridge fit on the train rows (penalty as in :func:`_ridge_predict`)."""
    return r2_score(y[~train], _ridge_predict(x, y, train, alphas, groups))


def _logistic_predict(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, cs: Sequence[float], groups: np.ndarray | None = None
) -> np.ndarray | None:
    """Test-row predictions of a class-balanced logistic regression (C chosen by grouped CV on balanced
    accuracy); None when the train rows hold a single class or there is no test row."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(y[train])) < 2 or (~train).sum() == 0:
        return None
    splits = _cv_splits(groups, train) if groups is not None and len(cs) > 1 else None
    best_c = float(cs[0])

    def fit(c: float, xs: np.ndarray, ys: np.ndarray) -> Any:
        # class_weight="balanced": the score is balanced accuracy, and rare classes must not be ignored
        return LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(xs, ys)

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
                    clf = fit(float(c), xt[fit_idx], yt[fit_idx])
                    accs.append(balanced_accuracy(yt[val_idx], clf.predict(xt[val_idx])))
                scores.append(np.mean(accs) if accs else -1.0)
            best_c = float(cs[int(np.argmax(scores))])
        return fit(best_c, x[train], y[train]).predict(x[~train])


def logistic_balanced_accuracy(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, cs: Sequence[float], groups: np.ndarray | None = None
) -> float | None:
    """Balanced accuracy on the test rows of a logistic regression; C chosen like :func:`ridge_r2`'s penalty."""
    pred = _logistic_predict(x, y, train, cs, groups)
    return None if pred is None else balanced_accuracy(y[~train], pred)


def probe_predictions(
    features: np.ndarray,
    labels: dict[str, np.ndarray],
    is_test: np.ndarray,
    ridge_alphas: Sequence[float] = RIDGE_ALPHAS,
    logistic_cs: Sequence[float] = LOGISTIC_CS,
    logs: Sequence[str] | None = None,
) -> dict[str, np.ndarray | None]:
    """Per task, the probe's predictions for the test rows (None where a task cannot be fitted)."""
    train = ~is_test
    x = _standardise(features, train)
    groups = None if logs is None else np.unique(np.asarray(logs), return_inverse=True)[1]
    return {
        "speed": _ridge_predict(x, labels["speed"].astype(np.float64), train, ridge_alphas, groups),
        "command": _logistic_predict(x, labels["command"].astype(int), train, logistic_cs, groups),
        "lead": _logistic_predict(x, labels["lead"].astype(int), train, logistic_cs, groups),
    }


def task_score(task: str, y: np.ndarray, pred: np.ndarray | None) -> float | None:
    """The score of one task's test predictions (R² for speed, balanced accuracy for the classifiers)."""
    if pred is None:
        return None
    if task == "speed":
        return r2_score(y.astype(np.float64), pred)
    return balanced_accuracy(y.astype(int), pred)


def run_probes(
    features: np.ndarray,
    labels: dict[str, np.ndarray],
    is_test: np.ndarray,
    ridge_alphas: Sequence[float] = RIDGE_ALPHAS,
    logistic_cs: Sequence[float] = LOGISTIC_CS,
    logs: Sequence[str] | None = None,
    predictions: dict[str, np.ndarray | None] | None = None,
) -> dict[str, Any]:
    """Scores of every task plus the feature statistics (RankMe, std of the pooled features).

    ``logs`` (one per frame) groups the cross-validation folds that choose the regularisation;
    ``predictions`` (from :func:`probe_predictions`) avoids fitting twice.
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
    if predictions is None:
        predictions = probe_predictions(features, labels, is_test, ridge_alphas, logistic_cs, logs)
    out: dict[str, Any] = {
        "n_train": int(train.sum()),
        "n_test": int(is_test.sum()),
        "rankme": effective_rank(features),
        "pooled_std": float(features.std(axis=0).mean()),
    }
    for task, key in SCORE_KEYS.items():
        out[key] = task_score(task, labels[task][is_test], predictions[task])
    out["lead_rate"] = float(np.mean(labels["lead"][is_test]))
    return out


def compare(ssl: dict[str, Any], random: dict[str, Any]) -> dict[str, Any]:
    """Per task: SSL score − random-init score (positive = the SSL features hold more)."""
    out = {}
    for key in SCORE_KEYS.values():
        a, b = ssl.get(key), random.get(key)
        out[key] = None if a is None or b is None or not (math.isfinite(a) and math.isfinite(b)) else a - b
    return out


def paired_bootstrap(
    pred_a: dict[str, np.ndarray | None],
    preds_b: Sequence[dict[str, np.ndarray | None]],
    labels_test: dict[str, np.ndarray],
    logs_test: Sequence[str],
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, dict[str, Any] | None]:
    """Per task: score(A) − mean score(B_k) on the test rows, with a 95 % CI from resampling test *logs*
    (frames of one drive are correlated, so logs are the unit). The same resample scores every encoder, so the
    CI is of the paired difference. None for a task either side could not fit."""
    rng = np.random.default_rng(seed)
    logs = np.asarray(logs_test)
    names, inverse = np.unique(logs, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(names))]
    resamples = [np.concatenate([members[j] for j in rng.integers(0, len(names), len(names))])
                 for _ in range(n_boot)]  # fmt: skip
    out: dict[str, dict[str, Any] | None] = {}
    for task, key in SCORE_KEYS.items():
        a, bs = pred_a.get(task), [p.get(task) for p in preds_b]
        if a is None or not bs or any(b is None for b in bs):
            out[key] = None
            continue
        y = labels_test[task]

        def diff(idx: np.ndarray, a=a, bs=bs, y=y, task=task) -> float:
            sa = task_score(task, y[idx], a[idx])
            sb = [task_score(task, y[idx], b[idx]) for b in bs]
            return math.nan if sa is None or any(s is None for s in sb) else sa - float(np.mean(sb))

        full = diff(np.arange(len(y)))
        boot = np.array([diff(idx) for idx in resamples])
        boot = boot[np.isfinite(boot)]
        lo, hi = np.quantile(boot, [0.025, 0.975]) if len(boot) else (math.nan, math.nan)
        out[key] = {"diff": full, "ci": [float(lo), float(hi)], "n_logs": int(len(names))}
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


def evenly(n: int, k: int | None) -> np.ndarray:
    """``k`` indices spread evenly over ``range(n)`` (all of them when ``k`` is None or ≥ n)."""
    if k is None or k >= n:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, k).round().astype(np.int64))


class ProbeSet:
    """The frames a probe fits and scores on: probe-train rows (``train`` frames, a subset) then test rows.

    With ``train`` None (or the same split as ``test``), the rows are all of ``test`` and the test rows a log
    split of them.
    """

    def __init__(self, test: Any, train: Any | None = None, max_train_frames: int | None = None,
                 test_fraction: float = 0.3) -> None:  # fmt: skip
        if train is not None and train.info.get("split") == test.info.get("split"):
            train = None  # fitting and scoring on the same frames would measure memory, not features
        self.test_frames, self.train_frames = test, train
        if train is None:
            self.parts = [(test, np.arange(len(test.logs)))]
            self.is_test = log_split(test.logs, test_fraction)
            self.protocol = f"log split of {test.info.get('split', '?')} ({test_fraction:.0%} of logs)"
        else:
            self.parts = [
                (train, evenly(len(train.logs), max_train_frames)),
                (test, np.arange(len(test.logs))),
            ]
            n_train = len(self.parts[0][1])
            self.is_test = np.r_[np.zeros(n_train, dtype=bool), np.ones(len(test.logs), dtype=bool)]
            self.protocol = (f"fit on {train.info.get('split', '?')}, scored on held-out "
                             f"{test.info.get('split', '?')}")  # fmt: skip
        self.logs = [f for frames, idx in self.parts for f in (frames.logs[i] for i in idx)]
        self.labels = {key: np.concatenate([np.asarray(frames.labels[key])[idx] for frames, idx in self.parts])
                       for key in ("speed", "command", "lead")}  # fmt: skip

    def features(self, encoder: torch.nn.Module, batch_size: int = 64, device: Any = "cpu",
                 pooling: str = "mean") -> np.ndarray:  # fmt: skip
        return np.concatenate([pooled_features(encoder, frames.images, batch_size, device, pooling, idx)
                               for frames, idx in self.parts])  # fmt: skip

    def pixels(self, grid: tuple[int, int]) -> np.ndarray:
        """:func:`grid_pixels` of every probe row (probe-train rows, then test rows)."""
        return np.concatenate([grid_pixels(frames.images, grid, indices=idx) for frames, idx in self.parts])

    @property
    def test_labels(self) -> dict[str, np.ndarray]:
        return {k: v[self.is_test] for k, v in self.labels.items()}

    @property
    def test_logs(self) -> list[str]:
        return [log for log, t in zip(self.logs, self.is_test, strict=True) if t]


def probe_encoder(
    encoder_dir: str,
    root: str | None,
    split: str,
    cache_root: str,
    *,
    train_split: str | None = "train",
    max_train_frames: int | None = 3000,
    max_frames: int | None = None,
    test_fraction: float = 0.3,
    lead_range: tuple[float, float] = (2.0, 30.0),
    lead_half_width: float = 2.0,
    random_seeds: Sequence[int] = (0,),
    splits_file: str | None = None,
    device: str | None = None,
    pooling: str = "mean",
    n_boot: int = 2000,
    progress: bool = True,
) -> dict[str, Any]:
    """Probe a ``planlab-vit/1`` encoder directory against random-init ViTs of the same architecture.

    Fitted on ``train_split`` frames (≤ ``max_train_frames``, evenly spread), scored on the ``split`` frames
    (≤ ``max_frames``); with ``train_split`` None, ``split`` is divided by log. ``random_seeds``: the
    random-init encoders compared against (their scores are averaged; each is reported).
    """
    from planlab.models.vit import load_vit
    from planlab.ssl.encoder import JepaViT
    from planlab.ssl.frames import build_frames

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not random_seeds:
        raise ValueError("random_seeds: at least one seed")
    vit = load_vit(encoder_dir).to(device)
    c = vit.config
    camera = encoder_camera(encoder_dir, (c.grid_height * c.patch_size, c.grid_width * c.patch_size))

    def frames_of(name: str, limit: int | None) -> Any:
        return build_frames(root, name, camera, cache_root, max_frames=limit, splits_file=splits_file,
                            lead_range=lead_range, lead_half_width=lead_half_width, progress=progress)  # fmt: skip

    test = frames_of(split, max_frames)
    train = (
        None if not train_split else frames_of(train_split, None)
    )  # whole split: shares pre-training's cache
    ps = ProbeSet(test, train, max_train_frames, test_fraction)

    def probe(model: torch.nn.Module) -> tuple[dict[str, Any], dict[str, Any]]:
        feats = ps.features(model, device=device, pooling=pooling)
        preds = probe_predictions(feats, ps.labels, ps.is_test, logs=ps.logs)
        return run_probes(feats, ps.labels, ps.is_test, logs=ps.logs, predictions=preds), preds

    ssl, ssl_preds = probe(vit)
    randoms, random_preds = [], []
    for seed in random_seeds:
        state = torch.random.get_rng_state()
        torch.manual_seed(int(seed))
        try:
            random_vit = JepaViT(c).to(device)
        finally:
            torch.random.set_rng_state(state)
        scores, preds = probe(random_vit)
        randoms.append({"seed": int(seed), **scores})
        random_preds.append(preds)
    mean_random = {k: _mean_or_none([r.get(k) for r in randoms]) for k in randoms[0] if k != "seed"}
    return {
        "encoder": str(encoder_dir),
        "split": split,
        "train_split": train_split,
        "protocol": ps.protocol,
        "frames": len(ps.is_test),
        "pooling": pooling,
        "ssl": ssl,
        "random_init": mean_random,
        "random_inits": randoms,
        "ssl_minus_random": compare(ssl, mean_random),
        "ssl_minus_random_ci": paired_bootstrap(
            ssl_preds, random_preds, ps.test_labels, ps.test_logs, n_boot
        ),
    }


def _mean_or_none(values: Sequence[Any]) -> Any:
    if any(v is None for v in values):
        return None
    return float(np.mean(values))
