"""What a trained re-ranker adds to a ranked feed request at 1M posts, scored by scikit-learn and
compiled (`hanseek.feed.ranker.compiled`).

bench.feed times the ranked feed with the hand-tuned blend (its database has no trained model).
Here the models `hanseek feed train-ranker` can produce — logistic regression and the gradient-
boosted trees of each `HGB_GRID` setting (300 trees of 31, 15 or 7 leaves) — are fitted on feature
rows of synthetic candidate unions (bench.ranker_features; labels drawn from the blend's score, so
the trees grow to their full size) and served in turn by the same FeedService on bench.feed's kept
database:

- `scoring`: the model's score of one 200-row union alone, scikit-learn's predict_proba against
  the compiled scorer, each in a block of its own; medians in µs and their ratio;
- `feed`: for each sampled user, the similarity feed, then the ranked feed with each compiled model
  (and the blend) in turn, so all see the same cache state; p50 per variant and what it adds to the
  similarity feed (`added_p50_ms`: the difference of the two p50s; `added_paired_median_ms`: the
  median of each user's ranked less similar request). `feed_sklearn_scoring`: the same pass with
  the models scored by scikit-learn.

    python -m bench.feed --posts 1000000 --http-requests 0 --keep DIR   # once: loads the database
    python -m bench.ranker_serving --keep DIR [--posts 1000000] [--queries 200]

Prints JSON.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import emit, machine, percentiles_ms
from bench.feed import COMMUNITIES, NOW, WINDOW, K, log
from bench.ranker_features import synthetic_signals, synthetic_union
from hanseek.config import Settings
from hanseek.feed.ranker import features as fx
from hanseek.feed.ranker.model import HGB_GRID, RankerModel, blend_model, fit
from hanseek.feed.service import FeedService
from hanseek.feed.settings import FeedSettings
from hanseek.store.db import Database


def training_rows(unions: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Feature rows of synthetic unions, labelled read with a probability rising with the blend's
    score (`read_share` in the output), so the trees have signal to split on down to their leaf limit."""
    rng = np.random.default_rng(seed)
    names = [f"c{i:03d}" for i in range(COMMUNITIES)]
    rows = []
    for _ in range(unions):
        comms = [names[c] for c in rng.choice(COMMUNITIES, size=int(rng.integers(3, 11)), replace=False)]
        rows.append(fx.compute(synthetic_union(rng, comms), synthetic_signals(rng, comms)))
    x = np.concatenate(rows).astype(np.float32)
    s = blend_model().score(x)
    z = (s - s.mean()) / s.std() * 1.5 - 3.0
    y = (rng.random(len(x)) < 1 / (1 + np.exp(-z))).astype(np.int8)
    return x, y


def variants(x: np.ndarray, y: np.ndarray) -> dict[str, RankerModel]:
    models: dict[str, RankerModel] = {"blend": blend_model()}
    fitted = {"logistic": fit("logistic", x, y, list(fx.FEATURES))}
    for params in HGB_GRID:
        fitted[f"hgb-{params['max_leaf_nodes']}-leaves"] = fit("hgb", x, y, list(fx.FEATURES), params=params)
    for name, model in fitted.items():
        assert model.scorer is not None, f"{name} was not compiled"
        sklearn = RankerModel(model.kind, model.features, model.estimator, meta={"name": f"{name} sklearn"})
        sklearn.scorer = None  # scored by the estimator's predict_proba, as before session 20
        model.meta["name"] = f"{name} compiled"
        models[f"{name} sklearn"] = sklearn
        models[f"{name} compiled"] = model
    return models


def scoring(models: dict[str, RankerModel], reps: int) -> dict[str, Any]:
    """Each model timed in a block of its own: scikit-learn's OpenMP threads keep spinning for a
    while after each of its calls, and timed in between, other models' calls were 2x slower."""
    rng = np.random.default_rng(7)
    names = [f"c{i:03d}" for i in range(COMMUNITIES)]
    unions = []
    for _ in range(20):
        comms = [names[c] for c in rng.choice(COMMUNITIES, size=5, replace=False)]
        unions.append(fx.compute(synthetic_union(rng, comms), synthetic_signals(rng, comms)))
    lat: dict[str, list[float]] = {name: [] for name in models}
    for name, model in models.items():
        model.score(unions[0])
        for _ in range(reps):
            for u in unions:
                t = time.perf_counter()
                model.score(u)
                lat[name].append(time.perf_counter() - t)
    out: dict[str, Any] = {name: {"p50_us": round(float(np.median(v)) * 1e6, 1)} for name, v in lat.items()}
    for name in models:
        if name.endswith(" compiled"):
            base = name.removesuffix(" compiled") + " sklearn"
            out[name]["sklearn_over_compiled"] = round(float(np.median(lat[base]) / np.median(lat[name])), 2)
    return out


def pin(svc: FeedService, model: RankerModel) -> None:
    """Serve `model` until pinned otherwise: the service polls the catalogue only every
    `ranker_poll_seconds` (here 1e9, after the first request), so the model it holds is the one served."""
    svc.ranker._model = model


def feed(svc: FeedService, models: dict[str, RankerModel], sample: list[str]) -> dict[str, Any]:
    lat: dict[str, list[float]] = {name: [] for name in ["similar", *models]}
    for u in sample:
        t = time.perf_counter()
        svc.feed(u, k=K, days=WINDOW, path="exact", at=NOW, method="similar")
        lat["similar"].append(time.perf_counter() - t)
        for name, model in models.items():
            pin(svc, model)
            t = time.perf_counter()
            out = svc.feed(u, k=K, days=WINDOW, path="exact", at=NOW, method="ranked")
            lat[name].append(time.perf_counter() - t)
            assert out.ranker == model.meta.get("name", model.kind)
    res: dict[str, Any] = {name: percentiles_ms(v) for name, v in lat.items()}
    for name in models:
        res[name]["added_p50_ms"] = round(res[name]["p50_ms"] - res["similar"]["p50_ms"], 3)
        # Each user's ranked request less its similar one, taken moments apart: the machine's speed
        # drifts within a run, and the pairs cancel most of that.
        paired = np.asarray(lat[name]) - np.asarray(lat["similar"])
        res[name]["added_paired_median_ms"] = round(float(np.median(paired)) * 1e3, 3)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", type=Path, required=True, help="bench.feed's kept database")
    ap.add_argument("--posts", type=int, default=1_000_000)
    ap.add_argument("--users", type=int, default=400, help="as bench.feed loaded them")
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--train-unions", type=int, default=400)
    ap.add_argument("--reps", type=int, default=20, help="scoring: passes over 20 unions")
    args = ap.parse_args()
    if not any(args.keep.glob(f"loaded-{args.posts}-*")):
        ap.error(f"{args.keep} holds no database of {args.posts:,} posts loaded by bench.feed")

    log(f"fitting the models on {args.train_unions} synthetic unions")
    x, y = training_rows(args.train_unions)
    models = variants(x, y)
    result: dict[str, Any] = {
        "bench": "ranker_serving",
        "posts": args.posts,
        "training_rows": len(x),
        "read_share": round(float(y.mean()), 4),
        "union": 200,
    }
    log("scoring alone")
    result["scoring"] = scoring(models, args.reps)

    settings = Settings(data_dir=args.keep, database_url=None, pool_min_size=1, pool_max_size=4)
    db = Database.open(settings)
    try:
        log("loading the in-process index")
        svc = FeedService(
            db, settings=FeedSettings(ranker_poll_seconds=1e9), load_in_background=False, follow=False
        )
        rng = np.random.default_rng(5)  # bench.feed's sample
        sample = [f"u{int(rng.integers(args.users))}" for _ in range(args.queries)]
        for u in sample[:20]:  # warm the caches this sample reads
            svc.feed(u, k=K, days=WINDOW, path="exact", at=NOW, method="ranked")
        # Two passes, each interleaved per user with the similarity feed: scikit-learn's spinning
        # threads would slow whatever runs next, so its variants are not mixed with the others.
        compiled = {k: m for k, m in models.items() if not k.endswith(" sklearn")}
        sklearn = {k: m for k, m in models.items() if k.endswith(" sklearn")}
        log(f"feed requests: {len(sample)} users x (similar + {len(compiled)} ranked variants), interleaved")
        result["feed"] = feed(svc, compiled, sample)
        log(f"feed requests: {len(sample)} users x (similar + {len(sklearn)} ranked variants), interleaved")
        result["feed_sklearn_scoring"] = feed(svc, sklearn, sample)
    finally:
        db.close()
    result["machine"] = machine()
    emit(result)


if __name__ == "__main__":
    main()
