"""Training the re-ranker from an events log with a time split.

Training examples come from sessions before `t_train_end`, validation from sessions between
`t_train_end` and `t_val_end`; the replay hands each query (a read, or a session's start) only what
was known before that moment, so neither features nor labels can see the future. The test period
(after `t_val_end`) is left to the evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from hanseek.feed.evalsets.model import EvalSet
from hanseek.feed.evaluate import WINDOWS, window_candidates
from hanseek.feed.metrics import hit_at_k, ndcg_at_k
from hanseek.feed.ranker.candidates import CandidateConfig
from hanseek.feed.ranker.features import FEATURES, group_columns
from hanseek.feed.ranker.model import HGB_GRID, RankerModel, fit
from hanseek.feed.ranker.offline import build
from hanseek.feed.replay import Query, QueryUnit, replay
from hanseek.feed.settings import FeedSettings


@dataclass
class Examples:
    x: npt.NDArray[np.float32]
    y: npt.NDArray[np.int8]
    qid: npt.NDArray[np.int32]
    query_times: list[float] = field(default_factory=list)
    queries: int = 0
    with_positive: int = 0


def collect(
    es: EvalSet,
    vecs: npt.NDArray[np.float32],
    settings: FeedSettings,
    cfg: CandidateConfig,
    *,
    start: float,
    end: float,
    max_queries: int | None,
    neg_per_query: int | None,
    seed: int,
    unit: QueryUnit = "read",
) -> Examples:
    """Feature rows of candidate unions for the queries of sessions starting in [start, end) (each
    read, or each session with unit "session"), one random window each."""
    rng = np.random.default_rng(seed)
    names = list(WINDOWS)
    xs: list[npt.NDArray[np.float32]] = []
    ys: list[npt.NDArray[np.int8]] = []
    qs: list[npt.NDArray[np.int32]] = []
    ex = Examples(np.zeros((0, len(FEATURES)), np.float32), np.zeros(0, np.int8), np.zeros(0, np.int32))

    def on_query(q: Query) -> None:
        ex.queries += 1
        ex.query_times.append(q.t)
        c = window_candidates(q, WINDOWS[names[int(rng.integers(len(names)))]])
        b = build(c, cfg)
        if b is None:
            return
        y = np.isin(c.posts[b.positions], list(q.relevant)).astype(np.int8)
        if not y.any():
            return  # nothing to learn from: the session's reads were outside the union
        ex.with_positive += 1
        keep = np.arange(len(y))
        if neg_per_query is not None:
            neg = np.flatnonzero(y == 0)
            if len(neg) > neg_per_query:
                neg = rng.choice(neg, size=neg_per_query, replace=False)
            keep = np.concatenate([np.flatnonzero(y == 1), neg])
        xs.append(b.x[keep])
        ys.append(y[keep])
        qs.append(np.full(len(keep), ex.with_positive, np.int32))

    replay(
        es,
        vecs,
        settings,
        query_from=start,
        query_to=end,
        on_query=on_query,
        max_queries=max_queries,
        seed=seed,
        unit=unit,
    )
    if xs:
        ex.x, ex.y, ex.qid = np.concatenate(xs), np.concatenate(ys), np.concatenate(qs)
    return ex


def union_metrics(model: RankerModel, ex: Examples, k: int = 20) -> dict[str, float]:
    """HR@k and nDCG@k of the model's order within each query's union (queries with a positive)."""
    hr = nd = 0.0
    n = 0
    # One scoring call and one grouping pass: per-query masks over all rows were quadratic.
    scores = model.score(ex.x)
    by_query = np.argsort(ex.qid, kind="stable")
    bounds = np.flatnonzero(np.diff(ex.qid[by_query])) + 1
    for rows in np.split(by_query, bounds) if len(by_query) else []:
        s = scores[rows]
        order = np.argsort(-s, kind="stable")
        ranked = rows[order].tolist()
        rel = set(rows[ex.y[rows] == 1].tolist())
        hr += hit_at_k(ranked, rel, k)
        nd += ndcg_at_k(ranked, rel, k)
        n += 1
    return {f"hr@{k}": round(hr / max(n, 1), 4), f"ndcg@{k}": round(nd / max(n, 1), 4), "queries": n}


@dataclass
class Trained:
    model: RankerModel
    candidates: dict[str, dict[str, Any]]  # kind -> validation metrics (and, for hgb, its setting)
    train_rows: int
    seconds: float


def train(
    es: EvalSet,
    vecs: npt.NDArray[np.float32],
    settings: FeedSettings | None = None,
    cfg: CandidateConfig | None = None,
    *,
    kinds: tuple[str, ...] = ("hgb", "logistic"),
    drop_group: str | None = None,
    max_train_queries: int = 5000,
    max_val_queries: int = 1500,
    neg_per_query: int = 40,
    seed: int = 0,
    examples: tuple[Examples, Examples] | None = None,
    hgb_params: dict[str, Any] | None = None,
    unit: QueryUnit = "read",
) -> Trained:
    """Fit each kind on the training period, keep the one with the best validation nDCG@20."""
    settings = settings or FeedSettings()
    cfg = cfg or CandidateConfig()
    started = time.perf_counter()
    t0 = float(es.ev_at.min())
    tr, va = examples or (
        collect(
            es,
            vecs,
            settings,
            cfg,
            start=t0,
            end=es.t_train_end,
            max_queries=max_train_queries,
            neg_per_query=neg_per_query,
            seed=seed,
            unit=unit,
        ),
        collect(
            es,
            vecs,
            settings,
            cfg,
            start=es.t_train_end,
            end=es.t_val_end,
            max_queries=max_val_queries,
            neg_per_query=None,
            seed=seed + 1,
            unit=unit,
        ),
    )
    if tr.y.sum() == 0 or (tr.y == 0).sum() == 0:
        raise ValueError("no usable training queries in the training period")
    features = [FEATURES[i] for i in group_columns(drop_group)]
    best: RankerModel | None = None
    scores: dict[str, dict[str, Any]] = {}
    per_kind: dict[str, RankerModel] = {}
    for kind in kinds:
        # hgb: each setting of the grid (or the one given); the best on validation represents it.
        grid: tuple[dict[str, Any] | None, ...] = (
            (hgb_params,) if hgb_params is not None else HGB_GRID if kind == "hgb" else (None,)
        )
        for params in grid:
            m = fit(kind, tr.x, tr.y, features, seed, params)
            got: dict[str, Any] = union_metrics(m, va)
            if params is not None:
                got["params"] = dict(params)
            if kind not in scores or got["ndcg@20"] > scores[kind]["ndcg@20"]:
                scores[kind], per_kind[kind] = got, m
    for kind, m in per_kind.items():
        if best is None or scores[kind]["ndcg@20"] > scores[best.kind]["ndcg@20"]:
            best = m
    assert best is not None
    meta: dict[str, Any] = {
        "set": es.name,
        "drop_group": drop_group,
        "validation": scores,
        "train_rows": len(tr.y),
        "query_unit": unit,
        "train_queries": tr.with_positive,
        "val_queries": va.with_positive,
        "train_until": es.t_train_end,
        "validate_until": es.t_val_end,
        "candidates": cfg.__dict__,
    }
    best.meta.update(meta)
    return Trained(best, scores, len(tr.y), round(time.perf_counter() - started, 1))
