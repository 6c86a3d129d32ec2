"""Sentiment: baseline training time on NSMC train, and texts/s of the baseline and the transformer.

- Training: the TF-IDF (Kiwi morphemes 1–3 + char_wb 1–4) NB-weighted logistic-regression baseline on
  the deduplicated NSMC train split (146k reviews), and the char 1–4-gram-only reference, both scored
  once on the official NSMC test split. Wall seconds and process CPU seconds (all threads): the machine
  is shared, so the load average is reported next to them.
- Inference: texts/s over NSMC test reviews at batch 256 (baseline) and 32 (transformer), and the
  median single-review latency. The transformer is e5-small frozen with a logistic head trained on a
  small sample first (not timed): its speed does not depend on the head.

    python -m bench.sentiment [--train-size N] [--skip-train] [--probe-train 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._util import emit, percentiles_ms, time_calls
from hanseek.config import load_settings
from hanseek.sentiment.baseline import DEFAULT_KIWI_MODEL, BaselineClassifier, BaselineConfig
from hanseek.sentiment.datasets import DomainData, concat, default_sources, find_source, load_domain
from hanseek.sentiment.training import accuracy
from hanseek.text.analyzer import KoreanAnalyzer

REPO = Path(__file__).resolve().parent.parent


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _train(
    name: str, cfg: BaselineConfig, data: DomainData, analyzer: KoreanAnalyzer, cap: int | None
) -> Any:
    train = concat([data.train, data.dev], "movie").sample(cap)
    load_before = _load()
    t, c = time.perf_counter(), time.process_time()
    model = BaselineClassifier(analyzer if cfg.use_morph else None, cfg).fit(train.texts, train.labels)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    acc = accuracy(model.predict_proba(data.test.texts), data.test.labels)
    return model, {
        "model": name,
        "train_reviews": len(train),
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "stages_wall_s": model.timings,
        "features": model.n_features,
        "nsmc_test_accuracy": round(acc, 4),
        "test_reviews": len(data.test),
        "load_avg_1_5_15_before": load_before,
        "load_avg_1_5_15_after": _load(),
    }


def _throughput(predict: Any, texts: list[str], batch: int, repeat: int) -> dict[str, Any]:
    def run() -> None:
        for i in range(0, len(texts), batch):
            predict(texts[i : i + batch])

    samples = time_calls(run, repeat=repeat, warmup=1)
    med = float(np.median(samples))
    single = time_calls(lambda: predict(texts[:1]), repeat=max(20, repeat), warmup=2)
    return {
        "texts": len(texts),
        "batch": batch,
        "texts_per_s": round(len(texts) / med, 1),
        "single_review": percentiles_ms(single),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--train-size", type=int, default=None, help="cap on NSMC training reviews")
    ap.add_argument("--skip-train", action="store_true", help="only inference (trains on 5k reviews)")
    ap.add_argument("--probe-train", type=int, default=1000, help="reviews for the transformer's head")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--data", type=Path, default=None, help="shared data folder (default ../shared/data)")
    args = ap.parse_args()

    movie = load_domain(find_source("movie", default_sources(args.data)))
    analyzer = KoreanAnalyzer(model_type=DEFAULT_KIWI_MODEL, frozen=True)
    result: dict[str, Any] = {"benchmark": "sentiment", "cpus_available": len(os.sched_getaffinity(0))}

    cap = 5000 if args.skip_train else args.train_size
    base, base_info = _train(
        "baseline (morphemes 1-3 + char_wb 1-4, NB-LR)", BaselineConfig(), movie, analyzer, cap
    )
    if not args.skip_train:
        char_cfg = BaselineConfig(use_morph=False)
        _, char_info = _train("reference: char_wb 1-4 only", char_cfg, movie, analyzer, cap)
        result["training"] = [base_info, char_info]

    texts = movie.test.sample(2048, 11).texts
    result["baseline_inference"] = _throughput(base.predict_proba, texts, 256, args.repeat)

    from hanseek.encoders.registry import prepare_default_model
    from hanseek.sentiment.transformer import TransformerClassifier, TransformerConfig

    model_dir = prepare_default_model(load_settings(data_dir=REPO / "data"))
    clf = TransformerClassifier.from_base(model_dir, TransformerConfig())
    probe = movie.train.sample(args.probe_train, 5)
    clf.fit(probe.texts, probe.labels)
    result["transformer_inference"] = {
        "model": "e5-small frozen + logistic head (torch fp32)",
        **_throughput(clf.predict_proba, texts[:256], 32, max(1, args.repeat - 1)),
    }
    b, tr = result["baseline_inference"]["texts_per_s"], result["transformer_inference"]["texts_per_s"]
    result["baseline_vs_transformer_texts_per_s"] = round(b / tr, 1)
    result["load_avg_1_5_15_end"] = _load()
    emit(result)


if __name__ == "__main__":
    main()
