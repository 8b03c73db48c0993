"""A learned task-fit predictor at run time: load a trained model and predict each
model's quality for a prompt from cheap features.

numpy only. Features: hashed word uni/bigrams and char 3-grams (crc32, so stable
across processes), the router task kind (one-hot) and the log prompt length. Kinds:
``knn`` (cosine, k nearest), ``ridge`` (kernel form), ``logistic`` (multi-output) and
``mlp`` (one hidden layer). The router then picks by expected utility
``quality - lambda * cost``.

`LearnedPredictor` implements the router's ``QualityPredictor`` protocol
(``predict(features, text, model_ids) -> {model_id: quality} | None``) and is stored
as ``<prefix>.npz`` + ``<prefix>.json`` (no pickle). Training lives in
`benchmarks.learned`, which builds these objects; this module never imports it.
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from typing import Any, Sequence

from router.types import TASK_KINDS

__all__ = ["KINDS", "DEFAULT_HP", "featurize", "LearnedPredictor"]

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
    return TASK_KINDS


def featurize(texts: Sequence[str], kinds: Sequence[str], dim: int = 4096) -> Any:
    """(n, dim + len(TASK_KINDS) + 1) float32 feature matrix."""
    import numpy as np  # lazy: import time (numpy is only needed once a predictor is configured)

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
    import numpy as np  # lazy: import time

    return 1.0 / (1.0 + np.exp(-np.clip(z, -30, 30)))


class LearnedPredictor:
    """A trained quality predictor over a fixed set of models.

    `models` are the names the model was trained under (dataset columns); `model_ids`
    the catalog ids they answer to (default: the same names)."""

    def __init__(self, kind: str, models: list[str], arrays: dict[str, Any], *, dim: int = 4096,
                 meta: dict[str, Any] | None = None, model_ids: Sequence[str] | None = None):
        if kind not in KINDS:
            raise ValueError(f"unknown learned model kind {kind!r}; choose from {KINDS}")
        self.kind, self.models, self.arrays, self.dim = kind, list(models), arrays, dim
        self.meta = dict(meta or {})
        self.model_ids = list(model_ids) if model_ids is not None else list(self.models)

    # ---------------------------------------------------------------- prediction
    def predict_matrix(self, X: Any) -> Any:
        """(n, M) predicted quality in 0..1."""
        import numpy as np  # lazy: import time

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
        import numpy as np  # lazy: import time

        prefix = _prefix(path)
        os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
        np.savez_compressed(prefix + ".npz", **self.arrays)
        with open(prefix + ".json", "w", encoding="utf-8") as fh:
            json.dump({"format": "quotaroute-learned/1", "kind": self.kind, "models": self.models,
                       "model_ids": self.model_ids, "dim": self.dim, "meta": self.meta}, fh, indent=2)
        return prefix + ".npz", prefix + ".json"

    @classmethod
    def load(cls, path: str) -> "LearnedPredictor":
        import numpy as np  # lazy: import time

        prefix = _prefix(path)
        with open(prefix + ".json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        if cfg.get("format") != "quotaroute-learned/1":
            raise ValueError(f"{prefix}.json: not a quotaroute learned-router file")
        with np.load(prefix + ".npz", allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        return cls(cfg["kind"], cfg["models"], arrays, dim=int(cfg["dim"]), meta=cfg.get("meta"),
                   model_ids=cfg.get("model_ids"))


def _prefix(path: str) -> str:
    for ext in (".npz", ".json"):
        if path.endswith(ext):
            return path[: -len(ext)]
    return path
