"""Re-ranker models: a learned scorer (gradient-boosted trees or logistic regression over the
features) and the hand-tuned linear blend used when no model has been trained."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hanseek.feed.ranker.compiled import Scorer, compile_scorer
from hanseek.feed.ranker.features import FEATURES
from hanseek.files import atomic_file, write_text_atomic

F32 = npt.NDArray[np.float32]

# Hand-tuned blend: set by reasoning about the features' ranges (cosines ~0.7–0.95 for e5, log-ages
# 0–9, log-popularity 0–14), not fitted: similar posts and recent posts first, popularity as a tie
# breaker, a bonus for posts the candidate sources agree on.
BLEND_WEIGHTS: dict[str, float] = {
    "cos_long": 8.0,
    "cos_short_max": 6.0,
    "log_age_h": -0.8,
    "log_pop": 0.15,
    "trend_1d": 0.3,
    "community_share": 1.0,
    "src_similar": 0.2,
    "src_short": 0.2,
}


@dataclass
class RankerModel:
    kind: str  # "hgb" | "logistic" | "blend"
    features: list[str] = field(default_factory=lambda: list(FEATURES))
    estimator: Any = None
    weights: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # The estimator's predict_proba, compiled (`ranker.compiled`): what a ranked request scores with.
    scorer: Scorer | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = [f for f in self.features if f not in FEATURES]
        if unknown:
            raise ValueError(f"unknown features {unknown}")
        self._cols = [FEATURES.index(f) for f in self.features]
        if self.kind != "blend" and self.estimator is not None:
            self.scorer = compile_scorer(self.kind, self.estimator, len(self.features))

    def uses(self, feature: str) -> bool:
        """Whether the feature can change this model's scores, so serving may skip work for the
        ones that cannot (a blend reads only its non-zero weights; a trained model its columns)."""
        if feature not in self.features:
            return False
        return self.kind != "blend" or self.weights.get(feature, 0.0) != 0.0

    def score(self, x_full: F32) -> npt.NDArray[np.float64]:
        """Higher is better; `x_full` has every column of FEATURES."""
        if len(x_full) == 0:
            return np.zeros(0)
        x = x_full[:, self._cols]
        if self.kind == "blend":
            w = np.array([self.weights.get(f, 0.0) for f in self.features])
            return (x.astype(np.float64) @ w).astype(np.float64)
        if self.scorer is not None:
            return self.scorer(x)
        proba = self.estimator.predict_proba(x)[:, 1]
        out: npt.NDArray[np.float64] = np.asarray(proba, dtype=np.float64)
        return out

    def save(self, path: Path) -> None:
        """Write the model to `path` whole or not at all (a temporary `.NAME.<random>.tmp` beside it,
        then a rename), and a readable `.json` sidecar. The registry gives every save its own file
        name, so a file a catalogue row points at is never rewritten."""
        import joblib

        with atomic_file(path, binary=True, fsync=True) as fh:
            joblib.dump(
                {
                    "kind": self.kind,
                    "features": self.features,
                    "estimator": self.estimator,
                    "weights": self.weights,
                    "meta": self.meta,
                },
                fh,
            )
        write_text_atomic(
            path.with_suffix(".json"),
            json.dumps(
                {"kind": self.kind, "features": self.features, "meta": self.meta},
                indent=2,
                ensure_ascii=False,
                default=str,
            ),
        )

    @staticmethod
    def load(path: Path) -> RankerModel:
        import joblib

        # Only files this service wrote under its own data dir are ever loaded (joblib = pickle).
        d = joblib.load(path)
        return RankerModel(d["kind"], d["features"], d["estimator"], d["weights"], d["meta"])


def blend_model() -> RankerModel:
    return RankerModel("blend", list(FEATURES), None, dict(BLEND_WEIGHTS), {"name": "blend"})


# Gradient-boosted trees' settings tried by `train`; the one with the best validation nDCG@20 wins
# (the first was the only setting before; smaller trees with larger leaves generalise a little better
# over users on the petition sets' validation splits).
HGB_GRID: tuple[dict[str, Any], ...] = (
    {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 31, "min_samples_leaf": 40},
    {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 15, "min_samples_leaf": 200},
    {"learning_rate": 0.05, "max_iter": 300, "max_leaf_nodes": 7, "min_samples_leaf": 200},
)


def fit(
    kind: str,
    x: F32,
    y: npt.NDArray[np.int8],
    features: list[str],
    seed: int = 0,
    params: dict[str, Any] | None = None,
) -> RankerModel:
    """Pointwise: read (1) vs shown-but-not-read (0) over the candidate unions. `params`: the hgb
    setting (default: HGB_GRID[0])."""
    cols = [FEATURES.index(f) for f in features]
    xs = x[:, cols]
    est: Any
    if kind == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        est = HistGradientBoostingClassifier(
            **(params or HGB_GRID[0]),
            l2_regularization=1.0,
            early_stopping=False,
            random_state=seed,
        )
    elif kind == "logistic":
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        est = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    else:
        raise ValueError(f"unknown ranker kind {kind!r}")
    est.fit(xs, y)
    return RankerModel(
        kind, features, est, meta={"params": dict(params or HGB_GRID[0])} if kind == "hgb" else {}
    )
