"""The compiled re-ranker scores as scikit-learn's predict_proba does (same branches, float64), for
every tree setting training tries, on values at the split thresholds, missing and infinite values."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from hanseek.feed.ranker.compiled import compile_scorer
from hanseek.feed.ranker.features import FEATURES
from hanseek.feed.ranker.model import HGB_GRID, RankerModel, fit

F32 = npt.NDArray[np.float32]


def _data(n: int, seed: int = 0) -> tuple[F32, npt.NDArray[np.int8]]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    x[:, 3] = rng.integers(0, 4, size=n)  # a few distinct values: many rows sit on a threshold
    x[rng.random(x.shape) < 0.02] = np.nan
    y = (np.nan_to_num(x[:, 0]) + x[:, 1] * np.nan_to_num(x[:, 2]) + rng.normal(size=n) > 0).astype(np.int8)
    return x, y


def _probe_rows(model: RankerModel, x_train: F32) -> F32:
    """Training rows, fresh rows, rows at every threshold of the first trees, NaN and ±inf."""
    rng = np.random.default_rng(1)
    fresh = _data(500, seed=2)[0]
    rows = [x_train[:500], fresh]
    for (predictor,) in model.estimator._predictors[:20]:
        for node in predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]:
            row = fresh[rng.integers(len(fresh))].copy()
            row[model._cols[int(node["feature_idx"])]] = np.float32(node["num_threshold"])
            rows.append(row[None, :])
    special = fresh[:30].copy()
    special[:10, :] = np.nan
    special[10:20, :] = np.inf
    special[20:30, :] = -np.inf
    rows.append(special)
    return np.concatenate(rows).astype(np.float32)


@pytest.mark.parametrize("params", HGB_GRID, ids=lambda p: f"{p['max_leaf_nodes']}-leaves")
def test_trees_score_as_scikit_learn_does(params: dict[str, Any]) -> None:
    x, y = _data(4000)
    model = fit("hgb", x, y, list(FEATURES), params=params)
    assert model.scorer is not None
    probe = _probe_rows(model, x)
    expected = model.estimator.predict_proba(probe[:, model._cols])[:, 1]
    got = model.score(probe)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # The same order, ties included (equal leaves give equal sums).
    assert (np.argsort(-got, kind="stable") == np.argsort(-expected, kind="stable")).mean() > 0.999


def test_a_value_at_a_split_takes_the_branch_scikit_learn_takes() -> None:
    """Splits sit between two float32 values, at a float64 midpoint that float32 may round up or down:
    a one-feature model (every row's path meets every split of its value) probed at each split's
    float32 rounding and one step either side."""
    rng = np.random.default_rng(4)
    x = np.zeros((3000, len(FEATURES)), dtype=np.float32)
    x[:, 0] = (rng.integers(0, 40, size=3000) * 0.1).astype(np.float32)
    y = (np.sin(x[:, 0] * 3) + rng.normal(scale=0.5, size=3000) > 0).astype(np.int8)
    model = fit("hgb", x, y, [FEATURES[0]], params=HGB_GRID[0])
    nodes = [p.nodes for (p,) in model.estimator._predictors]
    splits = np.unique(np.concatenate([n["num_threshold"][n["is_leaf"] == 0] for n in nodes]))
    at = splits.astype(np.float32)
    assert (at.astype(np.float64) > splits).any() and (at.astype(np.float64) < splits).any()  # both roundings
    values = np.concatenate([at, np.nextafter(at, np.float32(np.inf)), np.nextafter(at, np.float32(-np.inf))])
    probe = np.zeros((len(values), len(FEATURES)), dtype=np.float32)
    probe[:, 0] = values
    expected = model.estimator.predict_proba(probe[:, model._cols])[:, 1]
    np.testing.assert_allclose(model.score(probe), expected, rtol=0, atol=1e-12)


def test_a_subset_of_features_and_a_saved_model_score_the_same(tmp_path: Path) -> None:
    x, y = _data(3000)
    features = [f for i, f in enumerate(FEATURES) if i % 3 != 1]
    model = fit("hgb", x, y, features, params=HGB_GRID[2])
    model.save(tmp_path / "m.joblib")
    loaded = RankerModel.load(tmp_path / "m.joblib")
    assert loaded.scorer is not None  # compiled again on load: the session is not pickled
    probe = _probe_rows(model, x)
    expected = model.estimator.predict_proba(probe[:, model._cols])[:, 1]
    np.testing.assert_allclose(loaded.score(probe), expected, rtol=0, atol=1e-12)


def test_trees_that_are_one_leaf_score_their_value() -> None:
    x, y = _data(100)
    est = HistGradientBoostingClassifier(max_iter=5, min_samples_leaf=60, early_stopping=False).fit(x, y)
    assert all(len(p.nodes) == 1 for (p,) in est._predictors)  # no split could keep 60 rows a side
    scorer = compile_scorer("hgb", est, len(FEATURES))
    assert scorer is not None
    np.testing.assert_allclose(scorer(x), est.predict_proba(x)[:, 1], rtol=0, atol=1e-12)


def test_logistic_scores_as_scikit_learn_does() -> None:
    x, y = _data(3000)
    x = np.nan_to_num(x)  # the logistic pipeline is trained on finite features
    model = fit("logistic", x, y, list(FEATURES))
    assert model.scorer is not None
    probe = np.nan_to_num(_data(500, seed=3)[0]) * 50  # far out too, where the sigmoid saturates
    expected = model.estimator.predict_proba(probe[:, model._cols])[:, 1]
    # float32 features are scaled and multiplied in float32, as scikit-learn does; its own float32
    # products differ by a few units in the last place with the array's memory layout (3.7e-7 between
    # an array and its copy), so that is the tolerance here.
    np.testing.assert_allclose(model.score(probe), expected, rtol=5e-6, atol=1e-30)
    probe64 = probe.astype(np.float64)
    np.testing.assert_allclose(
        model.scorer(probe64), model.estimator.predict_proba(probe64)[:, 1], rtol=1e-12, atol=1e-300
    )


def test_an_estimator_it_cannot_compile_is_scored_by_itself(caplog: pytest.LogCaptureFixture) -> None:
    x, y = _data(2000)
    x[:, 3] = np.nan_to_num(x[:, 3])  # a categorical feature: categories 0-3
    est = HistGradientBoostingClassifier(
        max_iter=20, categorical_features=[3], early_stopping=False, random_state=0
    ).fit(x, y)
    with caplog.at_level(logging.WARNING, logger="hanseek.feed.ranker.compiled"):
        model = RankerModel("hgb", list(FEATURES), est)
    assert model.scorer is None and "categorical" in caplog.text
    np.testing.assert_array_equal(model.score(x[:50]), est.predict_proba(x[:50])[:, 1])


def test_a_compiled_scorer_that_disagrees_is_not_used(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The probe check at compile time: here a split's missing values sent the other way."""
    from hanseek.feed.ranker import compiled

    real = compiled._ensemble_graph

    def flipped(trees: list[Any], n_features: int) -> bytes:
        trees = [t.copy() for t in trees]
        for t in trees:
            t["missing_go_to_left"] = 1 - t["missing_go_to_left"]
        return real(trees, n_features)

    monkeypatch.setattr(compiled, "_ensemble_graph", flipped)
    x, y = _data(2000)
    with caplog.at_level(logging.WARNING, logger="hanseek.feed.ranker.compiled"):
        model = fit("hgb", x, y, list(FEATURES), params=HGB_GRID[2])
    assert model.scorer is None and "differ from predict_proba" in caplog.text
    np.testing.assert_array_equal(model.score(x[:50]), model.estimator.predict_proba(x[:50])[:, 1])


def test_empty_input_scores_nothing() -> None:
    x, y = _data(1000)
    model = fit("hgb", x, y, list(FEATURES), params=HGB_GRID[2])
    assert model.score(np.zeros((0, len(FEATURES)), dtype=np.float32)).shape == (0,)
