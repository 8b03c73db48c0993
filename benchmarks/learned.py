"""Learned task fit: predict each model's quality for a prompt from cheap features.

numpy only, trains in seconds on a CPU. Features: hashed word uni/bigrams and char
3-grams (crc32, so stable across processes), the router task kind (one-hot) and the
log prompt length. Models: ``knn`` (cosine, k nearest), ``ridge`` (kernel form),
``logistic`` (multi-output, Adam) and ``mlp`` (one hidden layer, Adam). The router
then picks by expected utility ``quality - lambda * cost``.

`LearnedPredictor` implements the router's ``QualityPredictor`` protocol
(``predict(features, text, model_ids) -> {model_id: quality} | None``) and saves as
``<prefix>.npz`` + ``<prefix>.json`` (no pickle).
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from typing import Any, Sequence

from benchmarks.datasets import MODEL_ID_MAP, Dataset

__all__ = ["KINDS", "DEFAULT_HP", "featurize", "LearnedPredictor", "train", "export_profile"]

KINDS = ("knn", "ridge", "logistic", "mlp")
# Defaults tuned on a validation split of the RouterBench train split (docs/replay-benchmark.md).
DEFAULT_HP: dict[str, dict[str, Any]] = {
    "knn": {"k": 50},
    "ridge": {"alpha": 30.0},
    "logistic": {"l2": 1e-3, "steps": 100},
    "mlp": {"l2": 1e-2, "steps": 60, "hidden": 32},
}
_WORD = re.compile(r"[a-z0-9_]+")


def _task_kinds() -> tuple[str, ...]:
    from router.types import TASK_KINDS

    return TASK_KINDS


def featurize(texts: Sequence[str], kinds: Sequence[str], dim: int = 4096) -> Any:
    """(n, dim + len(TASK_KINDS) + 1) float32 feature matrix."""
    import numpy as np

    tk = _task_kinds()
    n = len(texts)
    X = np.zeros((n, dim + len(tk) + 1), dtype=np.float32)
    half = dim // 2
    for i, text in enumerate(texts):
        low = text.lower()
        words = _WORD.findall(low)
        feats_w = words + [a + " " + b for a, b in zip(words, words[1:])]
        hw = [zlib.crc32(w.encode()) % half for w in feats_w]
        squeezed = " ".join(words)
        hc = [half + zlib.crc32(squeezed[j : j + 3].encode()) % half for j in range(max(0, len(squeezed) - 2))]
        if hw:
            np.add.at(X[i], hw, 1.0)
        if hc:
            np.add.at(X[i], hc, 1.0)
        row = X[i, :dim]
        np.log1p(row, out=row)
        for lo, hi in ((0, half), (half, dim)):
            nrm = float(np.linalg.norm(row[lo:hi]))
            if nrm > 0:
                row[lo:hi] /= nrm
        k = kinds[i]
        if k in tk:
            X[i, dim + tk.index(k)] = 1.0
        X[i, -1] = math.log1p(len(text)) / 10.0
    return X


def _sigmoid(z: Any) -> Any:
    import numpy as np

    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


def _adam_fit(params: dict[str, Any], grad_fn: Any, steps: int, lr: float) -> None:
    import numpy as np

    m = {k: np.zeros_like(v) for k, v in params.items()}
    v2 = {k: np.zeros_like(v) for k, v in params.items()}
    for t in range(1, steps + 1):
        grads = grad_fn(params)
        for k in params:
            m[k] = 0.9 * m[k] + 0.1 * grads[k]
            v2[k] = 0.999 * v2[k] + 0.001 * grads[k] ** 2
            mh, vh = m[k] / (1 - 0.9**t), v2[k] / (1 - 0.999**t)
            params[k] -= lr * mh / (np.sqrt(vh) + 1e-8)


class LearnedPredictor:
    """A trained quality predictor over a fixed set of models."""

    def __init__(self, kind: str, models: list[str], arrays: dict[str, Any], *, dim: int = 4096, meta: dict[str, Any] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown learned model kind {kind!r}; choose from {KINDS}")
        self.kind, self.models, self.arrays, self.dim = kind, list(models), arrays, dim
        self.meta = dict(meta or {})
        self.model_ids = [MODEL_ID_MAP.get(m, m) for m in self.models]

    # ---------------------------------------------------------------- prediction
    def predict_matrix(self, X: Any) -> Any:
        """(n, M) predicted quality in 0..1."""
        import numpy as np

        a = self.arrays
        if self.kind == "knn":
            S = X @ a["X"].T.astype(np.float32)
            k = min(int(a["k"][0]), S.shape[1])
            top = np.argpartition(-S, k - 1, axis=1)[:, :k]
            w = np.maximum(np.take_along_axis(S, top, axis=1), 0) + 1e-6
            P = np.einsum("nk,nkm->nm", w, a["Y"][top]) / w.sum(1, keepdims=True)
        elif self.kind == "ridge":
            P = X @ a["W"] + a["b"]
        elif self.kind == "logistic":
            P = _sigmoid(X @ a["W"] + a["b"])
        else:
            H = np.maximum(X @ a["W1"] + a["b1"], 0)
            P = _sigmoid(H @ a["W2"] + a["b2"])
        return np.clip(P, 0.0, 1.0)

    def predict_texts(self, texts: Sequence[str], kinds: Sequence[str]) -> Any:
        return self.predict_matrix(featurize(texts, kinds, self.dim))

    def predict(self, features: Any, text: str, model_ids: Sequence[str]) -> dict[str, float] | None:
        """Router `QualityPredictor` protocol: quality per requested model id, or None
        when this predictor knows none of them. Accepts catalog ids or dataset names."""
        known = {}
        for mid in model_ids:
            if mid in self.model_ids:
                known[mid] = self.model_ids.index(mid)
            elif mid in self.models:
                known[mid] = self.models.index(mid)
        if not known:
            return None
        kind = getattr(features, "task", None) or "chat"
        row = self.predict_texts([text], [kind])[0]
        return {mid: float(row[j]) for mid, j in known.items()}

    # ---------------------------------------------------------------- persistence
    def save(self, path: str) -> tuple[str, str]:
        """Write ``<prefix>.npz`` (arrays, no pickle) and ``<prefix>.json`` (config)."""
        import numpy as np

        prefix = _prefix(path)
        os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
        np.savez_compressed(prefix + ".npz", **self.arrays)
        with open(prefix + ".json", "w", encoding="utf-8") as fh:
            json.dump({"format": "quotaroute-learned/1", "kind": self.kind, "models": self.models,
                       "model_ids": self.model_ids, "dim": self.dim, "meta": self.meta}, fh, indent=2)
        return prefix + ".npz", prefix + ".json"

    @classmethod
    def load(cls, path: str) -> "LearnedPredictor":
        import numpy as np

        prefix = _prefix(path)
        with open(prefix + ".json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        if cfg.get("format") != "quotaroute-learned/1":
            raise ValueError(f"{prefix}.json: not a quotaroute learned-router file")
        with np.load(prefix + ".npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(cfg["kind"], cfg["models"], arrays, dim=int(cfg["dim"]), meta=cfg.get("meta"))


def _prefix(path: str) -> str:
    for ext in (".npz", ".json"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path


def train(ds: Dataset, kind: str = "ridge", *, dim: int = 4096, seed: int = 0, X: Any = None, **hp: Any) -> LearnedPredictor:
    """Fit one predictor on all prompts of `ds` (pass `X` to reuse features);
    hyperparameters default to `DEFAULT_HP[kind]`."""
    import numpy as np

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
    return LearnedPredictor(kind, ds.models, arrays, dim=dim, meta={"trained_on": ds.name, "n_train": n, **{k: v for k, v in hp.items() if isinstance(v, (int, float, str))}})


def export_profile(pred: LearnedPredictor, ds: Dataset, path: str) -> dict[str, Any]:
    """Write the learned per-task-kind quality as the catalog's task-fit profile
    ``{model_id: {task_kind: quality}}`` (YAML or JSON by extension): the mean
    prediction over `ds`'s prompts of each kind, under the model's catalog id
    (`MODEL_ID_MAP`). Ids the current catalog does not know are still written (the
    catalog ignores them until such a model is added) and returned in
    ``not_in_catalog`` so the caller can say so."""
    import numpy as np

    P = pred.predict_texts(ds.prompts, ds.task_kinds())
    kinds = np.array(ds.task_kinds())
    try:
        from router.catalog import load_catalog

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
            import yaml

            yaml.safe_dump(profile, fh, sort_keys=True)
        else:
            json.dump(profile, fh, indent=2, sort_keys=True)
    return {"profile": profile, "not_in_catalog": missing, "catalog_checked": catalog is not None}
