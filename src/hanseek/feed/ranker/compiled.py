"""Fast scoring of a trained re-ranker: the same probabilities as scikit-learn's `predict_proba`,
without its per-call overhead.

A ranked feed scores one union of ~200 candidates. scikit-learn's gradient-boosted trees walk their
300 trees one parallel region each: 2.4-4.0 ms per union where scikit-learn was loaded first, and
22-25 ms in the service, where `hanseek` sets OMP_WAIT_POLICY=PASSIVE before it loads and every region
wakes sleeping threads (session 20; the whole re-ranking may add 2 ms at p50, issue 9). Its pipeline
of scaler and logistic regression pays input validation on every call (0.25 ms). Here the trees become one
ONNX `TreeEnsemble` node (ai.onnx.ml opset 5) run by onnxruntime, which the text encoder's ONNX
backend already ships: double inputs, thresholds and leaf values, so every sample takes the
branches scikit-learn takes (`x <= threshold`, a missing value where the split sends it) and the
sums differ from scikit-learn's only in the order of addition (≤ 1e-15). The logistic pipeline
becomes its scaling and product in numpy, in scikit-learn's order and precision.

A model whose estimator does not have the expected structure (another scikit-learn version, a
categorical split), or whose compiled scores differ from predict_proba's on probe rows (split values
and missing values), is scored by the estimator itself: slower, never different.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

F64 = npt.NDArray[np.float64]
Scorer = Callable[[npt.NDArray[Any]], F64]


def compile_scorer(kind: str, estimator: Any, n_features: int) -> Scorer | None:
    """A function from feature rows (the model's `n_features` columns) to P(read), or None when this
    estimator cannot be compiled (the caller then uses `estimator.predict_proba`). The compiled
    scorer is checked against predict_proba on probe rows before it is used."""
    try:
        if kind == "hgb":
            scorer, probe = _trees(estimator), _tree_probe(estimator, n_features)
        elif kind == "logistic":
            scorer, probe = _logistic(estimator), _logistic_probe(estimator, n_features)
        else:
            return None
        expected = estimator.predict_proba(probe)[:, 1]
        got = scorer(probe)
        if not np.allclose(got, expected, rtol=1e-5, atol=1e-9):
            raise ValueError(
                f"its scores differ from predict_proba's by up to {np.abs(got - expected).max():.3g}"
            )
        return scorer
    except Exception as exc:  # onnxruntime raises plain Exceptions; only speed is lost here
        log.warning(
            "ranker %s not compiled (%s: %s); scoring with scikit-learn", kind, type(exc).__name__, exc
        )
    return None


def _tree_probe(model: Any, n_features: int) -> npt.NDArray[np.float32]:
    """Rows whose values sit at the trees' split values (as float32 rounds them) or are missing."""
    rng = np.random.default_rng(0)
    probe = rng.normal(size=(64, n_features)).astype(np.float32)
    for (predictor,) in model._predictors[:50]:
        for node in predictor.nodes[~predictor.nodes["is_leaf"].astype(bool)]:
            probe[rng.integers(64), int(node["feature_idx"])] = np.float32(node["num_threshold"])
    probe[rng.random(probe.shape) < 0.05] = np.nan
    return probe


def _logistic_probe(pipeline: Any, n_features: int) -> npt.NDArray[np.float32]:
    scaler = pipeline.steps[0][1]
    rng = np.random.default_rng(0)
    return (rng.normal(size=(64, n_features)) * 2 * scaler.scale_ + scaler.mean_).astype(np.float32)


def _sigmoid(raw: F64) -> F64:
    # scipy's expit, as scikit-learn's binary log-loss uses: exact at the extremes (no overflow warning).
    from scipy.special import expit

    out: F64 = expit(raw)
    return out


def _logistic(pipeline: Any) -> Scorer:
    scaler, clf = pipeline.steps[0][1], pipeline.steps[-1][1]
    if len(pipeline.steps) != 2 or clf.coef_.shape[0] != 1:
        raise ValueError("not a scaler + binary logistic regression")
    mean, scale = np.asarray(scaler.mean_), np.asarray(scaler.scale_)
    coef_t, intercept = np.asarray(clf.coef_).T, np.asarray(clf.intercept_)

    def score(x: npt.NDArray[Any]) -> F64:
        # scikit-learn's arithmetic step for step: scaling in the input's precision (float32 features
        # stay float32), then the product with the float64 coefficients.
        x = np.asarray(x)
        dtype = x.dtype if x.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        scaled = (x.astype(dtype) - mean.astype(dtype)) / scale.astype(dtype)
        z = (scaled @ coef_t + intercept)[:, 0]
        return _sigmoid(z)

    return score


def _trees(model: Any) -> Scorer:
    import onnxruntime as ort

    if getattr(model, "n_trees_per_iteration_", 1) != 1:
        raise ValueError("not a binary classifier")
    baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
    n_features = int(model.n_features_in_)
    graph = _ensemble_graph([pred.nodes for (pred,) in model._predictors], n_features)
    options = ort.SessionOptions()
    # Two threads halve a union's 300-tree walk (0.43 against 1.01 ms for 7 leaves, session 20, on a
    # machine busy with other tests);
    # without spinning, so an idle thread does not take a core from the server's other requests.
    options.intra_op_num_threads = min(2, os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def score(x: npt.NDArray[Any]) -> F64:
        x64 = np.ascontiguousarray(x, dtype=np.float64)
        if len(x64) == 0:
            return np.zeros(0)
        raw = session.run(None, {"x": x64})[0][:, 0]
        return _sigmoid(raw + baseline)

    return score


def _ensemble_graph(trees: list[Any], n_features: int) -> bytes:
    """One ONNX TreeEnsemble over scikit-learn's tree node arrays (`TreePredictor.nodes`)."""
    from onnx import TensorProto, helper, numpy_helper

    roots: list[int] = []
    features: list[int] = []
    splits: list[float] = []
    missing_left: list[int] = []
    true_ids: list[int] = []
    true_leaf: list[int] = []
    false_ids: list[int] = []
    false_leaf: list[int] = []
    leaf_values: list[float] = []
    for nodes in trees:
        if bool(np.any(nodes["is_categorical"])):
            raise ValueError("categorical splits")
        leaf_at: dict[int, int] = {}
        for leaf in np.flatnonzero(nodes["is_leaf"]).tolist():
            leaf_at[leaf] = len(leaf_values)
            leaf_values.append(float(nodes["value"][leaf]))
        branches = [int(i) for i in np.flatnonzero(~nodes["is_leaf"].astype(bool))]
        node_at = {i: len(features) + k for k, i in enumerate(branches)}
        if not branches:
            # A tree that is one leaf: a split every value (and a missing one) takes to that leaf.
            roots.append(len(features))
            features.append(0)
            splits.append(np.inf)
            missing_left.append(1)
            true_ids.append(leaf_at[0])
            true_leaf.append(1)
            false_ids.append(leaf_at[0])
            false_leaf.append(1)
            continue
        roots.append(node_at[0])
        for i in branches:
            node = nodes[i]
            features.append(int(node["feature_idx"]))
            splits.append(float(node["num_threshold"]))
            missing_left.append(int(node["missing_go_to_left"]))
            for child, ids, leafs in (
                (int(node["left"]), true_ids, true_leaf),
                (int(node["right"]), false_ids, false_leaf),
            ):
                is_leaf = child in leaf_at
                ids.append(leaf_at[child] if is_leaf else node_at[child])
                leafs.append(int(is_leaf))
    ensemble = helper.make_node(
        "TreeEnsemble",
        ["x"],
        ["raw"],
        domain="ai.onnx.ml",
        n_targets=1,
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE: the baseline and the sigmoid are applied in float64 afterwards
        tree_roots=roots,
        nodes_featureids=features,
        nodes_splits=numpy_helper.from_array(np.array(splits, dtype=np.float64)),
        nodes_modes=numpy_helper.from_array(np.zeros(len(features), dtype=np.uint8)),  # BRANCH_LEQ
        nodes_truenodeids=true_ids,
        nodes_trueleafs=true_leaf,
        nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leaf,
        nodes_missing_value_tracks_true=missing_left,
        leaf_targetids=[0] * len(leaf_values),
        leaf_weights=numpy_helper.from_array(np.array(leaf_values, dtype=np.float64)),
    )
    graph = helper.make_graph(
        [ensemble],
        "ranker",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info("raw", TensorProto.DOUBLE, [None, 1])],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("ai.onnx.ml", 5)],
        ir_version=10,
    )
    return bytes(model.SerializeToString())
