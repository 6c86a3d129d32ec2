"""Fit a baseline or transformer classifier on a domain's splits and score it on held-out data."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hanseek.sentiment.baseline import BaselineClassifier, BaselineConfig
from hanseek.sentiment.datasets import DEFAULT_SEED, Reviews, concat
from hanseek.sentiment.registry import ModelKind, SentimentModel
from hanseek.sentiment.transformer import TransformerClassifier, TransformerConfig
from hanseek.text.analyzer import KoreanAnalyzer

Say = Callable[[str, int, int], None]  # (phase, done, total)
AnalyzerFactory = Callable[[str], KoreanAnalyzer]  # Kiwi model type -> analyzer


@dataclass(frozen=True)
class TrainOptions:
    kind: ModelKind = "baseline"
    train_size: int | None = None  # stratified cap on training reviews
    dev_size: int | None = None  # cap on dev reviews (transformer: C selection, epoch scores)
    baseline: BaselineConfig = field(default_factory=BaselineConfig)
    transformer: TransformerConfig = field(default_factory=TransformerConfig)
    # The baseline's hyper-parameters are fixed (tuned once on NSMC dev), so it can also learn from
    # the dev split; the transformer uses dev to pick its head's C and must not train on it.
    baseline_uses_dev: bool = True
    seed: int = DEFAULT_SEED

    def config_json(self) -> dict[str, Any]:
        cfg = self.baseline.to_json() if self.kind == "baseline" else self.transformer.to_json()
        return {**cfg, "train_size_cap": self.train_size, "dev_size_cap": self.dev_size}


@dataclass
class Fitted:
    model: SentimentModel
    train_size: int
    dev_size: int
    seconds: float
    info: dict[str, Any]


def accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return (
        float(((probabilities >= 0.5).astype(np.int64) == np.asarray(labels)).mean()) if len(labels) else 0.0
    )


def fit(
    opts: TrainOptions,
    train: Reviews,
    dev: Reviews,
    *,
    analyzer_factory: AnalyzerFactory,
    base_model_dir: Callable[[str], Path | str] | None = None,
    say: Say | None = None,
    morph_cache: dict[str, str] | None = None,
    embeddings: Callable[[list[str]], np.ndarray] | None = None,
) -> Fitted:
    """Train `opts.kind` on `train` (capped by `opts.train_size`), with `dev` as described above.
    `morph_cache` / `embeddings` (frozen-encoder vectors by text) let several models share work."""
    report = say or (lambda _p, _d, _t: None)
    tr = train.sample(opts.train_size, opts.seed)
    dv = dev.sample(opts.dev_size, opts.seed + 2)
    t0 = time.perf_counter()
    if opts.kind == "baseline":
        data = concat([tr, dv], tr.domain) if opts.baseline_uses_dev else tr
        analyzer = analyzer_factory(opts.baseline.kiwi_model) if opts.baseline.use_morph else None
        base = BaselineClassifier(analyzer, opts.baseline, morph_cache=morph_cache)
        base.fit(data.texts, data.labels, progress=lambda m: report(m, 0, 0))
        info: dict[str, Any] = {"timings": base.timings, "features": base.n_features}
        used_train, used_dev = len(data), 0
        model: SentimentModel = base
    elif opts.kind == "transformer":
        if base_model_dir is None:
            raise ValueError("the transformer needs a base model directory resolver")
        clf = TransformerClassifier.from_base(base_model_dir(opts.transformer.base_model), opts.transformer)
        dev_pair = (dv.texts, dv.labels) if len(dv) else None
        shared = None
        if embeddings is not None and opts.transformer.freeze_layers is None:
            shared = (embeddings(tr.texts), embeddings(dv.texts) if len(dv) else None)
        clf.fit(tr.texts, tr.labels, dev=dev_pair, progress=report, embeddings=shared)
        info = dict(clf.info)
        used_train, used_dev = len(tr), len(dv)
        model = clf
    else:
        raise ValueError(f"unknown model kind {opts.kind!r}")
    return Fitted(model, used_train, used_dev, round(time.perf_counter() - t0, 2), info)


def evaluate(model: SentimentModel, tests: dict[str, Reviews], batch: int = 2048) -> dict[str, float]:
    """Accuracy on each named held-out set."""
    out = {}
    for name, rev in tests.items():
        probs = [model.predict_proba(rev.texts[i : i + batch]) for i in range(0, len(rev), batch)]
        out[name] = round(accuracy(np.concatenate(probs) if probs else np.zeros(0), rev.labels), 4)
    return out
