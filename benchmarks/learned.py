"""Learned task fit: train the predictors `router.predictor` loads and runs.

numpy only, trains in seconds on a CPU. Features: hashed word uni/bigrams and char
3-grams (crc32, so stable across processes), the router task kind (one-hot) and the
log prompt length. Models: ``knn`` (cosine, k nearest), ``ridge`` (kernel form),
``logistic`` (multi-output, Adam) and ``mlp`` (one hidden layer, Adam). The router
then picks by expected utility ``quality - lambda * cost``.

`train()` returns a `router.predictor.LearnedPredictor` (the router's
``QualityPredictor``: load + predict at run time, saved as ``<prefix>.npz`` +
``<prefix>.json``, no pickle); `export_profile()` writes the catalog's task-fit profile.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import yaml

from benchmarks.datasets import MODEL_ID_MAP, Dataset
from router.catalog import load_catalog
from router.predictor import DEFAULT_HP, KINDS, LearnedPredictor, _sigmoid, featurize

__all__ = ["train", "export_profile"]


def _adam_fit(params: dict[str, Any], grad_fn: Any, steps: int, lr: float) -> None:
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, steps + 1):
        grads = grad_fn(params)
        for k in params:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v2[k] = 0.999 * v2[k] + 0.001 * grads[k] ** 2
            mh, vh = m[k] / (1 - 0.9**t), v2[k] / (1 - 0.999**t)
            params[k] -= lr * mh / (np.sqrt(vh) + 1e-8)


def train(ds: Dataset, kind: str = "ridge", *, dim: int = 4096, seed: int = 0, X: Any = None, **hp: Any) -> LearnedPredictor:
    """Fit one predictor on all prompts of `ds` (pass `X` to reuse features);
    hyperparameters default to `DEFAULT_HP[kind]`."""
    hp = {**DEFAULT_HP.get(kind, {}), **hp}
    if X is None:
        X = featurize(ds.prompts, ds.task_kinds(), dim)
    Y = ds.quality.astype(np.float32)
    n, d = X.shape
    rng = np.random.default_rng(seed)
    if kind == "knn":
        arrays = {"X": X.astype(np.float16), "Y": Y, "k": np.array([hp.get("k", 25)])}
    elif kind == "ridge":
        alpha = float(hp.get("alpha", 1.0))
        mu = Y.mean(0)
        K = X @ X.T
        A = np.linalg.solve(K + alpha * np.eye(n, dtype=np.float32), Y - mu)
        arrays = {"W": (X.T @ A).astype(np.float32), "b": mu}
    elif kind == "logistic":
        l2 = float(hp.get("l2", 1e-3))
        params = {"W": np.zeros((d, Y.shape[1]), np.float32), "b": np.log((Y.mean(0) + 1e-3) / (1 - Y.mean(0) + 1e-3)).astype(np.float32)}

        def grad(p: dict[str, Any]) -> dict[str, Any]:
            G = (_sigmoid(X @ p["W"] + p["b"]) - Y) / n
            return {"W": X.T @ G + l2 * p["W"], "b": G.sum(0)}

        _adam_fit(params, grad, int(hp.get("steps", 150)), float(hp.get("lr", 0.05)))
        arrays = params
    elif kind == "mlp":
        h, l2 = int(hp.get("hidden", 64)), float(hp.get("l2", 1e-3))
        params = {
            "W1": (rng.standard_normal((d, h)) * math.sqrt(2.0 / d)).astype(np.float32),
            "b1": np.zeros(h, np.float32),
            "W2": (rng.standard_normal((h, Y.shape[1])) * math.sqrt(1.0 / h)).astype(np.float32),
            "b2": np.zeros(Y.shape[1], np.float32),
        }

        def grad(p: dict[str, Any]) -> dict[str, Any]:
            Z = X @ p["W1"] + p["b1"]
            H = np.maximum(Z, 0)
            G = (_sigmoid(H @ p["W2"] + p["b2"]) - Y) / n
            GH = (G @ p["W2"].T) * (Z > 0)
            return {"W2": H.T @ G + l2 * p["W2"], "b2": G.sum(0), "W1": X.T @ GH + l2 * p["W1"], "b1": GH.sum(0)}

        _adam_fit(params, grad, int(hp.get("steps", 150)), float(hp.get("lr", 0.01)))
        arrays = params
    else:
        raise ValueError(f"unknown learned model kind {kind!r}; choose from {KINDS}")
    return LearnedPredictor(kind, ds.models, arrays, dim=dim, model_ids=[MODEL_ID_MAP.get(m, m) for m in ds.models], meta={"trained_on": ds.name, "n_train": n, **{k: v for k, v in hp.items() if isinstance(v, (int, float, str))}})


def export_profile(pred: LearnedPredictor, ds: Dataset, path: str) -> dict[str, Any]:
    """Write the learned per-task-kind quality as the catalog's task-fit profile
    ``{model_id: {task_kind: quality}}`` (YAML or JSON by extension): the mean
    prediction over `ds`'s prompts of each kind, under the model's catalog id
    (`MODEL_ID_MAP`). Ids the current catalog does not know are still written (the
    catalog ignores them until such a model is added) and returned in
    ``not_in_catalog`` so the caller can say so."""
    P = pred.predict_texts(ds.prompts, ds.task_kinds())
    kinds = np.array(ds.task_kinds())
    try:
        catalog = load_catalog()
    except Exception:  # catalog not loadable here: nothing to check against
        catalog = None
    profile: dict[str, dict[str, float]] = {}
    missing: list[str] = []
    for j, name in enumerate(pred.models):
        mid = MODEL_ID_MAP.get(name, name)
        if catalog is not None:
            try:
                mid = catalog.get(mid).id
            except Exception:
                missing.append(mid)
        profile[mid] = {str(k): round(float(P[kinds == k, j].mean()), 4) for k in sorted(set(kinds))}
    with open(path, "w", encoding="utf-8") as fh:
        if path.endswith((".yaml", ".yml")):
            yaml.safe_dump(profile, fh, sort_keys=True)
        else:
            json.dump(profile, fh, indent=2, sort_keys=True)
    return {"profile": profile, "not_in_catalog": missing, "catalog_checked": catalog is not None}
