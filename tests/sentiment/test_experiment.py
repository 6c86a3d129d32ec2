"""The cross-domain experiment on small real samples: matrix shape, sanity of scores, report files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hanseek.sentiment import experiment as exp
from hanseek.sentiment.baseline import BaselineConfig
from hanseek.sentiment.datasets import DomainData, Reviews
from hanseek.sentiment.training import TrainOptions, accuracy
from hanseek.text.analyzer import KoreanAnalyzer


def test_small_baseline_experiment(
    movie: DomainData, game: DomainData, kiwi: KoreanAnalyzer, tmp_path: Path
) -> None:
    opts = TrainOptions(train_size=1000, dev_size=100, baseline=BaselineConfig())
    res = exp.run([movie, game], opts, analyzer_factory=lambda _m: kiwi, test_size=300)
    assert res.train_sets == ["movie", "game", "all"]
    assert res.sizes["movie"]["train"] == 1100 and res.sizes["all"]["train"] == 2200
    assert res.sizes["test/movie"]["test"] == 300
    for row in res.matrix.values():
        assert set(row) == {"movie", "game"}
        assert all(0.5 < v <= 1.0 for v in row.values())
    # In-domain beats out-of-domain for the single-domain models (the experiment's premise).
    assert res.matrix["movie"]["movie"] > res.matrix["game"]["movie"]
    assert res.matrix["game"]["game"] > res.matrix["movie"]["game"]
    paths = exp.write_report(res, tmp_path, "sentiment-test")
    md, js, png = paths
    assert "| movie |" in md.read_text() and "heatmap" in md.read_text()
    assert json.loads(js.read_text())["matrix"] == res.matrix
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_matrix_is_scored_on_the_held_out_test_split(
    movie: DomainData, game: DomainData, kiwi: KoreanAnalyzer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each cell is the accuracy on the domain's test split, never on the dev data the model tuned
    on (which would flatter every score and could hide a cross-domain drop)."""
    opts = TrainOptions(train_size=300, dev_size=50, baseline=BaselineConfig())
    test_size = 80
    models: list[Any] = []
    seen: set[str] = set()  # every text a model trained or tuned on
    evaluated: list[dict[str, Reviews]] = []
    real_fit, real_evaluate = exp.fit, exp.evaluate

    def spy_fit(o: TrainOptions, tr: Reviews, dv: Reviews, **kw: Any) -> Any:
        seen.update(tr.texts, dv.texts)
        fitted = real_fit(o, tr, dv, **kw)
        models.append(fitted.model)
        return fitted

    def spy_evaluate(model: Any, tests: dict[str, Reviews], *a: Any, **kw: Any) -> dict[str, float]:
        evaluated.append(tests)
        return real_evaluate(model, tests, *a, **kw)

    monkeypatch.setattr(exp, "fit", spy_fit)
    monkeypatch.setattr(exp, "evaluate", spy_evaluate)
    res = exp.run([movie, game], opts, analyzer_factory=lambda _m: kiwi, test_size=test_size)

    # The experiment's fixed-seed test sample (seed + 3), drawn from each domain's test split.
    expected = {d.name: d.test.sample(test_size, opts.seed + 3) for d in (movie, game)}
    assert len(models) == len(evaluated) == len(res.train_sets) == 3
    for tests in evaluated:
        assert {k: v.texts for k, v in tests.items()} == {f"test/{n}": r.texts for n, r in expected.items()}
    for r in expected.values():
        assert len(r) == test_size
        assert not set(r.texts) & seen  # held out: no model trained or tuned on these texts
    for name, model in zip(res.train_sets, models, strict=True):
        for domain, r in expected.items():
            by_hand = round(accuracy(model.predict_proba(r.texts), r.labels), 4)
            assert res.matrix[name][domain] == by_hand, (name, domain)
